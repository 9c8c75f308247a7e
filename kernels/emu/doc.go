// Package emu runs gpuquant's CUDA kernels (kernels/*.cu, unchanged) on the CPU: a kernels.Device
// over host memory whose Launch executes the kernel under the fiber shim of cudaemu.h (every CUDA
// thread a fiber, warp collectives and mma.sync emulated, three schedule orders). It exists for
// tests (build tag cudaemu, needs cgo and g++); the product never links it. Without the tag the
// package is empty and its tests say they were skipped.
//
// Go's build cache hashes only the C/C++ sources and headers of this folder, so every other file
// the emulator includes (kernels/*.cu, *.cuh, broken.cu) has a committed twin here, NAME.h, a
// symlink to it: editing a kernel rebuilds the emulator on the next `go test -tags cudaemu`, and
// CheckFresh (run by the tests) fails when an included file has no twin.
package emu

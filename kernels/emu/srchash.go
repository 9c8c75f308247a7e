//go:build cudaemu

package emu

// The Go build cache does not see files that emu.cc includes from outside this folder
// (kernels/*.cu, *.cuh), so their hash is part of the compiler flags: `make test-emu` rewrites it,
// and TestMain refuses to run when it does not match the sources on disk (a stale emulator).

// #cgo CXXFLAGS: -DCUDAEMU_SRC_HASH=h06d23c4b7ffb7b81
import "C"

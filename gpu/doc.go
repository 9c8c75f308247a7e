// Package gpu is the GPU backend: Backend implements model.Ops (with model.StepGraph and
// model.Tracer) by launching the kernels of package kernels over a kernels.Device — a CUDA device
// of package cuda in a build with the `cuda` tag (New), or the CPU emulator of the kernels in tests
// (tag cudaemu, NewEmulated) — so the whole backend, not only its kernels, is tested in every
// `make test`. Weights and activations stay in device memory; only logits and per-token NLL come
// back. Built without the `cuda` tag, New reports ErrNoCUDA and the default build stays pure Go.
package gpu

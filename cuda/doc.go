// Package cuda is the thin Go layer over gorgonia.org/cu (the CUDA driver API): device selection
// ("cuda:N"), context, streams, pooled device memory, module loading, kernel launch, events, graphs
// and NVTX ranges. Everything that imports gorgonia.org/cu sits behind the `cuda` build tag, because
// that package calls cuInit in its init and exits the process on a machine without a GPU.
package cuda

//go:build cudaemu && !cuda

package gpu

import "github.com/gpuquant/gpuquant/kernels/emu"

// NewEmulated is the backend on the CPU emulator of our kernels (--device cudaemu in a build
// with -tags cudaemu): the whole GPU path of the CLI, kernels included, without a GPU, for tests.
// It is slow and has no graphs, profiler or driver memory figures.
func NewEmulated(opt Options) (*Backend, error) {
	d := emu.New()
	return NewBackend(d, "cudaemu", opt, Hooks{Close: func() error { d.Close(); return nil }}) // closes d on error
}

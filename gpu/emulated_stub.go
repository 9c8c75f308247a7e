//go:build !cudaemu || cuda

package gpu

import "errors"

// NewEmulated needs a build with -tags cudaemu (the CPU emulator of our kernels, for tests).
func NewEmulated(opt Options) (*Backend, error) {
	return nil, errors.New("gpu: device cudaemu (the kernels' CPU emulator) needs a build with -tags cudaemu")
}

//go:build !cuda

package gpu

import (
	"errors"
)

// ErrNoCUDA is returned by every entry point of a build without the `cuda` tag.
var ErrNoCUDA = errors.New("gpu: this gpuquant was built without CUDA; build it with `make cuda` (go build -tags cuda, needs the CUDA toolkit) on a machine with an NVIDIA GPU")

// New would open CUDA device index; without the `cuda` tag it fails with ErrNoCUDA.
func New(index int, opt Options) (*Backend, error) { return nil, ErrNoCUDA }

// DeviceInfo describes the GPU of a backend made by New ("" without CUDA).
func DeviceInfo(b *Backend) string { return "" }

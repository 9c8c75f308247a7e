//go:build !cuda

package gpu

import (
	"errors"

	"github.com/gpuquant/gpuquant/model"
)

// ErrNoCUDA is returned by every entry point of a build without the `cuda` tag.
var ErrNoCUDA = errors.New("gpu: this gpuquant was built without CUDA; build it with `make cuda` (go build -tags cuda, needs the CUDA toolkit) on a machine with an NVIDIA GPU")

// New would open CUDA device index; without the `cuda` tag it fails with ErrNoCUDA.
func New(index int) (model.Ops, error) { return nil, ErrNoCUDA }

package cli

import (
	"fmt"

	"github.com/gpuquant/gpuquant/cpu"
	"github.com/gpuquant/gpuquant/cuda"
	"github.com/gpuquant/gpuquant/gpu"
	"github.com/gpuquant/gpuquant/model"
)

// openBackend returns the backend for a device string: "cpu" or "cuda:N".
func openBackend(device string, opt cpu.Options) (model.Ops, error) {
	if device == "cpu" {
		return cpu.NewWith(opt)
	}
	idx, err := cuda.ParseDevice(device)
	if err != nil {
		return nil, fmt.Errorf("unknown device %q (want cpu or cuda:N, e.g. cuda:0)", device)
	}
	return gpu.New(idx)
}

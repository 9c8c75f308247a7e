//go:build cuda

package gpu

import (
	"fmt"
	"sync"

	"github.com/gpuquant/gpuquant/cuda"
	"github.com/gpuquant/gpuquant/kernels"
	"github.com/gpuquant/gpuquant/model"
)

var registerOnce sync.Once

// Open opens CUDA device index with gpuquant's kernels (the embedded PTX) registered.
func Open(index int) (*cuda.Device, error) {
	var err error
	registerOnce.Do(func() {
		seen := map[string]bool{}
		for _, m := range kernels.Modules {
			if seen[m] {
				continue
			}
			seen[m] = true
			var ptx []byte
			if ptx, err = kernels.PTX(m); err != nil {
				return
			}
			cuda.RegisterModule(m, ptx)
		}
	})
	if err != nil {
		return nil, fmt.Errorf("gpu: embedded kernels: %w", err)
	}
	return cuda.Open(index)
}

// New opens device index. The device-resident weights and on-device quantization (QuantizeWeights)
// work; the forward pass over model.Ops on CUDA is the next step of the GPU work, so New says so
// instead of pretending, and the CPU backend remains the one that runs models.
func New(index int) (model.Ops, error) {
	d, err := Open(index)
	if err != nil {
		return nil, err
	}
	info := d.Info()
	d.Close()
	return nil, fmt.Errorf("gpu: %s is usable for on-device quantization, but the CUDA forward pass is not implemented yet; run models with --device cpu", info)
}

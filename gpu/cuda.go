//go:build cuda

package gpu

import (
	"fmt"
	"sync"

	"github.com/gpuquant/gpuquant/cuda"
	"github.com/gpuquant/gpuquant/kernels"
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

// New opens CUDA device index (cuda:index) as a backend: the forward pass on our kernels, steps
// of one token recorded once as CUDA graphs, NVTX ranges under a profiler. Close releases the
// device.
func New(index int, opt Options) (*Backend, error) {
	d, err := Open(index)
	if err != nil {
		return nil, err
	}
	return NewBackend(d, fmt.Sprintf("cuda:%d", index), opt, Hooks{
		Capture: func(fn func() error) (Graph, error) {
			g, err := d.Capture(fn)
			if err != nil {
				return nil, err
			}
			return g, nil
		},
		Range:   cuda.Range,
		MemInfo: d.MemInfo,
		PoolStats: func() (int64, int64, int64) {
			s := d.Stats()
			return s.InUse, s.Peak, s.Cached
		},
		Info:  func() string { return d.Info().String() },
		Close: d.Close,
	})
}

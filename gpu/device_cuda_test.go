//go:build cuda

package gpu

import (
	"testing"

	"github.com/gpuquant/gpuquant/kernels"
)

// onGPU says whether the tests run on a real GPU.
const onGPU = true

// testDevice is GPU 0 (tag cuda: the device machine).
func testDevice(t *testing.T) kernels.Device {
	d, err := Open(0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

// graphCounts is what testBackend's second result reports: nothing on a GPU, where the graphs
// are CUDA's own (GraphsUsed says whether they were used).
type graphCounts struct{ captures, replays int }

// testBackend is the CUDA backend on GPU 0, with CUDA graphs.
func testBackend(t *testing.T, opt Options) (*Backend, *graphCounts) {
	b, err := New(0, opt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b, nil
}

//go:build cuda

package kerneltest

// The kernels on the GPU (tag cuda; the device machine, through scripts/device-check.sh): one
// device, cuda:0, opened with gpu.Open (which registers the embedded PTX) on first use and shared
// by every test and benchmark. Thread order is the hardware's, so each case runs once. The GPU
// allocator has no guard zones, so every buffer a case allocates comes from a guarded view of the
// device (guard.go): 256 bytes of 0xA5 on each side, downloaded and checked after the case.

import (
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/gpuquant/gpuquant/cuda"
	"github.com/gpuquant/gpuquant/gpu"
	"github.com/gpuquant/gpuquant/kernels"
)

// onGPU is true: the GPT-2 XL-sized cases run unless -test.short (xlCases).
const onGPU = true

var passed, failed atomic.Int64

var gpu0 struct {
	once sync.Once
	d    *cuda.Device
	err  error
}

// gpuDevice is cuda:0, opened once.
func gpuDevice(tb testing.TB) *cuda.Device {
	tb.Helper()
	gpu0.once.Do(func() { gpu0.d, gpu0.err = gpu.Open(0) })
	if gpu0.err != nil {
		tb.Fatal(gpu0.err)
	}
	return gpu0.d
}

func TestMain(m *testing.M) {
	code := m.Run()
	if gpu0.d != nil {
		if n := passed.Load() + failed.Load(); n > 0 {
			fmt.Printf("gpu kernels: %d passed, %d failed (kernel vs CPU twin, each case once on %s)\n",
				passed.Load(), failed.Load(), gpu0.d.Info())
		}
		if err := gpu0.d.Close(); err != nil {
			fmt.Println(err)
			code = max(code, 1)
		}
	}
	if failed.Load() > 0 && code == 0 {
		code = 1
	}
	os.Exit(code)
}

// testDevice is a guarded view of cuda:0; its buffers are checked and freed when t ends.
func testDevice(t *testing.T) kernels.Device {
	g := newGuarded(gpuDevice(t))
	t.Cleanup(func() {
		if err := g.finish(); err != nil {
			t.Error(err)
		}
	})
	return g
}

// inOrders runs body once (subtest name) on a guarded view of cuda:0, then waits for the device
// (a kernel fault surfaces there), checks the guard bytes and frees the case's buffers.
func inOrders(t *testing.T, name string, body func(t *testing.T, d kernels.Device)) {
	t.Helper()
	ran := false // t.Run reports success for a subtest that -test.run filtered out
	ok := t.Run(name, func(t *testing.T) {
		ran = true
		g := newGuarded(gpuDevice(t))
		defer func() {
			if err := g.finish(); err != nil {
				t.Error(err)
			}
		}()
		body(t, g)
	})
	switch {
	case !ran:
	case ok:
		passed.Add(1)
	default:
		failed.Add(1)
	}
}

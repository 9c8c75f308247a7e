//go:build cudaemu && !cuda

package gpu

import (
	"errors"
	"testing"

	"github.com/gpuquant/gpuquant/kernels"
	"github.com/gpuquant/gpuquant/kernels/emu"
)

// onGPU says whether the tests run on a real GPU.
const onGPU = false

// testDevice is the CPU emulator of our kernels (tag cudaemu: every CI run), with its guard zones
// checked and its memory freed when t ends.
func testDevice(t *testing.T) kernels.Device {
	d := emu.New()
	t.Cleanup(func() {
		if err := d.CheckGuards(); err != nil {
			t.Error(err)
		}
		d.Close()
	})
	return d
}

// testBackend is a backend on the emulator whose "graphs" are recordings of the launches a step
// made, replayed with the arguments they had: like a CUDA graph, a replay sees new tokens and
// positions only through device memory, so a kernel that took them as launch arguments would be
// caught by the parity tests.
func testBackend(t *testing.T, opt Options) (*Backend, *recorder) {
	d := emu.New()
	r := &recorder{Device: d}
	b, err := NewBackend(r, "cudaemu", opt, Hooks{Capture: r.capture, Close: func() error {
		err := d.CheckGuards()
		d.Close()
		return err
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := b.Close(); err != nil {
			t.Error(err)
		}
	})
	return b, r
}

type launch struct {
	name        string
	grid, block kernels.Dim3
	shared      int
	args        []any
}

// recorder is a kernels.Device that can record launches instead of running them, refusing what
// CUDA refuses while a stream is captured (host copies, allocation).
type recorder struct {
	kernels.Device
	rec               *[]launch
	captures, replays int
}

var errCapturing = errors.New("recorder: not allowed while capturing")

func (r *recorder) Alloc(n int) (kernels.Ptr, error) {
	if r.rec != nil {
		return 0, errCapturing
	}
	return r.Device.Alloc(n)
}

func (r *recorder) CopyToDevice(dst kernels.Ptr, src []byte) error {
	if r.rec != nil {
		return errCapturing
	}
	return r.Device.CopyToDevice(dst, src)
}

func (r *recorder) CopyFromDevice(dst []byte, src kernels.Ptr) error {
	if r.rec != nil {
		return errCapturing
	}
	return r.Device.CopyFromDevice(dst, src)
}

func (r *recorder) Launch(name string, grid, block kernels.Dim3, shared int, args ...any) error {
	if r.rec != nil {
		*r.rec = append(*r.rec, launch{name, grid, block, shared, append([]any(nil), args...)})
		return nil
	}
	return r.Device.Launch(name, grid, block, shared, args...)
}

func (r *recorder) capture(fn func() error) (Graph, error) {
	r.rec = &[]launch{}
	err := fn()
	ls := *r.rec
	r.rec = nil
	if err != nil {
		return nil, err
	}
	r.captures++
	return &replay{r: r, ls: ls}, nil
}

type replay struct {
	r  *recorder
	ls []launch
}

func (g *replay) Launch() error {
	g.r.replays++
	for _, l := range g.ls {
		if err := g.r.Device.Launch(l.name, l.grid, l.block, l.shared, l.args...); err != nil {
			return err
		}
	}
	return nil
}

func (g *replay) Close() error { return nil }

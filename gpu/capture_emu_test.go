//go:build cudaemu && !cuda

package gpu

import (
	"errors"
	"slices"
	"testing"

	"github.com/gpuquant/gpuquant/kernels"
	"github.com/gpuquant/gpuquant/kernels/emu"
	"github.com/gpuquant/gpuquant/model"
	"github.com/gpuquant/gpuquant/quantize"
)

// refusingLauncher fails every launch while refuse is set, as launches into a capture the driver
// has invalidated do.
type refusingLauncher struct {
	*recorder
	refuse bool
}

func (l *refusingLauncher) Launch(name string, grid, block kernels.Dim3, shared int, args ...any) error {
	if l.refuse {
		return errors.New("launch refused: capture invalidated")
	}
	return l.recorder.Launch(name, grid, block, shared, args...)
}

// A capture the driver refuses leaves no error behind, whether it fails at the end
// (cuStreamEndCapture of an invalidated capture) or its launches fail: the step and every later
// one run op by op, with the tokens of the CPU backend, and DeviceFacts says graphs are not used.
func TestRefusedCaptureRunsOpByOp(t *testing.T) {
	for _, failLaunches := range []bool{false, true} {
		testRefusedCapture(t, failLaunches)
	}
}

func testRefusedCapture(t *testing.T, failLaunches bool) {
	w := parityModel(t, smallConfig)
	d := emu.New()
	l := &refusingLauncher{recorder: &recorder{Device: d}}
	refusals := 0
	b, err := NewBackend(l, "cudaemu", Options{}, Hooks{
		Capture: func(fn func() error) (Graph, error) {
			refusals++
			l.refuse = failLaunches
			_, err := l.recorder.capture(fn)
			l.refuse = false
			if err != nil {
				return nil, err
			}
			return nil, errors.New("capture invalidated")
		},
		Close: func() error { d.Close(); return nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	gw, err := b.Upload(w, quantize.Spec{})
	if err != nil {
		t.Fatal(err)
	}
	prompt := []int32{5, 17, 3, 60, 42}
	greedy := func(o model.Ops, w *model.Weights) []int32 {
		s, err := model.NewSession(o, w, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		smp, _ := model.NewSampler(model.SampleOptions{Greedy: true})
		out, err := model.Generate(s, prompt, 12, smp, nil)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	co, cw := cpuModel(t, w, parityCases()[0])
	if got, want := greedy(b, gw), greedy(co, cw); !slices.Equal(got, want) {
		t.Fatalf("after a refused capture: tokens %v, CPU %v", got, want)
	}
	if b.Err() != nil || refusals != 1 || b.DeviceFacts().Graphs {
		t.Errorf("launches failing %v: err %v, %d captures tried, graphs %v: want nil, 1, false", failLaunches, b.Err(), refusals, b.DeviceFacts().Graphs)
	}
}

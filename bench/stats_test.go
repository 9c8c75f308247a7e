package bench

import (
	"errors"
	"math"
	"slices"
	"testing"

	"github.com/gpuquant/gpuquant/cpu"
	"github.com/gpuquant/gpuquant/model"
	"github.com/gpuquant/gpuquant/quantize"
)

func TestMedian(t *testing.T) {
	for _, tc := range []struct {
		in   []float64
		want float64
	}{
		{[]float64{7}, 7},                     // single
		{[]float64{3, 1, 2}, 2},               // odd, unsorted
		{[]float64{5, 1, 4, 2, 3}, 3},         // odd, unsorted
		{[]float64{4, 1, 3, 2}, 2.5},          // even, unsorted: the mean of the middle two
		{[]float64{10, 20}, 15},               // even, two
		{[]float64{1, 1, 9, 1}, 1},            // repeated values
		{[]float64{0.3, 100, 0.1, 0.2}, 0.25}, // an outlier does not move it
	} {
		in := slices.Clone(tc.in)
		if got := median(in); got != tc.want {
			t.Errorf("median(%v) = %v, want %v", tc.in, got, tc.want)
		}
		if !slices.Equal(in, tc.in) {
			t.Errorf("median sorted its argument in place: %v", in)
		}
	}
}

// counting is the CPU backend recording the tokens of every Embed: one call per forward.
type counting struct {
	*cpu.Backend
	forwards [][]int32
}

func (c *counting) Embed(out model.Buf, tokens []int32, pos0 int, wte, wpe model.Tensor) {
	c.forwards = append(c.forwards, slices.Clone(tokens))
	c.Backend.Embed(out, tokens, pos0, wte, wpe)
}

// smallSession is a random 1-layer model with a 32-token vocabulary and context, on ops.
func smallSession(t *testing.T, ops quantize.Backend) *model.Session {
	t.Helper()
	dir := t.TempDir()
	c := model.Config{NLayer: 1, NHead: 2, NEmbd: 8, NPositions: 32, VocabSize: 32, LayerNormE: 1e-5, TieEmbeddings: true}
	if err := model.Synth(dir, model.SynthOptions{Config: c, DType: "F32", Seed: 3}); err != nil {
		t.Fatal(err)
	}
	w, err := model.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	up, err := ops.Upload(w, quantize.Spec{})
	if err != nil {
		t.Fatal(err)
	}
	s, err := model.NewSession(ops, up, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

// script replaces the timing of one run with the given (prefill, decode) seconds, in order.
func script(t *testing.T, times [][2]float64) *int {
	t.Helper()
	saved := timeOnce
	t.Cleanup(func() { timeOnce = saved })
	calls := new(int)
	timeOnce = func(_ *model.Session, _ []int32, _ int) (float64, float64, error) {
		if *calls >= len(times) {
			t.Fatalf("run %d: only %d scripted", *calls, len(times))
		}
		p := times[*calls]
		*calls++
		return p[0], p[1], nil
	}
	return calls
}

// TestRunWarmUpAndMedians: Repeat timed runs follow one warm-up, which is dropped however slow it
// is, and the rates are tokens over the medians of the timed runs.
func TestRunWarmUpAndMedians(t *testing.T) {
	s := smallSession(t, cpu.New())
	for _, tc := range []struct {
		repeat, wantRepeat int
		times              [][2]float64 // warm-up first
		prefill, decode    []float64    // the timed runs
		medP, medD         float64      // their medians, by hand
	}{
		{3, 3, [][2]float64{{100, 100}, {0.4, 2}, {0.1, 8}, {0.2, 4}}, []float64{0.4, 0.1, 0.2}, []float64{2, 8, 4}, 0.2, 4},
		{4, 4, [][2]float64{{100, 100}, {0.4, 2}, {0.1, 8}, {0.3, 4}, {0.2, 1}}, []float64{0.4, 0.1, 0.3, 0.2}, []float64{2, 8, 4, 1}, 0.25, 3},
		{1, 1, [][2]float64{{100, 100}, {0.5, 2}}, []float64{0.5}, []float64{2}, 0.5, 2},
		{0, 1, [][2]float64{{100, 100}, {0.5, 2}}, []float64{0.5}, []float64{2}, 0.5, 2}, // Repeat < 1 runs once
	} {
		calls := script(t, tc.times)
		r, err := Run(s, Options{PromptTokens: 8, NewTokens: 4, Repeat: tc.repeat})
		if err != nil {
			t.Fatal(err)
		}
		if *calls != tc.wantRepeat+1 {
			t.Errorf("repeat %d: %d runs, want %d (one warm-up)", tc.repeat, *calls, tc.wantRepeat+1)
		}
		if !slices.Equal(r.PrefillSeconds, tc.prefill) || !slices.Equal(r.DecodeSeconds, tc.decode) {
			t.Errorf("repeat %d: timed %v / %v, want %v / %v (warm-up dropped)", tc.repeat, r.PrefillSeconds, r.DecodeSeconds, tc.prefill, tc.decode)
		}
		if math.Abs(r.PrefillTokensPerS-8/tc.medP) > 1e-9*r.PrefillTokensPerS || math.Abs(r.DecodeTokensPerS-4/tc.medD) > 1e-9*r.DecodeTokensPerS {
			t.Errorf("repeat %d: %v prefill, %v decode tokens/s; want 8/%v, 4/%v", tc.repeat, r.PrefillTokensPerS, r.DecodeTokensPerS, tc.medP, tc.medD)
		}
		if r.Repeat != tc.wantRepeat || r.PromptTokens != 8 || r.NewTokens != 4 {
			t.Errorf("repeat %d: result %+v", tc.repeat, r)
		}
	}

	// No decoding: no decode rate (not 0/0), the prefill rate still reported.
	script(t, [][2]float64{{1, 0}, {0.5, 0}})
	r, err := Run(s, Options{PromptTokens: 8, Repeat: 1})
	if err != nil || r.DecodeTokensPerS != 0 || r.PrefillTokensPerS != 16 {
		t.Errorf("new tokens 0: %+v, %v", r, err)
	}

	// A failing run stops the measurement with its error.
	saved := timeOnce
	boom := errors.New("boom")
	n := 0
	timeOnce = func(*model.Session, []int32, int) (float64, float64, error) {
		if n++; n == 2 {
			return 0, 0, boom
		}
		return 1, 1, nil
	}
	_, err = Run(s, Options{PromptTokens: 8, NewTokens: 1, Repeat: 3})
	timeOnce = saved
	if !errors.Is(err, boom) || n != 2 {
		t.Errorf("after a failing run: %v, %d runs", err, n)
	}
}

// TestRunWorkload: each run (warm-up included) is one prefill of PromptTokens tokens drawn from
// the seed, then NewTokens one-token greedy steps, from an empty cache; sizes that do not fit the
// context are refused before any run.
func TestRunWorkload(t *testing.T) {
	ops := &counting{Backend: cpu.New()}
	s := smallSession(t, ops)
	r, err := Run(s, Options{PromptTokens: 5, NewTokens: 3, Repeat: 2, Seed: 9})
	if err != nil {
		t.Fatal(err)
	}
	if len(ops.forwards) != 3*(1+3) {
		t.Fatalf("%d forwards, want 3 runs × (1 prefill + 3 steps)", len(ops.forwards))
	}
	prompt := ops.forwards[0]
	if len(prompt) != 5 {
		t.Fatalf("prefill of %d tokens, want 5", len(prompt))
	}
	for run := range 3 {
		f := ops.forwards[run*4 : (run+1)*4]
		if !slices.Equal(f[0], prompt) {
			t.Errorf("run %d prefilled %v, the warm-up %v", run, f[0], prompt)
		}
		for i, step := range f[1:] {
			if len(step) != 1 || !slices.Equal(step, ops.forwards[1+i]) {
				t.Errorf("run %d step %d: %v, the warm-up's %v (greedy decoding is deterministic)", run, i, step, ops.forwards[1+i])
			}
		}
	}
	// The greedy step: the argmax of the logits after the prompt, computed here from scratch.
	s.Reset()
	logits, err := s.Forward(prompt, false)
	if err != nil {
		t.Fatal(err)
	}
	row := make([]float32, logits.Cols())
	ops.Read(row, logits)
	if want := model.Argmax(row); ops.forwards[1][0] != want {
		t.Errorf("first decode token %d, argmax after the prompt %d", ops.forwards[1][0], want)
	}
	if len(r.PrefillSeconds) != 2 || len(r.DecodeSeconds) != 2 || !(r.PrefillTokensPerS > 0) || !(r.DecodeTokensPerS > 0) {
		t.Errorf("result %+v", r)
	}
	if got := r.PrefillTokensPerS * median(r.PrefillSeconds); math.Abs(got-5) > 1e-9 {
		t.Errorf("prefill tokens/s × median seconds = %v, want 5 tokens", got)
	}
	if got := r.DecodeTokensPerS * median(r.DecodeSeconds); math.Abs(got-3) > 1e-9 {
		t.Errorf("decode tokens/s × median seconds = %v, want 3 tokens", got)
	}

	// Another seed, another prompt; the same seed, the same one.
	ops.forwards = nil
	if _, err := Run(s, Options{PromptTokens: 5, Repeat: 1, Seed: 9}); err != nil || !slices.Equal(ops.forwards[0], prompt) {
		t.Errorf("seed 9 again: prompt %v, want %v (%v)", ops.forwards[0], prompt, err)
	}
	ops.forwards = nil
	if _, err := Run(s, Options{PromptTokens: 5, Repeat: 1, Seed: 10}); err != nil || slices.Equal(ops.forwards[0], prompt) {
		t.Errorf("seed 10: prompt %v, the same as seed 9's (%v)", ops.forwards[0], err)
	}

	ops.forwards = nil
	for _, o := range []Options{{PromptTokens: 0, NewTokens: 1}, {PromptTokens: 30, NewTokens: 3}, {PromptTokens: 33}} {
		if _, err := Run(s, o); err == nil {
			t.Errorf("%+v accepted with a context of 32", o)
		}
	}
	if len(ops.forwards) != 0 {
		t.Errorf("refused sizes ran %d forwards", len(ops.forwards))
	}
	if _, err := Run(s, Options{PromptTokens: 29, NewTokens: 3}); err != nil {
		t.Errorf("29 + 3 tokens in a context of 32: %v", err)
	}
}

//go:build cuda || cudaemu

package gpu

// The GPU backend against the CPU backend on the same model: logits of a prefill and of decoding
// steps (recorded once, replayed with new tokens and positions), perplexity per scheme, greedy
// tokens. On the CPU emulator (tag cudaemu, every `make test`) and on GPU 0 (tag cuda, through
// scripts/device-check.sh).

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/gpuquant/gpuquant/cpu"
	"github.com/gpuquant/gpuquant/kernels/kerneltest"
	"github.com/gpuquant/gpuquant/model"
	"github.com/gpuquant/gpuquant/quantize"
)

// smallConfig is the parity model of every run; the GPU also runs GPT-2's own widths.
var smallConfig = model.Config{NLayer: 2, NHead: 2, NEmbd: 64, NPositions: 64, VocabSize: 97, LayerNormE: 1e-5, TieEmbeddings: true}

// parityModel is a GPT-2 of shape cfg with every parameter random (Synth's gains are 1 and biases 0).
func parityModel(t *testing.T, cfg model.Config) *model.Weights {
	t.Helper()
	dir := t.TempDir()
	if err := model.Synth(dir, model.SynthOptions{Config: cfg, DType: "F32", Seed: 5}); err != nil {
		t.Fatal(err)
	}
	w, err := model.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	r := rand.New(rand.NewPCG(1, 2))
	for _, p := range w.Params() {
		if f := (*p.T).(*model.F32); len(f.Dims) == 1 {
			g := make([]float32, len(f.Data))
			for j := range g {
				g[j] = float32(r.NormFloat64() * 0.3)
				if p.Kind == model.KindNorm {
					g[j] += 1
				}
			}
			*p.T = model.NewF32(g, f.Dims...)
		}
	}
	return w
}

type parityCase struct {
	name   string
	opt    *quantize.Options // nil: float
	half   bool
	kernel string
	// logitsTol bounds max|gpu − cpu| / max|cpu| over every logit; pplTol the relative difference
	// of the perplexities.
	logitsTol, pplTol float64
}

func parityCases() []parityCase {
	q := func(s quantize.Scheme, bits int, gran string, scope string) *quantize.Options {
		g, _ := quantize.ParseGranularity(gran)
		return &quantize.Options{Scheme: s, Bits: bits, Granularity: g, Scope: scope}
	}
	return []parityCase{
		{"fp32", nil, false, quantize.KernelAuto, 1e-4, 1e-5},
		// fp16 prefill rounds the activations to half (2⁻¹¹ relative) on the tensor cores, as an
		// fp16 model does; the CPU twin multiplies the same half weights by float32 activations.
		{"fp16", nil, true, quantize.KernelAuto, 5e-3, 1e-3},
		{"absmax-int8-channel", q(quantize.Absmax, 8, "channel", "weights"), false, quantize.KernelWeightOnly, 1e-4, 1e-5},
		{"zeropoint-int8-tensor-all", q(quantize.ZeroPoint, 8, "tensor", "all"), false, quantize.KernelWeightOnly, 1e-4, 1e-5},
		{"absmax-int4-group32", q(quantize.Absmax, 4, "group:32", "weights"), false, quantize.KernelWeightOnly, 1e-4, 1e-5},
		// W8A8 rounds activations to int8: a value on a rounding boundary may round differently
		// after float32 sums in another order, so the bound is that of one code step, not ulps.
		{"absmax-int8-channel-w8a8", q(quantize.Absmax, 8, "channel", "weights"), false, quantize.KernelW8A8, 2e-2, 1e-3},
		{"zeropoint-int8-group32-w8a8", q(quantize.ZeroPoint, 8, "group:32", "linear"), false, quantize.KernelW8A8, 2e-2, 1e-3},
	}
}

// cpuModel is the case's model on the CPU backend: fp16 weights rounded to half on the host
// (what the device multiplies by), quantized ones quantized by package quantize.
func cpuModel(t *testing.T, w *model.Weights, c parityCase) (model.Ops, *model.Weights) {
	t.Helper()
	be, err := cpu.NewWith(cpu.Options{Kernel: c.kernel})
	if err != nil {
		t.Fatal(err)
	}
	src := w
	switch {
	case c.half:
		src = w.Copy()
		for _, p := range src.Params() {
			if f := (*p.T).(*model.F32); len(f.Dims) == 2 {
				h := make([]float32, len(f.Data))
				for i, x := range f.Data {
					h[i] = model.HalfToFloat32(model.Float32ToHalf(x))
				}
				*p.T = model.NewF32(h, f.Dims...)
			}
		}
	case c.opt != nil:
		if src, err = quantize.QuantizeWeights(w, *c.opt); err != nil {
			t.Fatal(err)
		}
	}
	up, err := be.Upload(src, quantize.Spec{})
	if err != nil {
		t.Fatal(err)
	}
	return be, up
}

// gpuModel is the case's model on the device; quantized on the device from host weights (cases
// 1, 5, ...), from float device weights (cases 3, 7, ...), or uploaded as codes quantized on the
// host (even cases).
func gpuModel(t *testing.T, b *Backend, w *model.Weights, c parityCase, i int) *model.Weights {
	t.Helper()
	var up *model.Weights
	var err error
	switch {
	case c.opt == nil:
		up, err = b.Upload(w, quantize.Spec{Half: c.half})
	case i%4 == 1:
		up, err = b.Upload(w, quantize.Spec{Quant: c.opt})
	case i%4 == 3:
		var f *model.Weights
		if f, err = b.Upload(w, quantize.Spec{}); err == nil {
			up, err = b.Upload(f, quantize.Spec{Quant: c.opt})
		}
	default:
		var q *model.Weights
		if q, err = quantize.QuantizeWeights(w, *c.opt); err == nil {
			up, err = b.Upload(q, quantize.Spec{})
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	return up
}

func maxAbs(v []float32) float64 {
	var m float64
	for _, x := range v {
		m = max(m, math.Abs(float64(x)))
	}
	return m
}

// relDiff is max|got − want| / max|want|.
func relDiff(got, want []float32) float64 {
	var d float64
	for i := range want {
		d = max(d, math.Abs(float64(got[i])-float64(want[i])))
	}
	if math.IsNaN(maxAbs(got)) {
		return math.Inf(1)
	}
	return d / maxAbs(want)
}

func read(t *testing.T, o model.Ops, b model.Buf) []float32 {
	t.Helper()
	v := make([]float32, b.Rows()*b.Cols())
	o.Read(v, b)
	if err := o.Err(); err != nil {
		t.Fatal(err)
	}
	return v
}

func TestForwardMatchesCPU(t *testing.T) { forwardMatchesCPU(t, parityModel(t, smallConfig)) }

// TestUntiedHeadMatchesCPU: a checkpoint with its own lm_head (uploaded, quantized and multiplied
// as a parameter of its own).
func TestUntiedHeadMatchesCPU(t *testing.T) {
	w := parityModel(t, smallConfig).Copy()
	c := w.Config
	w.Head = model.NewF32(kerneltest.Randn(rand.New(rand.NewPCG(3, 4)), c.VocabSize*c.NEmbd, 0.05), c.VocabSize, c.NEmbd)
	forwardMatchesCPU(t, w)
}

// TestForwardMatchesCPUGPT2Widths is the parity test at GPT-2 124M's widths (2 of its 12 layers):
// the vectorized paths of every kernel and the 50257-wide head. GPU only (minutes on the emulator).
func TestForwardMatchesCPUGPT2Widths(t *testing.T) {
	if !onGPU || testing.Short() {
		t.Skip("GPU only")
	}
	cfg := model.Presets["gpt2"]
	cfg.NLayer = 2
	forwardMatchesCPU(t, parityModel(t, cfg))
}

func forwardMatchesCPU(t *testing.T, w *model.Weights) {
	r := rand.New(rand.NewPCG(7, 8))
	ids := make([]int32, 48)
	for i := range ids {
		ids[i] = int32(r.IntN(w.Config.VocabSize))
	}
	for i, c := range parityCases() {
		t.Run(c.name, func(t *testing.T) {
			co, cw := cpuModel(t, w, c)
			b, counts := testBackend(t, Options{Kernel: c.kernel})
			gw := gpuModel(t, b, w, c, i)
			cs, err := model.NewSession(co, cw, 0)
			if err != nil {
				t.Fatal(err)
			}
			gs, err := model.NewSession(b, gw, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer gs.Close()
			// A prefill of 40 tokens (every row), then 8 decoding steps of one token.
			var worst float64
			check := func(toks []int32, all bool) {
				cl, err := cs.Forward(toks, all)
				if err != nil {
					t.Fatal(err)
				}
				gl, err := gs.Forward(toks, all)
				if err != nil {
					t.Fatal(err)
				}
				d := relDiff(read(t, b, gl), read(t, co, cl))
				worst = max(worst, d)
				if !(d <= c.logitsTol) {
					t.Fatalf("at position %d (%d tokens): logits differ by %.3g of max|logit| (bound %.g)", gs.Pos()-len(toks), len(toks), d, c.logitsTol)
				}
			}
			check(ids[:40], true)
			for _, id := range ids[40:] {
				check([]int32{id}, false)
			}
			if counts != nil && (counts.captures != 1 || counts.replays != 8) {
				t.Fatalf("decoding steps: %d captures and %d replays, want 1 and 8 (a capture does not run)", counts.captures, counts.replays)
			}
			// Perplexity over 2 windows of 32 with stride 16.
			opt := model.PerplexityOptions{MaxLength: 32, Stride: 16}
			cp, err := model.Perplexity(cs, ids, opt)
			if err != nil {
				t.Fatal(err)
			}
			gp, err := model.Perplexity(gs, ids, opt)
			if err != nil {
				t.Fatal(err)
			}
			if d := math.Abs(gp.Perplexity-cp.Perplexity) / cp.Perplexity; !(d <= c.pplTol) {
				t.Fatalf("perplexity %v on the device, %v on the CPU: relative difference %.3g > %.g", gp.Perplexity, cp.Perplexity, d, c.pplTol)
			}
			t.Logf("logits max rel diff %.3g; perplexity device %.6f cpu %.6f", worst, gp.Perplexity, cp.Perplexity)
		})
	}
}

func TestGreedyTokensMatchCPU(t *testing.T) {
	w := parityModel(t, smallConfig)
	c := parityCases()[0]
	co, cw := cpuModel(t, w, c)
	b, _ := testBackend(t, Options{})
	gw := gpuModel(t, b, w, c, 0)
	prompt := []int32{5, 17, 3, 60, 42}
	gen := func(o model.Ops, w *model.Weights) []int32 {
		s, err := model.NewSession(o, w, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		smp, err := model.NewSampler(model.SampleOptions{Greedy: true})
		if err != nil {
			t.Fatal(err)
		}
		out, err := model.Generate(s, prompt, 20, smp, nil)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	want, got := gen(co, cw), gen(b, gw)
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("greedy tokens on the device %v, on the CPU %v", got, want)
	}
}

func TestBadInput(t *testing.T) {
	w := parityModel(t, smallConfig)
	b, _ := testBackend(t, Options{})
	up, err := b.Upload(w, quantize.Spec{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Upload(up, quantize.Spec{}); err == nil || !strings.Contains(err.Error(), "already on a device") {
		t.Errorf("uploading device weights again: %v", err)
	}
	if _, err := b.Upload(up, quantize.Spec{Half: true}); err == nil || !strings.Contains(err.Error(), "already on a device") {
		t.Errorf("device weights to half: %v", err)
	}
	q, err := quantize.QuantizeWeights(w, quantize.Options{Scheme: quantize.Absmax, Bits: 8, Granularity: quantize.Granularity{Kind: quantize.PerChannel}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Upload(q, quantize.Spec{Quant: &quantize.Options{Scheme: quantize.Absmax, Bits: 4, Granularity: quantize.Granularity{Kind: quantize.PerChannel}}}); !errors.Is(err, quantize.ErrAlreadyQuantized) {
		t.Errorf("quantizing quantized weights: %v", err)
	}
	if _, err := model.NewSession(b, up, w.Config.NPositions+1); err == nil {
		t.Error("a session longer than n_positions was accepted")
	}
	s, err := model.NewSession(b, up, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.Forward([]int32{1, int32(w.Config.VocabSize)}, true); err == nil {
		t.Error("a token outside the vocabulary was accepted")
	}
	if _, err := NewBackend(b.Device(), "x", Options{Kernel: "fast"}, Hooks{}); err == nil {
		t.Error("an unknown kernel option was accepted")
	}
	// A device with 1 MiB free refuses the model (and the room kept for activations) before
	// allocating any of it.
	small, err := NewBackend(b.Device(), "small", Options{}, Hooks{MemInfo: func() (int64, int64, error) { return 1 << 20, 1 << 20, nil }})
	if err != nil {
		t.Fatal(err)
	}
	defer small.Close()
	if _, err := small.Upload(w, quantize.Spec{}); err == nil || !strings.Contains(err.Error(), "need") {
		t.Errorf("a model on a device with 1 MiB free: %v", err)
	}
}

// TestStepsSurviveBufferGrowth: a longer prefill grows the backend's token and W8A8 scratch
// buffers, which recorded steps point into; later steps must record anew, not replay stale
// addresses.
func TestStepsSurviveBufferGrowth(t *testing.T) {
	w := parityModel(t, smallConfig)
	for _, c := range []parityCase{parityCases()[0], parityCases()[5]} {
		t.Run(c.name, func(t *testing.T) {
			co, cw := cpuModel(t, w, c)
			b, _ := testBackend(t, Options{Kernel: c.kernel})
			gw := gpuModel(t, b, w, c, 0)
			cs, err := model.NewSession(co, cw, 0)
			if err != nil {
				t.Fatal(err)
			}
			gs, err := model.NewSession(b, gw, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer gs.Close()
			step := func(toks []int32) {
				cl, err := cs.Forward(toks, false)
				if err != nil {
					t.Fatal(err)
				}
				gl, err := gs.Forward(toks, false)
				if err != nil {
					t.Fatal(err)
				}
				if d := relDiff(read(t, b, gl), read(t, co, cl)); !(d <= c.logitsTol) {
					t.Fatalf("%d tokens at position %d: logits differ by %.3g of max|logit|", len(toks), gs.Pos()-len(toks), d)
				}
			}
			long := make([]int32, 40)
			for i := range long {
				long[i] = int32(i * 7 % w.Config.VocabSize)
			}
			for _, prompt := range [][]int32{{1, 2, 3}, long, {4, 5, 6}} {
				cs.Reset()
				gs.Reset()
				step(prompt)
				step([]int32{9})
				step([]int32{10})
			}
		})
	}
}

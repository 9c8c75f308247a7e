package quantize

import (
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/gpuquant/gpuquant/model"
)

func randn(n int, std float64, seed uint64) []float32 {
	r := rand.New(rand.NewPCG(seed, 1))
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(r.NormFloat64() * std)
	}
	return x
}

func TestParseGranularity(t *testing.T) {
	for _, s := range []string{"tensor", "channel", "group:64"} {
		g, err := ParseGranularity(s)
		if err != nil || g.String() != s {
			t.Errorf("ParseGranularity(%q) = %v, %v", s, g, err)
		}
	}
	for _, s := range []string{"", "row", "group", "group:", "group:0", "group:-4", "group:x"} {
		if _, err := ParseGranularity(s); err == nil {
			t.Errorf("ParseGranularity(%q) accepted", s)
		}
	}
}

func TestOptions(t *testing.T) {
	ok := Options{Scheme: Absmax, Bits: 8, Granularity: Granularity{Kind: PerChannel}}
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
	if s := ok.String(); s != "absmax-int8-channel" {
		t.Errorf("String() = %q", s)
	}
	o := Options{Scheme: ZeroPoint, Bits: 4, Granularity: Granularity{PerGroup, 64}, Preset: PresetArticle, Scope: ScopeLinear}
	if s := o.String(); s != "zeropoint-int4-group64-article-linear" {
		t.Errorf("String() = %q", s)
	}
	bad := map[string]Options{
		"unsupported bits 3":  {Scheme: Absmax, Bits: 3, Granularity: Granularity{Kind: PerTensor}},
		"unsupported bits 16": {Scheme: Absmax, Bits: 16, Granularity: Granularity{Kind: PerTensor}},
		"unknown scheme":      {Scheme: "nf4", Bits: 4, Granularity: Granularity{Kind: PerTensor}},
		"unknown preset":      {Scheme: Absmax, Bits: 8, Granularity: Granularity{Kind: PerTensor}, Preset: "x"},
		"unknown scope":       {Scheme: Absmax, Bits: 8, Granularity: Granularity{Kind: PerTensor}, Scope: "x"},
		"group size 0":        {Scheme: Absmax, Bits: 8, Granularity: Granularity{Kind: PerGroup}},
		"granularity not set": {Scheme: Absmax, Bits: 8},
	}
	for want, o := range bad {
		err := o.Validate()
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%+v: error %v, want %q", o, err, want)
		}
		if _, err := Quantize([]float32{1, 2}, []int{2}, o); err == nil {
			t.Errorf("%+v: Quantize accepted", o)
		}
	}
}

// TestFormulas checks a hand-computed example and the invariants of every configuration.
func TestFormulas(t *testing.T) {
	x := []float32{-1, -0.5, 0, 0.25, 2}
	q, err := Quantize(x, []int{5}, Options{Scheme: Absmax, Bits: 8, Granularity: Granularity{Kind: PerTensor}})
	if err != nil {
		t.Fatal(err)
	}
	// s = 127/2 = 63.5: −63.5 → −64 (half to even), −31.75 → −32, 0, 15.875 → 16, 127.
	want := []int8{-64, -32, 0, 16, 127}
	for i, w := range want {
		if q.Code(i) != w {
			t.Errorf("absmax code %d = %d, want %d", i, q.Code(i), w)
		}
	}
	q, err = Quantize(x, []int{5}, Options{Scheme: ZeroPoint, Bits: 8, Granularity: Granularity{Kind: PerTensor}})
	if err != nil {
		t.Fatal(err)
	}
	// s = (1/3)·255 = 85 (rounded twice), z = round(85 − 128) = −43; codes round(85x − 43).
	if q.Scales[0] != 85 || q.Zeros[0] != -43 {
		t.Errorf("zero-point s, z = %v, %v", q.Scales[0], q.Zeros[0])
	}
	for i, w := range []int8{-128, -86, -43, -22, 127} { // −21.75 → −22, 170−43 = 127
		if q.Code(i) != w {
			t.Errorf("zero-point code %d = %d, want %d", i, q.Code(i), w)
		}
	}
}

func allOptions() []Options {
	var out []Options
	for _, s := range []Scheme{Absmax, ZeroPoint} {
		for _, g := range []Granularity{{PerTensor, 0}, {PerChannel, 0}, {PerGroup, 16}} {
			for _, b := range []int{8, 4} {
				for _, p := range []string{PresetStandard, PresetArticle} {
					out = append(out, Options{Scheme: s, Bits: b, Granularity: g, Preset: p})
				}
			}
		}
	}
	return out
}

func TestInvariants(t *testing.T) {
	// Large enough to run in parallel chunks, with an odd row count for int4 packing.
	rows, cols := 301, 480
	x := randn(rows*cols, 0.3, 7)
	for _, opt := range allOptions() {
		q, err := Quantize(x, []int{rows, cols}, opt)
		if err != nil {
			t.Fatal(opt, err)
		}
		if err := q.Validate(); err != nil {
			t.Fatal(opt, err)
		}
		k := opt.Constants()
		num, lo, hi := k.Num, k.Lo, k.Hi
		d := q.Dequantize()
		for i, v := range x {
			c := int(q.Code(i))
			if c < lo || c > hi {
				t.Fatalf("%s: code %d out of [%d, %d]", opt, c, lo, hi)
			}
			g := i / q.GroupSize
			// Rounding error is at most half a step; zero-point also rounds z.
			bound := 0.5 / float64(q.Scales[g]) * 1.0001
			if opt.Scheme == ZeroPoint {
				bound *= 2
			}
			if e := math.Abs(float64(d.Data[i] - v)); e > bound {
				t.Fatalf("%s: value %d: error %g > %g", opt, i, e, bound)
			}
		}
		// Reference: a direct, sequential evaluation of the formulas.
		for g := range len(x) / q.GroupSize {
			v := x[g*q.GroupSize : (g+1)*q.GroupSize]
			mn, mx := v[0], v[0]
			for _, a := range v {
				mn, mx = min(mn, a), max(mx, a)
			}
			var s, z float32
			if opt.Scheme == Absmax {
				s = (1 / max(-mn, mx)) * num
			} else {
				s = (1 / (mx - mn)) * num
				z = float32(math.RoundToEven(float64(-s*mn - float32(-lo))))
			}
			if q.Scales[g] != s || (q.Zeros != nil && q.Zeros[g] != z) {
				t.Fatalf("%s: group %d: s, z = %v, %v; want %v, %v", opt, g, q.Scales[g], q.zero(g), s, z)
			}
		}
	}
}

func TestQuantizeNonFinite(t *testing.T) {
	for _, bad := range []float32{float32(math.NaN()), float32(math.Inf(1)), float32(math.Inf(-1))} {
		x := randn(200_000, 1, 3)
		x[150_001] = bad
		x[190_000] = bad
		for _, g := range []Granularity{{PerTensor, 0}, {PerChannel, 0}} {
			_, err := Quantize(x, []int{400, 500}, Options{Scheme: Absmax, Bits: 8, Granularity: g})
			if err == nil || !strings.Contains(err.Error(), "flat index 150001") {
				t.Errorf("%v in %s: error %v", bad, g, err)
			}
		}
	}
}

// TestConstant: constant tensors get well-defined codes; 0 and 1 (the biases and LayerNorm gains
// of a fresh checkpoint) dequantize exactly, other constants within half a step.
func TestConstant(t *testing.T) {
	for _, c := range []float32{0, 1, -1, 0.3, -2.5, 1e-20, 1e-40} {
		x := make([]float32, 96)
		for i := range x {
			x[i] = c
		}
		for _, opt := range allOptions() {
			q, err := Quantize(x, []int{2, 48}, opt)
			if err != nil {
				t.Fatal(c, opt, err)
			}
			d := q.Dequantize()
			k := opt.Constants()
			num, lo, hi := k.Num, k.Lo, k.Hi
			for i := range x {
				code := int(q.Code(i))
				if code < lo || code > hi || q.Code(i) != q.Code(0) {
					t.Fatalf("%g %s: code %d = %d", c, opt, i, code)
				}
				e := math.Abs(float64(d.Data[i] - c))
				exact := c == 0 || c == 1 || c == -1
				if exact && e != 0 || e > 0.5/float64(num)*(1+math.Abs(float64(c))) {
					t.Fatalf("%g %s: dequantized to %g", c, opt, d.Data[i])
				}
			}
		}
	}
}

func TestGroupNotDividing(t *testing.T) {
	w := synthWeights(t, model.Config{NLayer: 1, NHead: 2, NEmbd: 40, NPositions: 16, VocabSize: 64, LayerNormE: 1e-5, TieEmbeddings: true})
	_, err := QuantizeWeights(w, Options{Scheme: Absmax, Bits: 8, Granularity: Granularity{PerGroup, 32}, Scope: ScopeLinear})
	want := "group size 32 does not divide row length 40 of h.0.attn.c_attn.weight"
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("error %v, want %q", err, want)
	}
}

func TestUnsupportedBits(t *testing.T) {
	w := synthWeights(t, tinyConfig)
	for _, bits := range []int{3, 16} {
		_, err := QuantizeWeights(w, Options{Scheme: Absmax, Bits: bits, Granularity: Granularity{Kind: PerChannel}})
		if err == nil || !strings.Contains(err.Error(), "unsupported bits") {
			t.Errorf("bits %d: error %v", bits, err)
		}
	}
}

var tinyConfig = model.Config{NLayer: 2, NHead: 2, NEmbd: 32, NPositions: 16, VocabSize: 64, LayerNormE: 1e-5, TieEmbeddings: true}

// synthWeights builds random float32 weights in memory (untied head when the config says so).
func synthWeights(t testing.TB, c model.Config) *model.Weights {
	t.Helper()
	w := &model.Weights{Config: c, Blocks: make([]model.Block, c.NLayer)}
	if !c.TieEmbeddings {
		w.Head = &model.F32{}
	}
	for i, p := range w.Params() {
		dims := model.ExpectedShape(c, p.Name)
		*p.T = model.NewF32(randn(model.NumElements(dims), 0.1, uint64(i)), dims...)
	}
	return w
}

func TestQuantizeWeightsScopes(t *testing.T) {
	c := tinyConfig
	c.TieEmbeddings = false
	w := synthWeights(t, c)
	before := w.Params()
	for scope, want := range map[string]int{ScopeAll: len(before), ScopeWeights: 2 + 4*c.NLayer + 1, ScopeLinear: 4 * c.NLayer} {
		qw, err := QuantizeWeights(w, Options{Scheme: ZeroPoint, Bits: 4, Granularity: Granularity{PerGroup, 8}, Scope: scope})
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for i, p := range qw.Params() {
			if _, ok := (*p.T).(*Tensor); ok {
				n++
				if !InScope(scope, p.Kind, model.ExpectedShape(c, p.Name)) {
					t.Errorf("%s: %s quantized", scope, p.Name)
				}
			} else if *p.T != *before[i].T {
				t.Errorf("%s: %s not shared", scope, p.Name)
			}
		}
		if n != want {
			t.Errorf("%s: %d quantized, want %d", scope, n, want)
		}
		for i, p := range w.Params() { // the source is untouched
			if *p.T != *before[i].T {
				t.Fatalf("source %s replaced", p.Name)
			}
		}
		_, err = QuantizeWeights(qw, Options{Scheme: Absmax, Bits: 8, Granularity: Granularity{Kind: PerTensor}})
		if !errors.Is(err, ErrAlreadyQuantized) || !strings.Contains(err.Error(), "already quantized") {
			t.Errorf("requantizing: %v", err)
		}
	}
}

func TestQuantizeWeightsNaN(t *testing.T) {
	w := synthWeights(t, tinyConfig)
	w.Blocks[1].FC.W.(*model.F32).Data[77] = float32(math.NaN())
	_, err := QuantizeWeights(w, Options{Scheme: Absmax, Bits: 8, Granularity: Granularity{Kind: PerChannel}})
	if err == nil || !strings.Contains(err.Error(), "h.1.mlp.c_fc.weight") || !strings.Contains(err.Error(), "NaN at flat index 77") {
		t.Errorf("error %v", err)
	}
}

func TestInt4Packing(t *testing.T) {
	x := []float32{-7, 7, 1, -1, 0}
	q, err := Quantize(x, []int{5}, Options{Scheme: Absmax, Bits: 4, Granularity: Granularity{Kind: PerTensor}})
	if err != nil {
		t.Fatal(err)
	}
	// q+8: 1, 15, 9, 7, 8 → bytes 0xF1, 0x79, 0x08.
	if want := []byte{0xf1, 0x79, 0x08}; string(q.Codes) != string(want) {
		t.Errorf("codes % x, want % x", q.Codes, want)
	}
}

// LoadQuantized gives the codes QuantizeWeights gives on the loaded model.
func TestLoadQuantizedMatchesQuantizeWeights(t *testing.T) {
	dir := t.TempDir()
	cfg := model.Config{NLayer: 2, NHead: 2, NEmbd: 64, NPositions: 32, VocabSize: 200, LayerNormE: 1e-5, TieEmbeddings: true}
	if err := model.Synth(dir, model.SynthOptions{Config: cfg, DType: "F32", Seed: 4}); err != nil {
		t.Fatal(err)
	}
	w, err := model.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	for _, opt := range []Options{
		{Scheme: Absmax, Bits: 8, Granularity: Granularity{Kind: PerChannel}},
		{Scheme: ZeroPoint, Bits: 4, Granularity: Granularity{Kind: PerGroup, Size: 32}, Scope: ScopeAll},
	} {
		want, err := QuantizeWeights(w, opt)
		if err != nil {
			t.Fatal(err)
		}
		got, err := LoadQuantized(dir, opt)
		if err != nil {
			t.Fatal(err)
		}
		wp := want.Params()
		for i, p := range got.Params() {
			switch g := (*p.T).(type) {
			case *Tensor:
				r, ok := (*wp[i].T).(*Tensor)
				if !ok || !slices.Equal(g.Codes, r.Codes) || !slices.Equal(g.Scales, r.Scales) || !slices.Equal(g.Zeros, r.Zeros) {
					t.Fatalf("%s %s: codes differ from QuantizeWeights'", opt, p.Name)
				}
			case *model.F32:
				if r, ok := (*wp[i].T).(*model.F32); !ok || !slices.Equal(g.Data, r.Data) {
					t.Fatalf("%s %s: float tensor differs", opt, p.Name)
				}
			}
		}
		got.Close()
	}
	if _, err := LoadQuantized(dir, Options{Scheme: Absmax, Bits: 3}); err == nil {
		t.Error("bad options accepted")
	}
}

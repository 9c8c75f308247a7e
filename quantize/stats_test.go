package quantize

import (
	"math"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/gpuquant/gpuquant/model"
)

func TestCompare(t *testing.T) {
	x := randn(300_000, 0.02, 9)
	x[12345] = 0.5 // a 25σ outlier
	orig := model.NewF32(x, 600, 500)
	q, err := Quantize(x, orig.Dims, Options{Scheme: Absmax, Bits: 8, Granularity: Granularity{Kind: PerTensor}})
	if err != nil {
		t.Fatal(err)
	}
	s := Compare("w", orig, q)
	d := q.Dequantize()
	var se, sx, maxE float64
	minC, maxC := 127, -128
	for i, v := range x {
		e := float64(v) - float64(d.Data[i])
		se += e * e
		sx += float64(v) * float64(v)
		maxE = max(maxE, math.Abs(e))
		minC, maxC = min(minC, int(q.Code(i))), max(maxC, int(q.Code(i)))
	}
	if s.N != int64(len(x)) || math.Abs(s.MSE-se/float64(len(x))) > 1e-12*s.MSE || s.MaxAbsErr != maxE {
		t.Errorf("stats %+v; want MSE %g, max %g", s, se/float64(len(x)), maxE)
	}
	if want := 10 * math.Log10(sx/se); math.Abs(s.SQNRdB-want) > 1e-9 {
		t.Errorf("SQNR %g, want %g", s.SQNRdB, want)
	}
	if want := float64(maxC-minC+1) / 256; s.RangeUsed != want {
		t.Errorf("RangeUsed %g, want %g", s.RangeUsed, want)
	}
	if s.Outliers != 1 {
		t.Errorf("Outliers %d, want 1", s.Outliers)
	}
	// The total of one tensor split in two equals the tensor's stats.
	a := Compare("a", model.NewF32(x[:150_000], 300, 500), mustQ(t, x[:150_000], q))
	b := Compare("b", model.NewF32(x[150_000:], 300, 500), mustQ(t, x[150_000:], q))
	tot := Total([]Stats{a, b})
	if tot.N != s.N || math.Abs(tot.MSE-s.MSE) > 1e-12*s.MSE || math.Abs(tot.SQNRdB-s.SQNRdB) > 1e-9 || tot.MaxAbsErr != s.MaxAbsErr {
		t.Errorf("total %+v, whole %+v", tot, s)
	}
	// Exact quantization: infinite SQNR.
	z := Compare("z", model.NewF32(make([]float32, 10), 10), mustQ(t, make([]float32, 10), nil))
	if z.MSE != 0 || !math.IsInf(z.SQNRdB, 1) {
		t.Errorf("zeros: %+v", z)
	}
}

// mustQ quantizes x per tensor with the same scale as ref (or its own when ref is nil).
func mustQ(t *testing.T, x []float32, ref *Tensor) *Tensor {
	q, err := Quantize(x, []int{len(x)}, Options{Scheme: Absmax, Bits: 8, Granularity: Granularity{Kind: PerTensor}})
	if err != nil {
		t.Fatal(err)
	}
	if ref != nil { // re-encode with the reference scale so that the halves match the whole
		newQuantizer(Options{Scheme: Absmax, Bits: 8}).encode(q.Codes, x, 0, ref.Scales[0], 0)
		q.Scales[0] = ref.Scales[0]
	}
	return q
}

func TestHistogram(t *testing.T) {
	x := randn(200_001, 1, 4)
	x = append(x, float32(math.NaN()), -3, 3)
	h := NewHistogram(-3, 3, 60)
	h.Add(x)
	want := NewHistogram(-3, 3, 60)
	for _, v := range x { // sequential reference
		want.add([]float32{v})
	}
	if h.Below != want.Below || h.Above != want.Above || h.Total() != int64(len(x)) {
		t.Errorf("below/above %d/%d, want %d/%d", h.Below, h.Above, want.Below, want.Above)
	}
	for i := range h.Counts {
		if h.Counts[i] != want.Counts[i] {
			t.Fatalf("bin %d: %d, want %d", i, h.Counts[i], want.Counts[i])
		}
	}
	if err := h.Merge(NewHistogram(-3, 3, 10)); err == nil {
		t.Errorf("merged mismatched histograms")
	}
	q, err := Quantize(x[:200_000], []int{400, 500}, Options{Scheme: ZeroPoint, Bits: 4, Granularity: Granularity{PerGroup, 20}})
	if err != nil {
		t.Fatal(err)
	}
	hq, hd := NewHistogram(-3, 3, 60), NewHistogram(-3, 3, 60)
	hq.AddDequantized(q)
	hd.Add(q.Dequantize().Data)
	for i := range hq.Counts {
		if hq.Counts[i] != hd.Counts[i] {
			t.Fatalf("dequantized bin %d: %d, want %d", i, hq.Counts[i], hd.Counts[i])
		}
	}
}

// BenchmarkQuantizeXL quantizes GPT-2 XL-shaped synthetic weights (scope "all"). By default
// the model is cut to 4 layers and a 4096-token vocabulary; GPUQUANT_XL_LAYERS=48 with
// GPUQUANT_XL_VOCAB=50257 runs the full 1.56 B values (about 2.5 GB of memory: every matrix is
// a view of one random buffer the size of wte, so memory is that buffer plus the codes).
func BenchmarkQuantizeXL(b *testing.B) {
	if testing.Short() {
		b.Skip("short")
	}
	c := model.Presets["gpt2-xl"]
	c.NLayer, c.VocabSize = envInt("GPUQUANT_XL_LAYERS", 4), envInt("GPUQUANT_XL_VOCAB", 4096)
	w := &model.Weights{Config: c, Blocks: make([]model.Block, c.NLayer)}
	pool := randn(max(c.VocabSize, 4*c.NEmbd)*c.NEmbd, 0.02, 1)
	var n int64
	for _, p := range w.Params() {
		dims := model.ExpectedShape(c, p.Name)
		k := model.NumElements(dims)
		*p.T = model.NewF32(pool[:k], dims...)
		n += int64(k)
	}
	opts := []Options{
		{Scheme: Absmax, Bits: 8, Granularity: Granularity{Kind: PerChannel}, Scope: ScopeAll},
		{Scheme: ZeroPoint, Bits: 4, Granularity: Granularity{PerGroup, 64}, Scope: ScopeAll},
		{Scheme: Absmax, Bits: 8, Granularity: Granularity{Kind: PerTensor}, Scope: ScopeAll},
	}
	for _, opt := range opts {
		b.Run(opt.String(), func(b *testing.B) {
			b.SetBytes(4 * n)
			for b.Loop() {
				start := time.Now()
				if _, err := QuantizeWeights(w, opt); err != nil {
					b.Fatal(err)
				}
				b.ReportMetric(float64(n)/time.Since(start).Seconds()/1e9, "Gvalues/s")
			}
			b.ReportMetric(float64(n), "values")
		})
	}
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

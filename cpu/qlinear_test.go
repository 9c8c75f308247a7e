package cpu

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/gpuquant/gpuquant/model"
	"github.com/gpuquant/gpuquant/quantize"
)

// randQTensor builds a quantized (oc, c) matrix directly: codes uniform over the full range,
// scales (multipliers) uniform in [20, 120), integer zero-points in [−8, 8] for ZeroPoint.
func randQTensor(r *rand.Rand, oc, c, bits, groupSize int, scheme quantize.Scheme) *quantize.Tensor {
	n := oc * c
	t := &quantize.Tensor{Dims: []int{oc, c}, Scheme: scheme, Bits: bits, GroupSize: groupSize}
	t.Codes = make([]byte, (n*bits+7)/8)
	for i := range t.Codes {
		t.Codes[i] = byte(r.IntN(256))
	}
	ng := n / groupSize
	t.Scales = make([]float32, ng)
	for i := range t.Scales {
		t.Scales[i] = 20 + 100*r.Float32()
	}
	if scheme == quantize.ZeroPoint {
		t.Zeros = make([]float32, ng)
		for i := range t.Zeros {
			t.Zeros[i] = float32(r.IntN(17) - 8)
		}
	}
	if err := t.Validate(); err != nil {
		panic(err)
	}
	return t
}

// groupSizes lists the granularities tested for a (oc, c) matrix: per-channel, group:32,
// group:64 (where they divide c) and per-tensor.
func groupSizes(oc, c int) []int {
	gs := []int{c}
	for _, g := range []int{32, 64} {
		if g < c && c%g == 0 {
			gs = append(gs, g)
		}
	}
	if oc > 1 {
		gs = append(gs, oc*c)
	}
	return gs
}

// refLinear is the reference: out = in·Dequantize(W)ᵀ + bias in float64, together with the
// error scale Σ_k |x_k|·(|q_k| + |z_k| + 8)/s_k (+|bias|) of each output: the kernels split
// (q − z)/s·x into q·x/s and z/s·Σx (for 4 bits with q+8 and z+8), so their float32 rounding is
// relative to that sum, not to the result.
func refLinear(w *quantize.Tensor, in, bias []float32, T int) (ref, scale []float64) {
	oc, c := w.Dims[0], w.Dims[1]
	deq := w.Dequantize().Data
	ref = make([]float64, T*oc)
	scale = make([]float64, T*oc)
	for t := 0; t < T; t++ {
		x := in[t*c : (t+1)*c]
		for j := 0; j < oc; j++ {
			var s, a float64
			for k, v := range x {
				e := j*c + k
				g := e / w.GroupSize
				z := 0.0
				if w.Zeros != nil {
					z = float64(w.Zeros[g])
				}
				s += float64(v) * float64(deq[e])
				a += math.Abs(float64(v)) * (math.Abs(float64(w.Code(e))) + math.Abs(z) + 8) / float64(w.Scales[g])
			}
			if bias != nil {
				s += float64(bias[j])
				a += math.Abs(float64(bias[j]))
			}
			ref[t*oc+j], scale[t*oc+j] = s, a
		}
	}
	return ref, scale
}

// forEachWO runs f with each available weight-only path forced (and the fp32 GEMM on the
// matching instruction set, as the prefill path uses it).
func forEachWO(t *testing.T, f func(t *testing.T)) {
	savedWO, savedISA := woISA, isa
	defer func() { woISA, isa = savedWO, savedISA }()
	for _, l := range availableWOISAs() {
		woISA = l
		isa = map[int]int{woGo: isaGo, woAVX2: isaAVX2, woAVX512: isaAVX512}[l]
		t.Run(woNames[l], f)
	}
}

func forEachW8(t *testing.T, f func(t *testing.T)) {
	saved := w8ISA
	defer func() { w8ISA = saved }()
	for _, l := range availableW8ISAs() {
		w8ISA = l
		t.Run(w8Names[l], f)
	}
}

type qcase struct {
	T, C, OC, bits, G int
	scheme            quantize.Scheme
}

func (c qcase) String() string {
	return fmt.Sprintf("T%d_C%d_OC%d_q%d_G%d_%s", c.T, c.C, c.OC, c.bits, c.G, c.scheme)
}

// qcases is the ragged test grid (sizes per the kernels' blocking: T around the GEMV/GEMM switch
// and the 6- and 4-token W8A8 tiles, OC around the 32-row panels, C around the 32-value steps).
func qcases(short bool) []qcase {
	var cs []qcase
	Ts := []int{1, 2, 3, 17, 33}
	for _, C := range []int{32, 64, 96, 768} {
		for _, OC := range []int{1, 31, 33} {
			for _, bits := range []int{8, 4} {
				for gi, G := range groupSizes(OC, C) {
					scheme := quantize.ZeroPoint
					if gi%2 == 1 {
						scheme = quantize.Absmax
					}
					for _, T := range Ts {
						if short && C == 768 && T > 3 && OC != 33 {
							continue
						}
						cs = append(cs, qcase{T, C, OC, bits, G, scheme})
					}
				}
			}
		}
	}
	for _, bits := range []int{8, 4} {
		for _, T := range []int{1, 3, 17} {
			cs = append(cs, qcase{T, 32, 50257, bits, 32, quantize.ZeroPoint})
		}
	}
	return cs
}

func runLinear(t *testing.T, be *Backend, w model.Tensor, out, in, bias []float32, T int) {
	t.Helper()
	k, err := be.linearKernel(w)
	if err != nil {
		t.Fatalf("no kernel for %T: %v", w, err)
	}
	k(out, in, bias, T)
}

func TestWeightOnlyLinear(t *testing.T) {
	forEachWO(t, func(t *testing.T) {
		r := rand.New(rand.NewPCG(1, 2))
		be := New()
		for _, tc := range qcases(woISA == woGo) {
			w := randQTensor(r, tc.OC, tc.C, tc.bits, tc.G, tc.scheme)
			in, bias := randVec(r, tc.T*tc.C), randVec(r, tc.OC)
			out := nanVec(tc.T * tc.OC)
			runLinear(t, be, w, out, in, bias, tc.T)
			ref, scale := refLinear(w, in, bias, tc.T)
			// Bound: every product and partial sum is rounded at float32 (2⁻²⁴ relative) in
			// both orders; the error grows like √K·2⁻²⁴ of the error scale (≤ 2e-6 for K ≤ 768)
			// and 1e-5 leaves margin while one wrong or missing term (~1/K ≥ 1.3e-3 of the
			// scale) fails.
			for i, v := range out {
				if d := math.Abs(float64(v) - ref[i]); !(d <= 1e-5*scale[i]) {
					t.Fatalf("%v: out[%d] = %v, want %v (|diff| %.3g > %.3g)", tc, i, v, ref[i], d, 1e-5*scale[i])
				}
			}
		}
		if len(be.KernelsUsed()) == 0 {
			t.Fatal("no kernels counted")
		}
	})
}

// refW8A8 is the W8A8 reference in float64: activations quantized per token exactly as the
// kernel specifies (absmax over non-skipped columns, round half to even), exact integer dots per
// group, then Σ_g (dot − z·Σqa)/(s_t·s_g) + bias. scale is the float32 error scale of the
// kernel's epilogue: Σ_k |qa_k|·(|q_k| + |z_k|)/(s_t·s_g) + |bias|.
func refW8A8(w *quantize.Tensor, in, bias []float32, T int, skip []bool) (ref, scale []float64) {
	oc, c := w.Dims[0], w.Dims[1]
	G := w.GroupSize
	ref = make([]float64, T*oc)
	scale = make([]float64, T*oc)
	qa := make([]int64, c)
	for t := 0; t < T; t++ {
		x := in[t*c : (t+1)*c]
		var m float32
		for k, v := range x {
			if skip == nil || !skip[k] {
				m = max(m, float32(math.Abs(float64(v))))
			}
		}
		st := float32(1)
		if m > 0 {
			st = 127 / m
		}
		for k, v := range x {
			qa[k] = 0
			if skip == nil || !skip[k] {
				qa[k] = int64(math.RoundToEven(float64(v * st)))
			}
		}
		for j := 0; j < oc; j++ {
			var s, a float64
			var dot, qs int64
			for k := 0; k < c; k++ {
				e := j*c + k
				dot += qa[k] * int64(w.Code(e))
				qs += qa[k]
				if k == c-1 || (e+1)%G == 0 { // group ends
					g := e / G
					z := 0.0
					if w.Zeros != nil {
						z = float64(w.Zeros[g])
					}
					s += (float64(dot) - z*float64(qs)) / (float64(st) * float64(w.Scales[g]))
					dot, qs = 0, 0
				}
				z := 0.0
				if w.Zeros != nil {
					z = float64(w.Zeros[e/G])
				}
				a += math.Abs(float64(qa[k])) * (math.Abs(float64(w.Code(e))) + math.Abs(z)) / (float64(st) * float64(w.Scales[e/G]))
			}
			if bias != nil {
				s += float64(bias[j])
				a += math.Abs(float64(bias[j]))
			}
			ref[t*oc+j], scale[t*oc+j] = s, a
		}
	}
	return ref, scale
}

func TestW8A8Linear(t *testing.T) {
	forEachW8(t, func(t *testing.T) {
		r := rand.New(rand.NewPCG(3, 4))
		be, err := NewWith(Options{Kernel: quantize.KernelW8A8})
		if err != nil {
			t.Fatal(err)
		}
		for _, tc := range qcases(w8ISA == w8Go) {
			w := randQTensor(r, tc.OC, tc.C, tc.bits, tc.G, tc.scheme)
			in, bias := randVec(r, tc.T*tc.C), randVec(r, tc.OC)
			out := nanVec(tc.T * tc.OC)
			runLinear(t, be, w, out, in, bias, tc.T)
			ref, scale := refW8A8(w, in, bias, tc.T, nil)
			// The integer part is exact; the epilogue rounds each group's float(dot)·(1/s),
			// z/s·Σqa and their running sum at float32, so 1e-5 of the error scale (Σ of the
			// magnitudes combined, as for weight-only) bounds it.
			for i, v := range out {
				if d := math.Abs(float64(v) - ref[i]); !(d <= 1e-5*scale[i]) {
					t.Fatalf("%v: out[%d] = %v, want %v (|diff| %.3g > %.3g)", tc, i, v, ref[i], d, 1e-5*scale[i])
				}
			}
		}
		used := be.KernelsUsed()
		if used["w8a8-"+w8Names[w8ISA]] == 0 {
			t.Fatalf("kernel w8a8-%s never ran: %v", w8Names[w8ISA], used)
		}
	})
}

// TestW8A8Outliers plants a few large-magnitude input channels: the LLM.int8() decomposition must
// track the float reference much better than plain per-token W8A8, whose scale they blow up.
func TestW8A8Outliers(t *testing.T) {
	forEachW8(t, func(t *testing.T) {
		r := rand.New(rand.NewPCG(5, 6))
		T, C, OC := 9, 256, 40
		for _, bits := range []int{8, 4} {
			w := randQTensor(r, OC, C, bits, 64, quantize.ZeroPoint)
			in, bias := randVec(r, T*C), randVec(r, OC)
			for _, k := range []int{3, 77, 200} {
				in[r.IntN(T)*C+k] = 60 * float32(1+r.IntN(3)) // planted outliers
			}
			ref, _ := refLinear(w, in, bias, T)
			errOf := func(o Options) float64 {
				be, err := NewWith(o)
				if err != nil {
					t.Fatal(err)
				}
				out := nanVec(T * OC)
				runLinear(t, be, w, out, in, bias, T)
				var e float64
				for i, v := range out {
					e += (float64(v) - ref[i]) * (float64(v) - ref[i])
				}
				if o.OutlierThreshold > 0 && be.KernelsUsed()["w8a8-outliers-f32"] != 1 {
					t.Fatalf("outlier path not taken: %v", be.KernelsUsed())
				}
				return math.Sqrt(e / float64(len(out)))
			}
			plain := errOf(Options{Kernel: quantize.KernelW8A8})
			split := errOf(Options{Kernel: quantize.KernelW8A8, OutlierThreshold: 6})
			t.Logf("q%d: RMS error vs float: plain W8A8 %.4g, with outliers in float %.4g", bits, plain, split)
			if !(split < plain/4) {
				t.Fatalf("q%d: outlier decomposition error %.4g not well below plain W8A8 %.4g", bits, split, plain)
			}
			// And against its own exact reference (outlier columns excluded, then added in float).
			skip := make([]bool, C)
			for _, k := range []int{3, 77, 200} {
				skip[k] = true
			}
			be, _ := NewWith(Options{Kernel: quantize.KernelW8A8, OutlierThreshold: 6})
			out := nanVec(T * OC)
			runLinear(t, be, w, out, in, bias, T)
			r8, sc := refW8A8(w, in, bias, T, skip)
			for i := range out {
				var fo, fa float64
				for _, k := range []int{3, 77, 200} {
					e := (i%OC)*C + k
					d := w.Dequantize().Data[e]
					fo += float64(in[(i/OC)*C+k]) * float64(d)
					fa += math.Abs(float64(in[(i/OC)*C+k]) * float64(d))
				}
				want := r8[i] + fo
				if d := math.Abs(float64(out[i]) - want); !(d <= 1e-5*(sc[i]+fa)) {
					t.Fatalf("q%d: out[%d] = %v, want %v", bits, i, out[i], want)
				}
			}
		}
	})
}

func TestNewWithOptions(t *testing.T) {
	if _, err := NewWith(Options{Kernel: "int3"}); err == nil || !strings.Contains(err.Error(), "unknown kernel") {
		t.Fatalf("unknown kernel: err = %v", err)
	}
	if _, err := NewWith(Options{OutlierThreshold: -1}); err == nil {
		t.Fatal("negative threshold accepted")
	}
	for _, k := range []string{"", quantize.KernelAuto, quantize.KernelWeightOnly, quantize.KernelW8A8} {
		if _, err := NewWith(Options{Kernel: k}); err != nil {
			t.Fatalf("%q: %v", k, err)
		}
	}
	// Auto is weight-only; concurrent calls count atomically.
	be := New()
	r := rand.New(rand.NewPCG(7, 8))
	w := randQTensor(r, 64, 64, 8, 32, quantize.Absmax)
	f := model.NewF32(randVec(r, 64*64), 64, 64)
	in := randVec(r, 64)
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out := make([]float32, 64)
			for range 10 {
				be.Linear(&Buf{rows: 1, cols: 64, Data: out}, &Buf{rows: 1, cols: 64, Data: in}, w, nil)
				be.Linear(&Buf{rows: 1, cols: 64, Data: out}, &Buf{rows: 1, cols: 64, Data: in}, f, nil)
			}
		}()
	}
	wg.Wait()
	used := be.KernelsUsed()
	var q8, f32 int64
	for k, v := range used {
		switch {
		case strings.HasPrefix(k, "q8-weight-only-"):
			q8 += v
		case strings.HasPrefix(k, "f32-"):
			f32 += v
		case strings.HasPrefix(k, "w8a8"):
			t.Fatalf("auto ran W8A8: %v", used)
		}
	}
	if q8 != 80 || f32 != 80 {
		t.Fatalf("KernelsUsed = %v, want 80 q8 and 80 f32 calls", used)
	}
	// Unsupported layouts are refused by linearKernel (and so by Upload).
	bad := randQTensor(r, 4, 48, 8, 32*3, quantize.Absmax) // group of 96 straddles rows of 48? 96 = 2 rows: fine
	if _, err := be.linearKernel(bad); err != nil {
		t.Fatalf("group of two whole rows refused: %v", err)
	}
	bad = randQTensor(r, 4, 48, 8, 64, quantize.Absmax) // 64 neither divides nor is a multiple of 48
	if _, err := be.linearKernel(bad); err == nil || !strings.Contains(err.Error(), "neither divides") {
		t.Fatalf("group straddling rows: error %v", err)
	}
	odd := randQTensor(r, 4, 63, 4, 63, quantize.Absmax) // int4 codes of odd rows cannot pair up
	if _, err := be.linearKernel(odd); err == nil || !strings.Contains(err.Error(), "even length") {
		t.Fatalf("int4 with odd rows: error %v", err)
	}
}

// benchWeights returns enough distinct copies of a weight to exceed minBytes in total, so that
// decode benchmarks stream from DRAM as a whole model does (GPT-2 124M is 500 MB in fp32, 124 MB
// in int8, 62 MB+ in int4, all beyond this machine's 32 MiB L3), not from L3.
func benchWeights(w model.Tensor, minBytes int64) []model.Tensor {
	n := int((minBytes + w.Bytes() - 1) / w.Bytes())
	ws := []model.Tensor{w}
	for len(ws) < n {
		switch w := w.(type) {
		case *model.F32:
			ws = append(ws, model.NewF32(slices.Clone(w.Data), w.Dims...))
		case *quantize.Tensor:
			c := *w
			c.Codes = slices.Clone(w.Codes)
			c.Scales = slices.Clone(w.Scales)
			c.Zeros = slices.Clone(w.Zeros)
			ws = append(ws, &c)
		}
	}
	return ws
}

// BenchmarkQLinear compares fp32, weight-only int8/int4 and W8A8 Linear on GPT-2 124M shapes.
// Decode (T=1) reports the weight bytes streamed per second (codes, scales and zero-points
// included) with the weights cycled through ≥ 128 MB of copies; prefill reports GFLOP/s.
func BenchmarkQLinear(b *testing.B) {
	type format struct {
		name   string
		kernel string
		bits   int
		group  int // 0: per channel
		scheme quantize.Scheme
	}
	formats := []format{
		{"f32", quantize.KernelAuto, 32, 0, ""},
		{"q8-channel-weight-only", quantize.KernelWeightOnly, 8, 0, quantize.Absmax},
		{"q8-g64-weight-only", quantize.KernelWeightOnly, 8, 64, quantize.ZeroPoint},
		{"q4-g32-weight-only", quantize.KernelWeightOnly, 4, 32, quantize.ZeroPoint},
		{"q4-g32-absmax-weight-only", quantize.KernelWeightOnly, 4, 32, quantize.Absmax},
		{"q4-g64-weight-only", quantize.KernelWeightOnly, 4, 64, quantize.Absmax},
		{"w8a8-q8-channel", quantize.KernelW8A8, 8, 0, quantize.Absmax},
		{"w8a8-q8-g64", quantize.KernelW8A8, 8, 64, quantize.ZeroPoint},
		{"w8a8-q4-g32", quantize.KernelW8A8, 4, 32, quantize.ZeroPoint},
	}
	for _, s := range [][3]int{{1, 768, 3072}, {1, 768, 768}, {1, 3072, 768}, {512, 768, 3072}} {
		T, C, OC := s[0], s[1], s[2]
		for _, f := range formats {
			b.Run(fmt.Sprintf("T%d_C%d_OC%d/%s", T, C, OC, f.name), func(b *testing.B) {
				r := rand.New(rand.NewPCG(21, 22))
				var w model.Tensor
				if f.bits == 32 {
					w = model.NewF32(randVec(r, OC*C), OC, C)
				} else {
					g := C
					if f.group > 0 {
						g = f.group
					}
					w = randQTensor(r, OC, C, f.bits, g, f.scheme)
				}
				ws := []model.Tensor{w}
				if T == 1 {
					ws = benchWeights(w, 128<<20)
				}
				be, err := NewWith(Options{Kernel: f.kernel})
				if err != nil {
					b.Fatal(err)
				}
				in, bias := randVec(r, T*C), randVec(r, OC)
				out := &Buf{rows: T, cols: OC, Data: make([]float32, T*OC)}
				x := &Buf{rows: T, cols: C, Data: in}
				bb := model.NewF32(bias, OC)
				for _, w := range ws { // prepare (cached per tensor) outside the timing
					be.Linear(out, x, w, bb)
				}
				i := 0
				b.ResetTimer()
				for b.Loop() {
					be.Linear(out, x, ws[i%len(ws)], bb)
					i++
				}
				sec := b.Elapsed().Seconds()
				if T == 1 {
					b.ReportMetric(float64(w.Bytes())*float64(b.N)/sec/1e9, "GB/s")
				} else {
					b.ReportMetric(2*float64(T*C*OC)*float64(b.N)/sec/1e9, "GFLOP/s")
				}
			})
		}
	}
}

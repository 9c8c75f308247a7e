package cpu

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

var vecLens = []int{0, 1, 7, 8, 9, 15, 16, 17, 31, 32, 33, 1000}

// forVecISAs runs fn once per vector path this CPU runs.
func forVecISAs(t *testing.T, fn func(t *testing.T, name string)) {
	saved := vecISA
	defer func() { vecISA = saved }()
	for _, l := range availableISAs() {
		vecISA = l
		fn(t, []string{isaGo: "go", isaAVX2: "avx2", isaAVX512: "avx512"}[l])
	}
}

func randF32(r *rand.Rand, n int, lo, hi float64) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(lo + r.Float64()*(hi-lo))
	}
	return v
}

func relErr(got, want float64) float64 {
	if got == want {
		return 0
	}
	return math.Abs(got-want) / math.Abs(want)
}

// TestExpVec checks e^x against math.Exp to 4e-7 relative on [−87, 88], the saturation to 0 and
// +Inf, NaN propagation, and that nothing is written past n.
func TestExpVec(t *testing.T) {
	forVecISAs(t, func(t *testing.T, name string) {
		r := rand.New(rand.NewPCG(3, 4))
		for _, n := range append(vecLens, 100000) {
			src := randF32(r, n, -87, 88)
			if n > 8 {
				copy(src, []float32{0, -87.3, 88.3, 88.5, 88.7, -1e-30, 1e-30, -0.34657})
			}
			dst := nanVec(n + 3)
			sum := expScaleSum(dst[:n], src, 0, 1)
			var want64, worst float64
			for i, x := range src {
				want := math.Exp(float64(x))
				want64 += float64(dst[i])
				e := relErr(float64(dst[i]), want)
				worst = max(worst, e)
				if !(e <= 4e-7) {
					t.Fatalf("%s n=%d: e^%v = %v, want %v (rel %g)", name, n, x, dst[i], want, e)
				}
			}
			if e := relErr(float64(sum), want64); want64 < math.MaxFloat32/2 && !(e <= 1e-5) {
				t.Fatalf("%s n=%d: sum %v, want %v", name, n, sum, want64)
			}
			for _, v := range dst[n:] {
				if v == v {
					t.Fatalf("%s n=%d: wrote past the end", name, n)
				}
			}
			if n == 100000 {
				t.Logf("%s: max relative error %.3g on [−87, 88]", name, worst)
			}
		}
		// Saturation, NaN, the scale/sub arguments and in-place use.
		src := []float32{100, 88.8, 89, 1e30, float32(math.Inf(1)), -87.5, -88, -100, -1e30, float32(math.Inf(-1)), float32(math.NaN()), 2, 3, 4, 5, 6, 7}
		want := []float64{math.Inf(1), math.Inf(1), math.Inf(1), math.Inf(1), math.Inf(1), 0, 0, 0, 0, 0, math.NaN()}
		dst := nanVec(len(src))
		expScaleSum(dst, src, 0, 1)
		for i, w := range want {
			if g := float64(dst[i]); !(g == w || math.IsNaN(g) && math.IsNaN(w)) {
				t.Fatalf("%s: e^%v = %v, want %v", name, src[i], g, w)
			}
		}
		x := []float32{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}
		s := expScaleSum(x, x, 10, 0.5)
		var ws float64
		for i := range x {
			w := math.Exp(float64(i+1-10) * 0.5)
			ws += w
			if relErr(float64(x[i]), w) > 4e-7 {
				t.Fatalf("%s: in place e^((%d−10)·0.5) = %v, want %v", name, i+1, x[i], w)
			}
		}
		if relErr(float64(s), ws) > 1e-6 {
			t.Fatalf("%s: sum %v, want %v", name, s, ws)
		}
	})
}

func TestGELUVec(t *testing.T) {
	forVecISAs(t, func(t *testing.T, name string) {
		r := rand.New(rand.NewPCG(5, 6))
		for _, n := range vecLens {
			x := randF32(r, n+3, -12, 12)
			for i := range x {
				if i%5 == 0 {
					x[i] = float32(r.NormFloat64())
				}
			}
			if n > 10 {
				copy(x, []float32{0, -30, 30, 1e20, -1e20, -5.5})
			}
			orig := slices.Clone(x)
			for i := n; i < len(x); i++ {
				x[i] = float32(math.NaN())
			}
			geluVec(x[:n])
			for i, v := range orig[:n] {
				xv := float64(v)
				want := 0.5 * xv * (1 + math.Tanh(math.Sqrt(2/math.Pi)*(xv+0.044715*xv*xv*xv)))
				if math.Abs(float64(x[i])-want) > 1e-6*math.Max(1, math.Abs(want)) {
					t.Fatalf("%s n=%d: gelu(%v) = %v, want %v", name, n, v, x[i], want)
				}
			}
			for _, v := range x[n:] {
				if v == v {
					t.Fatalf("%s n=%d: wrote past the end", name, n)
				}
			}
		}
	})
}

func TestMaxAbsmaxAddScaleVec(t *testing.T) {
	forVecISAs(t, func(t *testing.T, name string) {
		r := rand.New(rand.NewPCG(7, 8))
		for _, n := range vecLens {
			x := randF32(r, n, -50, 10)
			if n > 0 {
				x[r.IntN(n)] = 33 // the max anywhere, tails included
				if got, want := maxVec(x), maxGo(x); got != want {
					t.Fatalf("%s n=%d: max %v, want %v", name, n, got, want)
				}
				neg := randF32(r, n, -50, -1)
				if got, want := maxVec(neg), maxGo(neg); got != want {
					t.Fatalf("%s n=%d: max of negatives %v, want %v", name, n, got, want)
				}
			}
			if got, want := absmaxVec(x), absmaxGo(x); got != want {
				t.Fatalf("%s n=%d: absmax %v, want %v", name, n, got, want)
			}
			a, b := randF32(r, n+2, -1, 1), randF32(r, n+2, -1, 1)
			a[n], a[n+1] = float32(math.NaN()), float32(math.NaN())
			want := slices.Clone(a)
			addGo(want[:n], b[:n])
			addVec(a[:n], b[:n])
			if !slices.EqualFunc(a, want, func(p, q float32) bool { return p == q || p != p && q != q }) {
				t.Fatalf("%s n=%d: add differs", name, n)
			}
			want = slices.Clone(a)
			scaleGo(want[:n], 0.37)
			scaleVec(a[:n], 0.37)
			if !slices.EqualFunc(a, want, func(p, q float32) bool { return p == q || p != p && q != q }) {
				t.Fatalf("%s n=%d: scale differs", name, n)
			}
		}
	})
}

// TestQuantRowVec checks that the vector codes equal the Go ones exactly, ties x·s = k + 0.5
// included (round half to even), with and without the unsigned copy.
func TestQuantRowVec(t *testing.T) {
	forVecISAs(t, func(t *testing.T, name string) {
		r := rand.New(rand.NewPCG(9, 10))
		for _, n := range vecLens {
			for rep := range 4 {
				x := randF32(r, n, -3, 3)
				scale := float32(1)
				switch rep {
				case 1: // exact ties k+0.5 with scale 1
					for i := range x {
						x[i] = float32(r.IntN(255)-127) + 0.5
						x[i] = max(-127.5, min(127.5, x[i]))
					}
				case 2: // ties after scaling by 2
					scale = 2
					for i := range x {
						x[i] = (float32(r.IntN(254)-127) + 0.5) / 2
					}
				case 3: // the absmax scale
					if m := absmaxGo(x); m > 0 {
						scale = 127 / m
					}
				}
				wq, wu := make([]int8, n+2), make([]byte, n+2)
				gq, gu := make([]int8, n+2), make([]byte, n+2)
				for _, s := range [][]int8{wq, gq} {
					s[n], s[n+1] = 0x55, 0x55
				}
				for _, s := range [][]byte{wu, gu} {
					s[n], s[n+1] = 0x55, 0x55
				}
				quantRowGo(wq[:n], wu[:n], x, scale)
				quantRowVec(gq[:n], gu[:n], x, scale)
				if !slices.Equal(gq, wq) || !slices.Equal(gu, wu) {
					t.Fatalf("%s n=%d rep %d: codes differ\n got %v\nwant %v", name, n, rep, gq, wq)
				}
				gq2 := make([]int8, n)
				quantRowVec(gq2, nil, x, scale)
				if !slices.Equal(gq2, wq[:n]) {
					t.Fatalf("%s n=%d rep %d: codes without u8 differ", name, n, rep)
				}
			}
		}
	})
}

// quantizeActsRef is the scalar per-token quantization quantizeActs had before the vector
// kernels: the codes must stay identical.
func quantizeActsRef(in []float32, T, c int, skip []bool) ([]int8, []float32) {
	qa, inv := make([]int8, T*c), make([]float32, T)
	for t := range T {
		x := in[t*c : (t+1)*c]
		var m float32
		for k, v := range x {
			if skip != nil && skip[k] {
				continue
			}
			m = max(m, float32(math.Abs(float64(v))))
		}
		scale := float32(1)
		if m > 0 {
			scale = 127 / m
		}
		inv[t] = 1 / scale
		for k, v := range x {
			if skip != nil && skip[k] {
				continue
			}
			r := math.RoundToEven(float64(v * scale))
			qa[t*c+k] = int8(min(127, max(-127, r)))
		}
	}
	return qa, inv
}

func TestQuantizeActsExact(t *testing.T) {
	forVecISAs(t, func(t *testing.T, name string) {
		r := rand.New(rand.NewPCG(11, 12))
		for _, c := range []int{1, 15, 16, 17, 33, 768, 1000} {
			for rep := range 3 {
				T := 1 + r.IntN(20)
				in := randF32(r, T*c, -4, 4)
				if rep == 1 { // ties: max 127 per row, x·s = k + 0.5 exactly
					for i := range in {
						in[i] = float32(r.IntN(254)-127) + 0.5
					}
					for tt := range T {
						in[tt*c] = 127
					}
				}
				if T > 2 {
					clear(in[c : 2*c]) // an all-zero row
				}
				var skip []bool
				if rep == 2 {
					skip = make([]bool, c)
					for k := range skip {
						skip[k] = r.IntN(4) == 0
					}
					in[r.IntN(len(in))] = 1e6 // an outlier in some column
				}
				wq, winv := quantizeActsRef(in, T, c, skip)
				for _, l := range availableW8ISAs() {
					a := quantizeActs(in, T, c, c, skip, l, true)
					if !slices.Equal(a.qa, wq) || !slices.Equal(a.inv, winv) {
						t.Fatalf("%s c=%d rep %d %s: codes or scales differ", name, c, rep, w8Names[l])
					}
					if a.u8 != nil {
						for i, v := range a.qa {
							if a.u8[i] != byte(v)^0x80 {
								t.Fatalf("%s c=%d rep %d: u8[%d] = %d for code %d", name, c, rep, i, a.u8[i], v)
							}
						}
					}
				}
			}
		}
	})
}

// TestAttentionPacked compares the packed causal attention (prefill path) with the GemmNT path,
// for every ISA, head sizes that are and are not multiples of the kernel width, ragged T and a
// KV-cache prefix.
func TestAttentionPacked(t *testing.T) {
	savedISA, savedVec := isa, vecISA
	defer func() { isa, vecISA, attnPacked = savedISA, savedVec, true }()
	r := rand.New(rand.NewPCG(15, 16))
	be := New()
	for _, l := range availableISAs() {
		isa, vecISA = l, l
		for _, cfg := range [][3]int{{16, 0, 32}, {17, 0, 64}, {70, 0, 64}, {131, 5, 64}, {40, 33, 32}, {64, 0, 16}, {20, 3, 24}, {300, 7, 64}} {
			T, pos0, hd := cfg[0], cfg[1], cfg[2]
			nHead := 1 + r.IntN(3)
			C := nHead * hd
			qkv := &Buf{rows: T, cols: 3 * C, Data: randF32(r, T*3*C, -2, 2)}
			var outs [2][]float32
			for i, packed := range []bool{true, false} {
				attnPacked = packed
				kc := &Buf{rows: pos0 + T, cols: C, Data: make([]float32, (pos0+T)*C)}
				vc := &Buf{rows: pos0 + T, cols: C, Data: make([]float32, (pos0+T)*C)}
				r2 := rand.New(rand.NewPCG(uint64(T), 1)) // same cache prefix both times
				for j := range pos0 * C {
					kc.Data[j], vc.Data[j] = float32(r2.NormFloat64()), float32(r2.NormFloat64())
				}
				out := &Buf{rows: T, cols: C, Data: nanVec(T * C)}
				be.Attention(out, qkv, kc, vc, pos0, nHead)
				outs[i] = out.Data
			}
			for i := range outs[0] {
				if d := math.Abs(float64(outs[0][i] - outs[1][i])); !(d <= 2e-6) {
					t.Fatalf("isa %d T%d pos0 %d hd%d heads %d: out[%d] = %v, GemmNT path %v", l, T, pos0, hd, nHead, i, outs[0][i], outs[1][i])
				}
			}
		}
	}
}

func TestLayerNormVec(t *testing.T) {
	forVecISAs(t, func(t *testing.T, name string) {
		r := rand.New(rand.NewPCG(17, 18))
		for _, n := range vecLens[1:] {
			src := randF32(r, n, -3, 5)
			g, b := randF32(r, n, 0.5, 1.5), randF32(r, n, -1, 1)
			want := make([]float32, n)
			layerNormGo(want, src, g, b, 1e-5)
			got := nanVec(n + 2)
			layerNormVec(got[:n], src, g, b, 1e-5)
			for i := range want {
				if d := math.Abs(float64(got[i] - want[i])); !(d <= 2e-5) {
					t.Fatalf("%s n=%d: out[%d] = %v, want %v", name, n, i, got[i], want[i])
				}
			}
			if got[n] == got[n] || got[n+1] == got[n+1] {
				t.Fatalf("%s n=%d: wrote past the end", name, n)
			}
		}
	})
}

// BenchmarkAttentionPrefill is one GPT-2 124M layer's attention over a 1024-token window.
func BenchmarkAttentionPrefill(b *testing.B) {
	const T, nHead, hd = 1024, 12, 64
	C := nHead * hd
	r := rand.New(rand.NewPCG(1, 1))
	be := New()
	qkv := &Buf{rows: T, cols: 3 * C, Data: randF32(r, T*3*C, -2, 2)}
	kc, vc := be.NewBuf(T, C), be.NewBuf(T, C)
	out := be.NewBuf(T, C)
	defer func() { attnPacked = true }()
	for _, packed := range []bool{true, false} {
		b.Run(map[bool]string{true: "packed", false: "gemmnt"}[packed], func(b *testing.B) {
			attnPacked = packed
			for range b.N {
				be.Attention(out, qkv, kc, vc, 0, nHead)
			}
		})
	}
}

// TestAccumRows checks the strided value sum against float64 on every path, for head widths the
// kernel takes (64) and falls back on (12, 32), with a guard after the output.
func TestAccumRows(t *testing.T) {
	r := rand.New(rand.NewPCG(4, 4))
	forVecISAs(t, func(t *testing.T, name string) {
		for _, hd := range []int{12, 32, 64} {
			for _, n := range []int{1, 2, 17, 300} {
				stride := 3*hd + 5
				v := randF32(r, n*stride, -1, 1)
				p := randF32(r, n, 0, 1)
				out := make([]float32, hd+1)
				for i := range out {
					out[i] = float32(math.NaN())
				}
				accumRows(out[:hd], v, stride, p)
				for d := range hd {
					var want, mag float64
					for j := range n {
						want += float64(p[j]) * float64(v[j*stride+d])
						mag += math.Abs(float64(p[j]) * float64(v[j*stride+d]))
					}
					// float32 accumulation over n terms: n·2⁻²⁴ of the magnitude bounds the error.
					if math.Abs(float64(out[d])-want) > float64(n)*6e-8*mag+1e-30 {
						t.Fatalf("%s hd %d n %d: out[%d] = %v, want %v", name, hd, n, d, out[d], want)
					}
				}
				if !math.IsNaN(float64(out[hd])) {
					t.Fatalf("%s hd %d: wrote past the output", name, hd)
				}
			}
		}
	})
}

// TestScoreRows checks the strided score rows against float64 on every path, for head widths the
// kernel takes (64) and falls back on (12, 32), ragged position counts (the kernel takes blocks of
// 16, the rest go through gemvNT), NaN-poisoned outputs and a guard after the last.
func TestScoreRows(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 5))
	forVecISAs(t, func(t *testing.T, name string) {
		for _, hd := range []int{12, 32, 64} {
			for _, n := range []int{1, 3, 15, 16, 17, 31, 32, 33, 47, 300} {
				stride := 3*hd + 5
				k := randF32(r, n*stride, -1, 1)
				q := randF32(r, hd, -2, 2)
				out := make([]float32, n+1)
				for i := range out {
					out[i] = float32(math.NaN())
				}
				scoreRows(out[:n], q, k, stride)
				for j := range n {
					var want, mag float64
					for d := range hd {
						want += float64(q[d]) * float64(k[j*stride+d])
						mag += math.Abs(float64(q[d]) * float64(k[j*stride+d]))
					}
					if math.Abs(float64(out[j])-want) > float64(hd)*6e-8*mag+1e-30 {
						t.Fatalf("%s hd %d n %d: out[%d] = %v, want %v", name, hd, n, j, out[j], want)
					}
				}
				if !math.IsNaN(float64(out[n])) {
					t.Fatalf("%s hd %d n %d: wrote past the output", name, hd, n)
				}
			}
		}
	})
}

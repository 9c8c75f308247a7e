package cpu

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

var isaNames = map[int]string{isaGo: "go", isaAVX2: "avx2", isaAVX512: "avx512"}

// forEachISA runs f once per instruction-set path available on this CPU
// (always including the forced pure-Go path), restoring the default after.
func forEachISA(t *testing.T, f func(t *testing.T)) {
	saved := isa
	defer func() { isa = saved }()
	for _, l := range availableISAs() {
		isa = l
		t.Run(isaNames[l], f)
	}
}

// randVec returns n values uniform in ±[0.1, 1.1) (never zero, random sign).
func randVec(r *rand.Rand, n int) []float32 {
	v := make([]float32, n)
	for i := range v {
		x := 0.1 + r.Float32()
		if r.IntN(2) == 0 {
			x = -x
		}
		v[i] = x
	}
	return v
}

func nanVec(n int) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(math.NaN())
	}
	return v
}

// tolerance for a K-term float32 dot product computed in a different
// summation order than the reference: both results carry rounding error of
// at most ~K·2⁻²⁴·Σ|a||b| in the worst case and ~√K·2⁻²⁴·Σ|a||b| typically,
// so 1e-5·Σ|a||b| (plus a tiny absolute term) is loose for the K ≤ ~1000 used
// here yet catches any wrong or missing term (each term is ≥ 0.01 in size).
func tol(absSum float64) float64 { return 1e-5*absSum + 1e-30 }

var raggedSizes = []int{1, 2, 3, 15, 16, 17, 31, 33, 64, 100}

func checkGemmNT(t *testing.T, r *rand.Rand, M, N, K int, withBias bool, lda, ldb, ldo int) {
	t.Helper()
	a := randVec(r, (M-1)*lda+K)
	b := randVec(r, (N-1)*ldb+K)
	var bias []float32
	if withBias {
		bias = randVec(r, N)
	}
	const guard = 7
	out := nanVec((M-1)*ldo + N + guard)
	GemmNT(M, N, K, a, lda, b, ldb, bias, out, ldo)
	for i := 0; i < M; i++ {
		for j := 0; j < N; j++ {
			var ref, abs float64
			for k := 0; k < K; k++ {
				p := float64(a[i*lda+k]) * float64(b[j*ldb+k])
				ref += p
				abs += math.Abs(p)
			}
			if bias != nil {
				ref += float64(bias[j])
				abs += math.Abs(float64(bias[j]))
			}
			got := float64(out[i*ldo+j])
			if !(math.Abs(got-ref) <= tol(abs)) {
				t.Fatalf("M=%d N=%d K=%d bias=%v: out[%d,%d]=%v want %v", M, N, K, withBias, i, j, got, ref)
			}
		}
		// The gap between N and ldo (and the guard after the last row) must
		// still hold the NaN poison.
		end := ldo
		if i == M-1 {
			end = N + guard
		}
		for j := N; j < end; j++ {
			if v := out[i*ldo+j]; !math.IsNaN(float64(v)) {
				t.Fatalf("M=%d N=%d K=%d: guard out[%d*%d+%d] overwritten with %v", M, N, K, i, ldo, j, v)
			}
		}
	}
}

func TestGemmNT(t *testing.T) {
	forEachISA(t, func(t *testing.T) {
		r := rand.New(rand.NewPCG(1, 2))
		for _, M := range raggedSizes {
			for _, N := range raggedSizes {
				for _, K := range raggedSizes {
					withBias := (M+N+K)%2 == 0
					checkGemmNT(t, r, M, N, K, withBias, K+M%3, K+N%5, N+3)
				}
			}
		}
		// Bias on and off for one mid-size ragged shape, K spanning several
		// gemmKC blocks, N spanning several gemmNC blocks.
		for _, withBias := range []bool{false, true} {
			checkGemmNT(t, r, 37, 1100, 600, withBias, 601, 603, 1105)
			checkGemmNT(t, r, 7, 45, gemmKC*2+5, withBias, gemmKC*2+5, gemmKC*2+5, 45)
		}
		// Attention-like: K=64 head dim, strided q/k rows.
		checkGemmNT(t, r, 33, 100, 64, false, 3*96, 96, 101)
		// The LM-head width (odd) with small M and K.
		checkGemmNT(t, r, 3, 50257, 5, true, 5, 5, 50257)
		checkGemmNT(t, r, 1, 50257, 17, false, 17, 17, 50260)
	})
}

func TestMatMul(t *testing.T) {
	forEachISA(t, func(t *testing.T) {
		r := rand.New(rand.NewPCG(3, 4))
		shapes := [][3]int{{1, 64, 100}, {1, 33, 7}, {2, 31, 50}, {5, 17, 3}, {7, 100, 257}, {64, 64, 64}, {100, 33, 2}, {13, 768, 1},
			// Big enough (≥ 1<<16 MACs) to run on several goroutines: split over OC (T=1, T small) and over T.
			{1, 300, 301}, {9, 64, 300}, {50, 40, 70}, {67, 129, 1000}}
		for _, s := range shapes {
			for _, withBias := range []bool{false, true} {
				T, C, OC := s[0], s[1], s[2]
				in := randVec(r, T*C)
				w := randVec(r, OC*C)
				var bias []float32
				if withBias {
					bias = randVec(r, OC)
				}
				out := nanVec(T*OC + 5)
				MatMul(out, in, w, bias, T, C, OC)
				ref := make([]float32, T*OC)
				gemmNTGo(T, OC, C, in, C, w, C, bias, ref, OC)
				for i := range ref {
					tt, j := i/OC, i%OC
					var abs float64
					for k := 0; k < C; k++ {
						abs += math.Abs(float64(in[tt*C+k]) * float64(w[j*C+k]))
					}
					if bias != nil {
						abs += math.Abs(float64(bias[j]))
					}
					// Reference summed in float32 too: allow both errors.
					if !(math.Abs(float64(out[i])-float64(ref[i])) <= 2*tol(abs)) {
						t.Fatalf("T=%d C=%d OC=%d bias=%v: out[%d]=%v want %v", T, C, OC, withBias, i, out[i], ref[i])
					}
				}
				for i := T * OC; i < len(out); i++ {
					if !math.IsNaN(float64(out[i])) {
						t.Fatalf("T=%d C=%d OC=%d: guard out[%d] overwritten", T, C, OC, i)
					}
				}
			}
		}
	})
}

func TestDotAxpy(t *testing.T) {
	forEachISA(t, func(t *testing.T) {
		r := rand.New(rand.NewPCG(5, 6))
		for _, n := range append([]int{0, 4, 7, 8, 9, 63, 64, 65, 200, 768, 1001}, raggedSizes...) {
			a, b := randVec(r, n), randVec(r, n)
			var ref, abs float64
			for i := range a {
				ref += float64(a[i]) * float64(b[i])
				abs += math.Abs(float64(a[i]) * float64(b[i]))
			}
			if got := float64(Dot(a, b)); !(math.Abs(got-ref) <= tol(abs)) {
				t.Fatalf("Dot n=%d: got %v want %v", n, got, ref)
			}

			alpha := float32(0.5 + r.Float64())
			y := randVec(r, n+3)
			y[n], y[n+1], y[n+2] = float32(math.NaN()), float32(math.NaN()), float32(math.NaN())
			y0 := append([]float32(nil), y...)
			Axpy(alpha, a, y[:n])
			for i := 0; i < n; i++ {
				want := float64(y0[i]) + float64(alpha)*float64(a[i])
				// One fused or two separate roundings: a few ulps of the terms.
				if d := math.Abs(float64(y[i]) - want); d > 1e-6*(math.Abs(float64(y0[i]))+math.Abs(float64(alpha*a[i]))) {
					t.Fatalf("Axpy n=%d: y[%d]=%v want %v", n, i, y[i], want)
				}
			}
			for i := n; i < n+3; i++ {
				if !math.IsNaN(float64(y[i])) {
					t.Fatalf("Axpy n=%d wrote past len(x)", n)
				}
			}
		}
	})
}

var matMulShapes = [][3]int{
	{1024, 768, 3072},
	{1024, 3072, 768},
	{1024, 768, 2304},
	{1024, 768, 50257},
	{1, 768, 3072},
	{1, 768, 50257},
	{1, 1600, 6400},
	{1, 6400, 1600},
}

func BenchmarkMatMul(b *testing.B) {
	for _, s := range matMulShapes {
		T, C, OC := s[0], s[1], s[2]
		b.Run(fmt.Sprintf("T%d_C%d_OC%d", T, C, OC), func(b *testing.B) {
			r := rand.New(rand.NewPCG(7, 8))
			in, w, bias := randVec(r, T*C), randVec(r, OC*C), randVec(r, OC)
			out := make([]float32, T*OC)
			b.ResetTimer()
			for b.Loop() {
				MatMul(out, in, w, bias, T, C, OC)
			}
			b.ReportMetric(2*float64(T)*float64(C)*float64(OC)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
		})
	}
}

// BenchmarkGemv is MatMul with T=1 (decode); it reports the rate at which the
// weights are streamed. Note weights under ~32 MiB may stay in L3 between calls.
func BenchmarkGemv(b *testing.B) {
	for _, s := range [][2]int{{768, 3072}, {768, 2304}, {3072, 768}, {1600, 6400}, {768, 50257}, {1600, 50257}} {
		C, OC := s[0], s[1]
		b.Run(fmt.Sprintf("C%d_OC%d", C, OC), func(b *testing.B) {
			r := rand.New(rand.NewPCG(9, 10))
			in, w, bias := randVec(r, C), randVec(r, OC*C), randVec(r, OC)
			out := make([]float32, OC)
			for b.Loop() {
				MatMul(out, in, w, bias, 1, C, OC)
			}
			b.ReportMetric(4*float64(C)*float64(OC)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GB/s")
		})
	}
}

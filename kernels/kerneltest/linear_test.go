//go:build cuda || cudaemu

package kerneltest

// The float-activation linear kernels (kernels.Gemv for decoding, kernels.GemmF32 for prefill)
// on every weight format: float32, IEEE half, int8 and int4 codes, with and without the fused
// bias + GELU epilogue, against a float64 reference and the CPU backend.

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/gpuquant/gpuquant/cpu"
	"github.com/gpuquant/gpuquant/kernels"
	"github.com/gpuquant/gpuquant/model"
	"github.com/gpuquant/gpuquant/quantize"
)

// linFormat is a weight format of the float-activation kernels.
type linFormat struct {
	name string
	bits int               // 32, 16, 8, 4
	opt  *quantize.Options // quantized formats
}

func linFormats() []linFormat {
	q := func(s quantize.Scheme, bits int, g quantize.Granularity) *quantize.Options {
		return &quantize.Options{Scheme: s, Bits: bits, Granularity: g}
	}
	return []linFormat{
		{"f32", 32, nil}, {"f16", 16, nil},
		{"q8-absmax-channel", 8, q(quantize.Absmax, 8, quantize.Granularity{Kind: quantize.PerChannel})},
		{"q8-zeropoint-tensor", 8, q(quantize.ZeroPoint, 8, quantize.Granularity{Kind: quantize.PerTensor})},
		{"q4-absmax-group32", 4, q(quantize.Absmax, 4, quantize.Granularity{Kind: quantize.PerGroup, Size: 32})},
		{"q4-zeropoint-channel", 4, q(quantize.ZeroPoint, 4, quantize.Granularity{Kind: quantize.PerChannel})},
	}
}

// HalfBytes encodes v as IEEE halves (round to nearest even), little-endian.
func HalfBytes(v []float32) []byte {
	b := make([]byte, 2*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint16(b[2*i:], model.Float32ToHalf(x))
	}
	return b
}

// floatWeight is a weight in format f: the values the kernels multiply by (deq), the bytes to
// upload, and the quantized tensor (nil for float formats).
func floatWeight(t TB, f linFormat, w []float32, OC, C int) (deq []float32, q *quantize.Tensor) {
	t.Helper()
	switch f.bits {
	case 32:
		return w, nil
	case 16:
		deq = make([]float32, len(w))
		for i, x := range w {
			deq[i] = model.HalfToFloat32(model.Float32ToHalf(x))
		}
		return deq, nil
	}
	q, err := quantize.Quantize(w, []int{OC, C}, *f.opt)
	if err != nil {
		t.Fatal(err)
	}
	return q.Dequantize().Data, q
}

// uploadWeight puts the weight w in format f on the device (q: its codes, for quantized formats).
func uploadWeight(t TB, d kernels.Device, f linFormat, w []float32, q *quantize.Tensor) kernels.W {
	t.Helper()
	switch {
	case q != nil:
		codes, scales, zeros := UploadWeights(t, d, q)
		return kernels.W{Data: codes, Scales: scales, Zeros: zeros, GroupSize: q.GroupSize, Bits: q.Bits}
	case f.bits == 16:
		return kernels.W{Data: Upload(t, d, HalfBytes(w)), Bits: 16}
	}
	return kernels.W{Data: Upload(t, d, F32Bytes(w)), Bits: 32}
}

func gelu64(x float64) float64 {
	return 0.5 * x * (1 + math.Tanh(math.Sqrt(2/math.Pi)*(x+0.044715*x*x*x)))
}

func TestLinearFloatActivations(t *testing.T) {
	cases := []LinCase{{1, 64, 40}, {3, 96, 70}, {70, 96, 130}, {65, 768, 64}, {2, 1600, 7}}
	kernelsUnderTest := []struct {
		name string
		run  func(d kernels.Device, out, x kernels.Ptr, w kernels.W, bias kernels.Ptr, T, C, OC int, act kernels.Act) error
	}{{"gemv", kernels.Gemv}, {"gemm_f32", kernels.GemmF32}}
	for ci, c := range cases {
		for fi, f := range linFormats() {
			r := rand.New(rand.NewPCG(uint64(ci), uint64(fi)))
			T, C, OC := c.T, c.C, c.OC
			w, x, b := Randn(r, OC*C, 0.05), Randn(r, T*C, 1), Randn(r, OC, 0.1)
			deq, q := floatWeight(t, f, w, OC, C)
			act := kernels.Act((ci + fi) % 2) // both epilogues on every format and kernel
			// CPU twin: the fp32 matmul on the weights as the kernels see them (fp32, fp16 values),
			// or the CPU backend's weight-only Linear on the codes.
			twin := make([]float32, T*OC)
			if q == nil {
				cpu.MatMul(twin, x, deq, b, T, C, OC)
			} else {
				twin = CPULinear(t, quantize.KernelWeightOnly, LinSetup{C: c, Q: q, X: x, Bias: b})
			}
			for _, k := range kernelsUnderTest {
				inOrders(t, fmt.Sprintf("%s/T%d-C%d-OC%d/%s/act%d", k.name, T, C, OC, f.name, act), func(t *testing.T, d kernels.Device) {
					kw := uploadWeight(t, d, f, w, q)
					xp, bp := Upload(t, d, F32Bytes(x)), Upload(t, d, F32Bytes(b))
					out := Output(t, d, 4*T*OC)
					if err := k.run(d, out, xp, kw, bp, T, C, OC, act); err != nil {
						t.Fatal(err)
					}
					got := BytesF32(Download(t, d, out, 4*T*OC))
					checkLinear(t, got, twin, deq, q, x, b, T, C, OC, act, 1)
				})
			}
		}
	}
}

// checkLinear compares got with the float64 sum over the weights as dequantized (deq). Bound: a
// float32 sum of C products in any order, plus the bias, is within (C + 2)·2⁻²⁴·Σ|w·x| + 2⁻²⁴|b|
// of it; quantized weights add 2 roundings per weight ((q − z)·(1/s)): 3·2⁻²⁴·Σ|w·x| more. GELU
// (|gelu'| < 1.13) adds its own evaluation error, 8·2⁻²⁴ of the result plus 1e-7. The CPU twin
// must agree within twice that (slack scales the whole bound), plus for codes 1e-5 of Σ(|q|+|z|)/s·|x| (it applies the zero-point
// through Σx per group, which cancels against Σq·x).
func checkLinear(t *testing.T, got, twin, deq []float32, q *quantize.Tensor, x, b []float32, T, C, OC int, act kernels.Act, slack float64) {
	t.Helper()
	for tt := 0; tt < T; tt++ {
		xr := x[tt*C : (tt+1)*C]
		for n := 0; n < OC; n++ {
			var ex, mag, magZ float64
			for k, xk := range xr {
				p := float64(deq[n*C+k]) * float64(xk)
				ex += p
				mag += math.Abs(p)
				if q != nil {
					e := n*C + k
					z := 0.0
					if q.Zeros != nil {
						z = float64(q.Zeros[e/q.GroupSize])
					}
					magZ += (math.Abs(float64(q.Code(e))) + math.Abs(z)) / float64(q.Scales[e/q.GroupSize]) * math.Abs(float64(xk))
				}
			}
			ex += float64(b[n])
			tol := slack * (float64(C+5)*Eps32*mag + Eps32*math.Abs(float64(b[n])))
			if act == kernels.ActGELU {
				ex = gelu64(ex)
				tol = 1.13*tol + 8*Eps32*math.Abs(ex) + 1e-7
			}
			g, c := float64(got[tt*OC+n]), float64(twin[tt*OC+n])
			if !(math.Abs(g-ex) <= tol) {
				t.Fatalf("out[%d,%d] = %v, float64 reference %v, |diff| %.3g > bound %.3g", tt, n, g, ex, math.Abs(g-ex), tol)
			}
			if act == kernels.ActGELU {
				c = gelu64(c)
			}
			if !(math.Abs(g-c) <= 2*tol+1e-5*magZ) {
				t.Fatalf("out[%d,%d] = %v, CPU twin %v", tt, n, g, c)
			}
		}
	}
}

// TestGemmF16 is the fp16 baseline's tensor-core GEMM: activations rounded to half as
// model.Float32ToHalf does, half weights, float32 sums, bias and the GELU epilogue, against a
// float64 sum of the same halves. Bound: the 2C exact products summed in float32 in any order,
// (C + 5)·2⁻²⁴·Σ|w·x| + 2⁻²⁴|b|, doubled for the tensor cores' internal accumulation.
func TestGemmF16(t *testing.T) {
	for ci, c := range []LinCase{{1, 64, 8}, {33, 96, 50}, {5, 33, 31}, {40, 128, 70}, {70, 768, 64}} {
		r := rand.New(rand.NewPCG(uint64(ci), 16))
		T, C, OC := c.T, c.C, c.OC
		w, x, b := Randn(r, OC*C, 0.05), Randn(r, T*C, 1), Randn(r, OC, 0.1)
		wh, xh := make([]float32, len(w)), make([]float32, len(x))
		for i, v := range w {
			wh[i] = model.HalfToFloat32(model.Float32ToHalf(v))
		}
		for i, v := range x {
			xh[i] = model.HalfToFloat32(model.Float32ToHalf(v))
		}
		act := kernels.Act(ci % 2)
		twin := make([]float32, T*OC)
		cpu.MatMul(twin, xh, wh, b, T, C, OC)
		inOrders(t, fmt.Sprintf("gemm_f16/T%d-C%d-OC%d/act%d", T, C, OC, act), func(t *testing.T, d kernels.Device) {
			out := Output(t, d, 4*T*OC)
			kw := kernels.W{Data: Upload(t, d, HalfBytes(w)), Bits: 16}
			if err := kernels.GemmF16(d, out, Upload(t, d, F32Bytes(x)), kw, Upload(t, d, F32Bytes(b)), T, C, OC, act); err != nil {
				t.Fatal(err)
			}
			got := BytesF32(Download(t, d, out, 4*T*OC))
			checkLinear(t, got, twin, wh, nil, xh, b, T, C, OC, act, 2)
		})
	}
}

// TestGemmF16RoundsActivations multiplies by the identity, so that each output is one activation
// rounded to half: bit-exact with model.Float32ToHalf on ties, subnormals and the largest halves.
func TestGemmF16RoundsActivations(t *testing.T) {
	const n = 8
	special := []float32{1 + 1.0/2048, 1 + 3.0/2048, -(1 + 5.0/2048), 0x1p-25, 3 * 0x1p-25, 0x1p-24, 0x1.8p-24, 0x1p-15 + 0x1p-25,
		6.1035156e-05, 65504, 65519, -65519.99, 0.1, 1.0 / 3, 1e-8, -0}
	r := rand.New(rand.NewPCG(9, 9))
	x := Randn(r, 64*n, 100)
	copy(x, special)
	T := len(x) / n
	w := make([]float32, n*n)
	for i := range n {
		w[i*n+i] = 1
	}
	want := make([]float32, len(x))
	for i, v := range x {
		want[i] = model.HalfToFloat32(model.Float32ToHalf(v))
	}
	inOrders(t, "gemm_f16/identity", func(t *testing.T, d kernels.Device) {
		out := Output(t, d, 4*len(x))
		if err := kernels.GemmF16(d, out, Upload(t, d, F32Bytes(x)), kernels.W{Data: Upload(t, d, HalfBytes(w)), Bits: 16}, 0, T, n, n, kernels.ActNone); err != nil {
			t.Fatal(err)
		}
		got := BytesF32(Download(t, d, out, 4*len(x)))
		for i := range want { // -0 comes out as +0 (0 + −0·1 sums to +0): compare values
			if got[i] != want[i] {
				t.Fatalf("x = %v (%#08x): got %v, want half %v", x[i], math.Float32bits(x[i]), got[i], want[i])
			}
		}
	})
}

//go:build cuda || cudaemu

package kerneltest

// The kernels of kernels/*.cu, through the same typed launchers the GPU backend calls, compared
// with their CPU twins on fresh random inputs (never zeros): package quantize (codes, scales,
// zero-points, dequantized values: exact) and package cpu (weight-only and W8A8 Linear: within
// the bounds stated at each check). Outputs are poisoned (0xFF) before every launch, and every
// buffer is checked for overruns after each case (device_*_test.go). The GPT-2 XL-sized cases run
// on the GPU (not with -test.short) and, on the emulator, only with GQ_KERNELTEST_XL=1 (minutes).

import (
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"testing"

	"github.com/gpuquant/gpuquant/kernels"
	"github.com/gpuquant/gpuquant/model"
	"github.com/gpuquant/gpuquant/quantize"
)

// xlCases reports whether the GPT-2 XL-sized cases run.
func xlCases() bool {
	return (onGPU && !testing.Short()) || os.Getenv("GQ_KERNELTEST_XL") != ""
}

// ---------------------------------------------------------------------------------------------
// Quantize / dequantize: exact against package quantize.

type quantCase struct {
	name string
	dims []int
	data func(r *rand.Rand, n int, opt quantize.Options) []float32
}

func quantCases() []quantCase {
	gauss := func(r *rand.Rand, n int, _ quantize.Options) []float32 { return Randn(r, n, 0.02) }
	// Degenerate groups: row 0 all zeros, row 1 all ones, row 2 a constant −0.37, then random.
	degen := func(r *rand.Rand, n int, _ quantize.Options) []float32 {
		v := Randn(r, n, 1)
		for i := 0; i < 64; i++ {
			v[i], v[64+i], v[128+i] = 0, 1, -0.37
		}
		return v
	}
	// Ties: every group of 32 holds the code range's ends, so that the scale is exactly 1 (and the
	// zero-point 0), and the other values are k + 0.5: round half to even decides every code.
	ties := func(r *rand.Rand, n int, opt quantize.Options) []float32 {
		half := 1 << (opt.Bits - 1)
		lo, hi := -(half - 1), half-1
		if opt.Scheme == quantize.ZeroPoint {
			lo = -half
		}
		v := make([]float32, n)
		for i := range v {
			switch i % 32 {
			case 0:
				v[i] = float32(hi)
			case 1:
				v[i] = float32(lo)
			default:
				v[i] = float32(lo+r.IntN(hi-lo)) + 0.5
			}
		}
		return v
	}
	cases := []quantCase{
		{"1x31", []int{1, 31}, gauss},
		{"2x33", []int{2, 33}, gauss},
		{"33", []int{33}, gauss},
		{"3x64", []int{3, 64}, gauss},
		{"5x192", []int{5, 192}, gauss},
		{"7x128-ties", []int{7, 128}, ties},
		{"4x64-degenerate", []int{4, 64}, degen},
		{"2x50257", []int{2, 50257}, gauss},
	}
	if xlCases() { // GPT-2 XL's MLP up-projection (OC, C) = (6400, 1600)
		cases = append(cases, quantCase{"6400x1600-xl", []int{6400, 1600}, gauss})
	}
	return cases
}

var grans = []quantize.Granularity{{Kind: quantize.PerTensor}, {Kind: quantize.PerChannel}, {Kind: quantize.PerGroup, Size: 32}, {Kind: quantize.PerGroup, Size: 64}}

// quantSetup is one input and scheme of TestQuantizeMatchesCPU; ci seeds its data.
type quantSetup struct {
	c   quantCase
	ci  int
	opt quantize.Options
}

// quantSetups is every case × scheme × bits × granularity (groups that do not divide the row
// skipped), in the standard preset, and in the article preset too for case 3x64 at 8 bits.
func quantSetups() []quantSetup {
	var out []quantSetup
	for ci, c := range quantCases() {
		row := c.dims[len(c.dims)-1]
		for _, scheme := range []quantize.Scheme{quantize.Absmax, quantize.ZeroPoint} {
			for _, bits := range []int{8, 4} {
				for _, g := range grans {
					if g.Kind == quantize.PerGroup && row%g.Size != 0 {
						continue
					}
					presets := []string{quantize.PresetStandard}
					if bits == 8 && c.name == "3x64" {
						presets = append(presets, quantize.PresetArticle)
					}
					for _, preset := range presets {
						out = append(out, quantSetup{c, ci, quantize.Options{Scheme: scheme, Bits: bits, Granularity: g, Preset: preset}})
					}
				}
			}
		}
	}
	return out
}

func TestQuantizeMatchesCPU(t *testing.T) {
	for _, s := range quantSetups() {
		x := s.c.data(rand.New(rand.NewPCG(uint64(s.ci), uint64(s.opt.Bits))), model.NumElements(s.c.dims), s.opt)
		want, err := quantize.Quantize(x, s.c.dims, s.opt)
		if err != nil {
			t.Fatal(err)
		}
		inOrders(t, fmt.Sprintf("%s/%s", s.c.name, s.opt), func(t *testing.T, d kernels.Device) {
			checkQuantize(t, d, x, want, s.opt)
		})
	}
}

func checkQuantize(t *testing.T, d kernels.Device, x []float32, want *quantize.Tensor, opt quantize.Options) {
	n, gs := len(x), want.GroupSize
	G := n / gs
	xp := Upload(t, d, F32Bytes(x))
	codes := Output(t, d, kernels.CodeBytes(n, opt.Bits))
	scales := Output(t, d, 4*G)
	var zeros kernels.Ptr
	if opt.Scheme == quantize.ZeroPoint {
		zeros = Output(t, d, 4*G)
	}
	work := Output(t, d, kernels.QuantizeWorkBytes(n, gs))
	if err := kernels.Quantize(d, codes, scales, zeros, work, xp, n, gs, opt); err != nil {
		t.Fatal(err)
	}
	CheckF32Exact(t, "scales", BytesF32(Download(t, d, scales, 4*G)), want.Scales)
	if zeros != 0 {
		CheckF32Exact(t, "zeros", BytesF32(Download(t, d, zeros, 4*G)), want.Zeros)
	}
	gotCodes := Download(t, d, codes, len(want.Codes))
	if i := firstDiff(gotCodes, want.Codes); i >= 0 {
		e := i * 8 / opt.Bits // first value stored in the byte
		t.Fatalf("codes differ at byte %d (value %d, x=%v): got %#02x want %#02x", i, e, x[e], gotCodes[i], want.Codes[i])
	}
	// Dequantize from the device's codes: exact against Tensor.Dequantize.
	out := Output(t, d, 4*n)
	if err := kernels.Dequantize(d, out, codes, scales, zeros, n, gs, opt.Bits); err != nil {
		t.Fatal(err)
	}
	CheckF32Exact(t, "dequantized", BytesF32(Download(t, d, out, 4*n)), want.Dequantize().Data)
}

func firstDiff(a, b []byte) int {
	for i := range a {
		if a[i] != b[i] {
			return i
		}
	}
	return -1
}

// A group holding NaN or ±Inf gets a NaN scale (quantize.Quantize returns an error instead).
func TestQuantizeNonFinite(t *testing.T) {
	x := Randn(rand.New(rand.NewPCG(7, 7)), 128, 1)
	x[70] = float32(math.NaN())
	x[5] = float32(math.Inf(1))
	for _, qs := range []quantize.Scheme{quantize.Absmax, quantize.ZeroPoint} {
		inOrders(t, string(qs), func(t *testing.T, d kernels.Device) {
			xp := Upload(t, d, F32Bytes(x))
			codes, scales, work := Output(t, d, 128), Output(t, d, 8), Output(t, d, 16)
			var zeros kernels.Ptr
			if qs == quantize.ZeroPoint {
				zeros = Output(t, d, 8)
			}
			if err := kernels.Quantize(d, codes, scales, zeros, work, xp, 128, 64, quantize.Options{Scheme: qs, Bits: 8}); err != nil {
				t.Fatal(err)
			}
			sc := BytesF32(Download(t, d, scales, 8))
			if !math.IsNaN(float64(sc[0])) || !math.IsNaN(float64(sc[1])) {
				t.Fatalf("scales %v: want NaN for both groups", sc)
			}
		})
	}
}

// ---------------------------------------------------------------------------------------------
// Linear: weight-only GEMV and W8A8 GEMM against package cpu.

func TestGemvWeightOnly(t *testing.T) {
	cases := []LinCase{{1, 768, 33}, {3, 31, 17}, {5, 64, 40}, {2, 1600, 7}, {1, 50257, 3}}
	if xlCases() { // GPT-2 XL's MLP at decode: up (C 1600 → OC 6400) and down (6400 → 1600); T 5 is ragged
		cases = append(cases, LinCase{1, 1600, 6400}, LinCase{1, 6400, 1600}, LinCase{5, 6400, 1600})
	}
	for _, s := range LinSetups(cases, []quantize.Granularity{{Kind: quantize.PerTensor}, {Kind: quantize.PerChannel}, {Kind: quantize.PerGroup, Size: 32}}) {
		deq := s.Q.Dequantize().Data
		ref := CPULinear(t, quantize.KernelWeightOnly, s)
		inOrders(t, "gemv/"+s.Label, func(t *testing.T, d kernels.Device) {
			T, C, OC := s.C.T, s.C.C, s.C.OC
			codes, scales, zeros := UploadWeights(t, d, s.Q)
			x, bias := Upload(t, d, F32Bytes(s.X)), Upload(t, d, F32Bytes(s.Bias))
			out := Output(t, d, 4*T*OC)
			w := kernels.W{Data: codes, Scales: scales, Zeros: zeros, GroupSize: s.Q.GroupSize, Bits: s.Q.Bits}
			if err := kernels.Gemv(d, out, x, w, bias, T, C, OC, kernels.ActNone); err != nil {
				t.Fatal(err)
			}
			got := BytesF32(Download(t, d, out, 4*T*OC))
			// Bound: both sides are float32 sums of C products of the dequantized weights (the
			// kernel as (q − z)·(1/s), 2 roundings per weight, 32 lanes of C/32 terms and a 5-step
			// tree; the CPU twin per group with its zero term via Σx). Against the float64 sum of
			// Dequantize()·x: |err| ≤ (C/32 + 8)·2⁻²⁴·Σ|w·x| + 2⁻²⁴|b| (kernel), and the CPU twin is
			// checked to agree within 1e-5 of Σ(|q|+|z|)/s·|x|, its own cancellation-aware scale.
			for tt := 0; tt < T; tt++ {
				xr := s.X[tt*C : (tt+1)*C]
				for r := 0; r < OC; r++ {
					var ex, mag, magZ float64
					for k, xk := range xr {
						w, xv := float64(deq[r*C+k]), float64(xk)
						ex += w * xv
						mag += math.Abs(w * xv)
						gi := (r*C + k) / s.Q.GroupSize
						z := 0.0
						if s.Q.Zeros != nil {
							z = float64(s.Q.Zeros[gi])
						}
						magZ += (math.Abs(float64(s.Q.Code(r*C+k))) + math.Abs(z)) / float64(s.Q.Scales[gi]) * math.Abs(xv)
					}
					ex += float64(s.Bias[r])
					g := float64(got[tt*OC+r])
					tol := (float64(C)/32+8)*Eps32*mag + Eps32*math.Abs(float64(s.Bias[r]))
					if !(math.Abs(g-ex) <= tol) {
						t.Fatalf("out[%d,%d] = %v, float64 reference %v, |diff| %.3g > bound %.3g", tt, r, g, ex, math.Abs(g-ex), tol)
					}
					if ref == nil {
						continue
					}
					if c := float64(ref[tt*OC+r]); !(math.Abs(g-c) <= 1e-5*(magZ+math.Abs(float64(s.Bias[r])))+tol) {
						t.Fatalf("out[%d,%d] = %v, CPU twin %v", tt, r, g, c)
					}
				}
			}
		})
	}
}

// TestQuantizeActs is kernels.QuantizeActs alone (RunW8A8 checks it too, before every GEMM):
// codes, 1/scale and group sums exact against cpu.quantizeActs' formulas, on ragged rows and
// all-zero tokens.
func TestQuantizeActs(t *testing.T) {
	for _, c := range []struct{ T, C, g, zeroRow int }{{1, 31, 31, -1}, {3, 768, 32, -1}, {5, 100, 50, 2}, {2, 1600, 64, -1}, {33, 96, 96, 32}} {
		x := Randn(rand.New(rand.NewPCG(uint64(c.T), uint64(c.C))), c.T*c.C, 3)
		if c.zeroRow >= 0 { // an all-zero token: scale 1, codes 0
			clear(x[c.zeroRow*c.C : (c.zeroRow+1)*c.C])
		}
		wantQa, wantInv := ActsRef(x, c.T, c.C)
		inOrders(t, fmt.Sprintf("T%d-C%d-g%d", c.T, c.C, c.g), func(t *testing.T, d kernels.Device) {
			gpr := c.C / c.g
			xp := Upload(t, d, F32Bytes(x))
			qa, inv, qsum := Output(t, d, c.T*c.C), Output(t, d, 4*c.T), Output(t, d, 4*c.T*gpr)
			if err := kernels.QuantizeActs(d, qa, inv, qsum, xp, c.T, c.C, c.g); err != nil {
				t.Fatal(err)
			}
			gotQa := Download(t, d, qa, c.T*c.C)
			for i, v := range wantQa {
				if int8(gotQa[i]) != v {
					t.Fatalf("activation code [%d,%d]: got %d want %d", i/c.C, i%c.C, int8(gotQa[i]), v)
				}
			}
			CheckF32Exact(t, "inv", BytesF32(Download(t, d, inv, 4*c.T)), wantInv)
			gotQs := BytesI32(Download(t, d, qsum, 4*c.T*gpr))
			for tt := 0; tt < c.T; tt++ {
				for grp := 0; grp < gpr; grp++ {
					var s int32
					for _, v := range wantQa[tt*c.C+grp*c.g : tt*c.C+(grp+1)*c.g] {
						s += int32(v)
					}
					if gotQs[tt*gpr+grp] != s {
						t.Fatalf("qsum[%d,%d] = %d want %d", tt, grp, gotQs[tt*gpr+grp], s)
					}
				}
			}
		})
	}
}

func TestGemmW8A8(t *testing.T) {
	cases := []LinCase{{1, 64, 8}, {33, 96, 50}, {5, 33, 31}, {40, 128, 70}, {2, 50257, 3}}
	if testing.Short() { // the sanitizer runs: the widest rows cost minutes under ASan
		cases = cases[:4]
	}
	all := []quantize.Granularity{{Kind: quantize.PerTensor}, {Kind: quantize.PerChannel}, {Kind: quantize.PerGroup, Size: 32}, {Kind: quantize.PerGroup, Size: 64}}
	setups := LinSetups(cases, all)
	if xlCases() { // GPT-2 XL's MLP with 40 tokens (two ragged tile rows); the float64 reference is the cost
		setups = append(setups, LinSetups([]LinCase{{40, 1600, 6400}, {40, 6400, 1600}}, all[1:2:2])...)
		setups = append(setups, LinSetups([]LinCase{{40, 6400, 1600}}, all[3:])...)
	}
	for _, s := range setups {
		ref := CPULinear(t, quantize.KernelW8A8, s)
		inOrders(t, "w8a8/"+s.Label, func(t *testing.T, d kernels.Device) {
			RunW8A8(t, d, s, ref, kernels.KGemmW8A8)
		})
	}
}

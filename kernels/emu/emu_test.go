//go:build cudaemu

package emu

// The kernels of kernels/*.cu executed on the CPU through the same typed launchers the GPU
// backend calls, compared with their CPU twins: package quantize (codes, scales, zero-points,
// dequantized values: exact) and package cpu (weight-only and W8A8 Linear: within the bounds
// stated at each check). Every case runs in the three schedule orders; outputs are poisoned
// before the launch and every allocation has guard bytes that must come back untouched.

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/gpuquant/gpuquant/cpu"
	"github.com/gpuquant/gpuquant/kernels"
	"github.com/gpuquant/gpuquant/model"
	"github.com/gpuquant/gpuquant/quantize"
)

var passed, failed atomic.Int64

func TestMain(m *testing.M) {
	if err := CheckFresh("."); err != nil {
		fmt.Println(err)
		fmt.Println("cudaemu kernels: 0 passed, 1 failed (stale build)")
		os.Exit(1)
	}
	code := m.Run()
	fmt.Printf("cudaemu kernels: %d passed, %d failed (each case × 3 schedule orders; sanitized=%v)\n",
		passed.Load(), failed.Load(), Sanitized())
	if failed.Load() > 0 && code == 0 {
		code = 1
	}
	os.Exit(code)
}

// schedules are the three orders every case runs in.
var schedules = []struct {
	s    Schedule
	seed uint64
}{{Forward, 0}, {Reverse, 0}, {Random, 12345}}

// inOrders runs body once per schedule order as subtests and counts the results.
func inOrders(t *testing.T, name string, body func(t *testing.T, d *Device)) {
	t.Helper()
	for _, sc := range schedules {
		ok := t.Run(name+"/"+sc.s.String(), func(t *testing.T) {
			d := New()
			defer d.Close()
			d.SetSchedule(sc.s, sc.seed)
			body(t, d)
			if err := d.CheckGuards(); err != nil {
				t.Fatal(err)
			}
		})
		if ok {
			passed.Add(1)
		} else {
			failed.Add(1)
		}
	}
}

// ---------------------------------------------------------------------------------------------
// Host helpers.

func f32bytes(v []float32) []byte {
	b := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(x))
	}
	return b
}

func bytesF32(b []byte) []float32 {
	v := make([]float32, len(b)/4)
	for i := range v {
		v[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return v
}

func bytesI32(b []byte) []int32 {
	v := make([]int32, len(b)/4)
	for i := range v {
		v[i] = int32(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return v
}

func upload(t tb, d *Device, b []byte) kernels.Ptr {
	t.Helper()
	p, err := d.Alloc(len(b))
	if err != nil {
		t.Fatal(err)
	}
	if err := d.CopyToDevice(p, b); err != nil {
		t.Fatal(err)
	}
	return p
}

// output allocates n bytes poisoned with 0xFF (NaN floats, code −1, int32 −1).
func output(t tb, d *Device, n int) kernels.Ptr {
	t.Helper()
	return upload(t, d, bytes.Repeat([]byte{0xFF}, n))
}

func download(t tb, d *Device, p kernels.Ptr, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if err := d.CopyFromDevice(b, p); err != nil {
		t.Fatal(err)
	}
	return b
}

// randn fills n values: Gaussian with a few outliers, never all zeros.
func randn(r *rand.Rand, n int, scale float32) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(r.NormFloat64()) * scale
		if r.IntN(97) == 0 {
			v[i] *= 8
		}
	}
	return v
}

// ---------------------------------------------------------------------------------------------
// Quantize / dequantize: exact against package quantize.

type quantCase struct {
	name string
	dims []int
	data func(r *rand.Rand, n int, opt quantize.Options) []float32
}

func quantCases() []quantCase {
	gauss := func(r *rand.Rand, n int, _ quantize.Options) []float32 { return randn(r, n, 0.02) }
	// Degenerate groups: row 0 all zeros, row 1 all ones, row 2 a constant −0.37, then random.
	degen := func(r *rand.Rand, n int, _ quantize.Options) []float32 {
		v := randn(r, n, 1)
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
	return []quantCase{
		{"1x31", []int{1, 31}, gauss},
		{"2x33", []int{2, 33}, gauss},
		{"33", []int{33}, gauss},
		{"3x64", []int{3, 64}, gauss},
		{"5x192", []int{5, 192}, gauss},
		{"7x128-ties", []int{7, 128}, ties},
		{"4x64-degenerate", []int{4, 64}, degen},
		{"2x50257", []int{2, 50257}, gauss},
	}
}

var grans = []quantize.Granularity{{Kind: quantize.PerTensor}, {Kind: quantize.PerChannel}, {Kind: quantize.PerGroup, Size: 32}, {Kind: quantize.PerGroup, Size: 64}}

func TestQuantizeMatchesCPU(t *testing.T) {
	for ci, c := range quantCases() {
		n := model.NumElements(c.dims)
		for _, scheme := range []quantize.Scheme{quantize.Absmax, quantize.ZeroPoint} {
			for _, bits := range []int{8, 4} {
				for _, g := range grans {
					row := c.dims[len(c.dims)-1]
					if g.Kind == quantize.PerGroup && row%g.Size != 0 {
						continue
					}
					for _, preset := range []string{quantize.PresetStandard, quantize.PresetArticle} {
						if preset == quantize.PresetArticle && (bits != 8 || c.name != "3x64") {
							continue
						}
						opt := quantize.Options{Scheme: scheme, Bits: bits, Granularity: g, Preset: preset}
						x := c.data(rand.New(rand.NewPCG(uint64(ci), uint64(bits))), n, opt)
						want, err := quantize.Quantize(x, c.dims, opt)
						if err != nil {
							t.Fatal(err)
						}
						inOrders(t, fmt.Sprintf("%s/%s", c.name, opt), func(t *testing.T, d *Device) {
							checkQuantize(t, d, x, want, opt)
						})
					}
				}
			}
		}
	}
}

func kquant(opt quantize.Options) kernels.Quant {
	s := kernels.Absmax
	if opt.Scheme == quantize.ZeroPoint {
		s = kernels.ZeroPoint
	}
	return kernels.Quant{Scheme: s, Bits: opt.Bits, Article: opt.Preset == quantize.PresetArticle}
}

func checkQuantize(t *testing.T, d *Device, x []float32, want *quantize.Tensor, opt quantize.Options) {
	n, gs := len(x), want.GroupSize
	G := n / gs
	xp := upload(t, d, f32bytes(x))
	codes := output(t, d, kernels.CodeBytes(n, opt.Bits))
	scales := output(t, d, 4*G)
	var zeros kernels.Ptr
	if opt.Scheme == quantize.ZeroPoint {
		zeros = output(t, d, 4*G)
	}
	work := output(t, d, kernels.QuantizeWorkBytes(n, gs))
	if err := kernels.Quantize(d, codes, scales, zeros, work, xp, n, gs, kquant(opt)); err != nil {
		t.Fatal(err)
	}
	checkF32Exact(t, "scales", bytesF32(download(t, d, scales, 4*G)), want.Scales)
	if zeros != 0 {
		checkF32Exact(t, "zeros", bytesF32(download(t, d, zeros, 4*G)), want.Zeros)
	}
	gotCodes := download(t, d, codes, len(want.Codes))
	if i := firstDiff(gotCodes, want.Codes); i >= 0 {
		e := i * 8 / opt.Bits // first value stored in the byte
		t.Fatalf("codes differ at byte %d (value %d, x=%v): got %#02x want %#02x", i, e, x[e], gotCodes[i], want.Codes[i])
	}
	// Dequantize from the device's codes: exact against Tensor.Dequantize.
	out := output(t, d, 4*n)
	if err := kernels.Dequantize(d, out, codes, scales, zeros, n, gs, opt.Bits); err != nil {
		t.Fatal(err)
	}
	checkF32Exact(t, "dequantized", bytesF32(download(t, d, out, 4*n)), want.Dequantize().Data)
}

func firstDiff(a, b []byte) int {
	for i := range a {
		if a[i] != b[i] {
			return i
		}
	}
	return -1
}

func checkF32Exact(t tb, what string, got, want []float32) {
	t.Helper()
	for i := range want {
		if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
			t.Fatalf("%s[%d]: got %v (%#08x) want %v (%#08x)", what, i, got[i], math.Float32bits(got[i]), want[i], math.Float32bits(want[i]))
		}
	}
}

// A group holding NaN or ±Inf gets a NaN scale (quantize.Quantize returns an error instead).
func TestQuantizeNonFinite(t *testing.T) {
	x := randn(rand.New(rand.NewPCG(7, 7)), 128, 1)
	x[70] = float32(math.NaN())
	x[5] = float32(math.Inf(1))
	for _, s := range []kernels.Scheme{kernels.Absmax, kernels.ZeroPoint} {
		inOrders(t, fmt.Sprintf("scheme%d", s), func(t *testing.T, d *Device) {
			xp := upload(t, d, f32bytes(x))
			codes, scales, work := output(t, d, 128), output(t, d, 8), output(t, d, 16)
			var zeros kernels.Ptr
			if s == kernels.ZeroPoint {
				zeros = output(t, d, 8)
			}
			if err := kernels.Quantize(d, codes, scales, zeros, work, xp, 128, 64, kernels.Quant{Scheme: s, Bits: 8}); err != nil {
				t.Fatal(err)
			}
			sc := bytesF32(download(t, d, scales, 8))
			if !math.IsNaN(float64(sc[0])) || !math.IsNaN(float64(sc[1])) {
				t.Fatalf("scales %v: want NaN for both groups", sc)
			}
		})
	}
}

// ---------------------------------------------------------------------------------------------
// Linear: weight-only GEMV and W8A8 GEMM against package cpu.

type linCase struct{ T, C, OC int }

type linSetup struct {
	c     linCase
	q     *quantize.Tensor
	x     []float32 // (T, C)
	bias  []float32 // (OC)
	opt   quantize.Options
	label string
}

func linSetups(cases []linCase, grans []quantize.Granularity) []linSetup {
	var out []linSetup
	for ci, c := range cases {
		for _, scheme := range []quantize.Scheme{quantize.Absmax, quantize.ZeroPoint} {
			for _, bits := range []int{8, 4} {
				for _, g := range grans {
					if g.Kind == quantize.PerGroup && c.C%g.Size != 0 {
						continue
					}
					r := rand.New(rand.NewPCG(uint64(ci), uint64(bits*7+len(g.Kind))))
					opt := quantize.Options{Scheme: scheme, Bits: bits, Granularity: g}
					w := randn(r, c.OC*c.C, 0.05)
					q, err := quantize.Quantize(w, []int{c.OC, c.C}, opt)
					if err != nil {
						panic(err)
					}
					out = append(out, linSetup{c: c, q: q, x: randn(r, c.T*c.C, 1), bias: randn(r, c.OC, 0.1), opt: opt,
						label: fmt.Sprintf("T%d-C%d-OC%d/%s", c.T, c.C, c.OC, opt)})
				}
			}
		}
	}
	return out
}

// cpuLinear runs the CPU backend's Linear on the quantized weight with the given kernel; nil
// where the CPU backend has no kernel for the shape (4-bit rows of odd length).
func cpuLinear(t tb, kernel string, s linSetup) []float32 {
	if s.q.Bits == 4 && s.c.C%2 != 0 {
		return nil
	}
	be, err := cpu.NewWith(cpu.Options{Kernel: kernel})
	if err != nil {
		t.Fatal(err)
	}
	in := be.NewBuf(s.c.T, s.c.C).(*cpu.Buf)
	copy(in.Data, s.x)
	out := be.NewBuf(s.c.T, s.c.OC).(*cpu.Buf)
	be.Linear(out, in, s.q, model.NewF32(s.bias, s.c.OC))
	return out.Data
}

// uploadWeights puts the codes, scales and zero-points (0 for absmax) on the device.
func uploadWeights(t tb, d *Device, q *quantize.Tensor) (codes, scales, zeros kernels.Ptr) {
	codes = upload(t, d, q.Codes)
	scales = upload(t, d, f32bytes(q.Scales))
	if q.Zeros != nil {
		zeros = upload(t, d, f32bytes(q.Zeros))
	}
	return
}

const eps32 = 1.0 / (1 << 24)

func TestGemvWeightOnly(t *testing.T) {
	cases := []linCase{{1, 768, 33}, {3, 31, 17}, {5, 64, 40}, {2, 1600, 7}, {1, 50257, 3}}
	for _, s := range linSetups(cases, []quantize.Granularity{{Kind: quantize.PerTensor}, {Kind: quantize.PerChannel}, {Kind: quantize.PerGroup, Size: 32}}) {
		deq := s.q.Dequantize().Data
		ref := cpuLinear(t, cpu.KernelWeightOnly, s)
		inOrders(t, "gemv/"+s.label, func(t *testing.T, d *Device) {
			T, C, OC := s.c.T, s.c.C, s.c.OC
			codes, scales, zeros := uploadWeights(t, d, s.q)
			x, bias := upload(t, d, f32bytes(s.x)), upload(t, d, f32bytes(s.bias))
			out := output(t, d, 4*T*OC)
			if err := kernels.GemvWeightOnly(d, out, x, codes, scales, zeros, bias, T, C, OC, s.q.GroupSize, s.q.Bits); err != nil {
				t.Fatal(err)
			}
			got := bytesF32(download(t, d, out, 4*T*OC))
			// Bound: both sides are float32 sums of C products of the dequantized weights (the
			// kernel as (q − z)·(1/s), 2 roundings per weight, 32 lanes of C/32 terms and a 5-step
			// tree; the CPU twin per group with its zero term via Σx). Against the float64 sum of
			// Dequantize()·x: |err| ≤ (C/32 + 8)·2⁻²⁴·Σ|w·x| + 2⁻²⁴|b| (kernel), and the CPU twin is
			// checked to agree within 1e-5 of Σ(|q|+|z|)/s·|x|, its own cancellation-aware scale.
			for tt := 0; tt < T; tt++ {
				for r := 0; r < OC; r++ {
					var ex, mag, magZ float64
					for k := 0; k < C; k++ {
						w, xv := float64(deq[r*C+k]), float64(s.x[tt*C+k])
						ex += w * xv
						mag += math.Abs(w * xv)
						gi := (r*C + k) / s.q.GroupSize
						z := 0.0
						if s.q.Zeros != nil {
							z = float64(s.q.Zeros[gi])
						}
						magZ += (math.Abs(float64(s.q.Code(r*C+k))) + math.Abs(z)) / float64(s.q.Scales[gi]) * math.Abs(xv)
					}
					ex += float64(s.bias[r])
					g := float64(got[tt*OC+r])
					tol := (float64(C)/32+8)*eps32*mag + eps32*math.Abs(float64(s.bias[r]))
					if !(math.Abs(g-ex) <= tol) {
						t.Fatalf("out[%d,%d] = %v, float64 reference %v, |diff| %.3g > bound %.3g", tt, r, g, ex, math.Abs(g-ex), tol)
					}
					if ref == nil {
						continue
					}
					if c := float64(ref[tt*OC+r]); !(math.Abs(g-c) <= 1e-5*(magZ+math.Abs(float64(s.bias[r])))+tol) {
						t.Fatalf("out[%d,%d] = %v, CPU twin %v", tt, r, g, c)
					}
				}
			}
		})
	}
}

// actsRef is cpu.quantizeActs (per-token absmax, one IEEE division, round half to even).
func actsRef(x []float32, T, C int) (qa []int8, inv []float32) {
	qa, inv = make([]int8, T*C), make([]float32, T)
	for t := 0; t < T; t++ {
		row := x[t*C : (t+1)*C]
		var m float32
		for _, v := range row {
			m = max(m, float32(math.Abs(float64(v))))
		}
		scale := float32(1)
		if m > 0 {
			scale = 127 / m
		}
		inv[t] = 1 / scale
		for k, v := range row {
			qa[t*C+k] = int8(min(127, max(-127, math.RoundToEven(float64(v*scale)))))
		}
	}
	return
}

func TestGemmW8A8(t *testing.T) {
	cases := []linCase{{1, 64, 8}, {33, 96, 50}, {5, 33, 31}, {40, 128, 70}, {2, 50257, 3}}
	if testing.Short() { // the sanitizer run: the widest rows cost minutes under ASan
		cases = cases[:4]
	}
	for _, s := range linSetups(cases, []quantize.Granularity{{Kind: quantize.PerTensor}, {Kind: quantize.PerChannel}, {Kind: quantize.PerGroup, Size: 32}, {Kind: quantize.PerGroup, Size: 64}}) {
		ref := cpuLinear(t, cpu.KernelW8A8, s)
		inOrders(t, "w8a8/"+s.label, func(t *testing.T, d *Device) {
			runW8A8(t, d, s, ref, kernels.KGemmW8A8)
		})
	}
}

// runW8A8 quantizes the activations and runs the named GEMM kernel (gemm_w8a8 or a broken copy)
// with the launcher's grid, then checks codes exactly and outputs within the bound.
func runW8A8(t tb, d *Device, s linSetup, ref []float32, kernel string) {
	T, C, OC, gs := s.c.T, s.c.C, s.c.OC, s.q.GroupSize
	gw, err := kernels.W8A8GroupWidth(C, OC, gs)
	if err != nil {
		t.Fatal(err)
	}
	gpr := C / gw
	codes, scales, zeros := uploadWeights(t, d, s.q)
	x, bias := upload(t, d, f32bytes(s.x)), upload(t, d, f32bytes(s.bias))
	qa, inv, out := output(t, d, T*C), output(t, d, 4*T), output(t, d, 4*T*OC)
	var qsum kernels.Ptr
	if zeros != 0 {
		qsum = output(t, d, 4*T*gpr)
	}
	if err := kernels.QuantizeActs(d, qa, inv, qsum, x, T, C, gw); err != nil {
		t.Fatal(err)
	}
	if kernel == kernels.KGemmW8A8 {
		err = kernels.GemmW8A8(d, out, qa, inv, qsum, codes, scales, zeros, bias, T, C, OC, gs, s.q.Bits)
	} else {
		err = d.Launch(kernel, kernels.Dim3{X: (OC + 31) / 32, Y: (T + 31) / 32, Z: 1}, kernels.Dim3{X: 128, Y: 1, Z: 1}, 0,
			out, qa, inv, qsum, codes, scales, zeros, bias, int32(T), int32(C), int32(OC), int64(gs), int32(s.q.Bits))
	}
	if err != nil {
		t.Fatal(err)
	}
	wantQa, wantInv := actsRef(s.x, T, C)
	gotQa := download(t, d, qa, T*C)
	for i, v := range wantQa {
		if int8(gotQa[i]) != v {
			t.Fatalf("activation code [%d,%d]: got %d want %d", i/C, i%C, int8(gotQa[i]), v)
		}
	}
	checkF32Exact(t, "inv", bytesF32(download(t, d, inv, 4*T)), wantInv)
	var gotQs []int32
	if qsum != 0 {
		gotQs = bytesI32(download(t, d, qsum, 4*T*gpr))
	}
	got := bytesF32(download(t, d, out, 4*T*OC))
	for tt := 0; tt < T; tt++ {
		for n := 0; n < OC; n++ {
			// Exact reference from the integer dots, in float64, and the magnitude both float32
			// epilogues round against: each adds 2 (or 4 with zeros) rounded terms per group and
			// rounds the scaling and bias, so |err| ≤ (4·gpr + 4)·2⁻²⁴·mag per side.
			var ex, mag float64
			for grp := 0; grp < gpr; grp++ {
				var dot, qs int64
				for k := grp * gw; k < (grp+1)*gw; k++ {
					dot += int64(wantQa[tt*C+k]) * int64(s.q.Code(n*C+k))
					qs += int64(wantQa[tt*C+k])
				}
				if gotQs != nil && int64(gotQs[tt*gpr+grp]) != qs {
					t.Fatalf("qsum[%d,%d] = %d want %d", tt, grp, gotQs[tt*gpr+grp], qs)
				}
				gi := (n*C + grp*gw) / gs
				iv := float64(1 / s.q.Scales[gi])
				z := 0.0
				if s.q.Zeros != nil {
					z = float64(s.q.Zeros[gi])
				}
				ex += iv*float64(dot) - z*iv*float64(qs)
				mag += math.Abs(iv*float64(dot)) + math.Abs(z*iv*float64(qs))
			}
			inv := float64(wantInv[tt])
			ex = ex*inv + float64(s.bias[n])
			mag = mag*inv + math.Abs(float64(s.bias[n]))
			tol := float64(4*gpr+4) * eps32 * mag
			g := float64(got[tt*OC+n])
			if !(math.Abs(g-ex) <= tol) {
				t.Fatalf("out[%d,%d] = %v, exact %v, |diff| %.3g > bound %.3g", tt, n, g, ex, math.Abs(g-ex), tol)
			}
			if ref == nil {
				continue
			}
			c := float64(ref[tt*OC+n])
			if !(math.Abs(c-ex) <= tol) || !(math.Abs(g-c) <= 2*tol) {
				t.Fatalf("out[%d,%d] = %v, CPU twin %v, exact %v (bound %.3g)", tt, n, g, c, ex, tol)
			}
		}
	}
}

// ---------------------------------------------------------------------------------------------
// The harness itself.

// Every kernel the Go launchers know is compiled into the emulator with the same signature.
func TestSignatures(t *testing.T) {
	emu := Kernels()
	for _, name := range kernels.Names {
		if emu[name] != kernels.Signatures[name] {
			t.Errorf("%s: Go signature %q, compiled kernel %q", name, kernels.Signatures[name], emu[name])
		}
	}
	for name := range emu {
		if _, ok := kernels.Signatures[name]; !ok && !strings.HasPrefix(name, "broken_") {
			t.Errorf("kernel %s has no Go launcher entry", name)
		}
	}
	if len(kernels.Signatures) != len(kernels.Names) {
		t.Errorf("Names and Signatures disagree")
	}
	d := New()
	defer d.Close()
	p, _ := d.Alloc(64)
	err := d.Launch(kernels.KDequant, kernels.Dim3{X: 1, Y: 1, Z: 1}, kernels.Dim3{X: 32, Y: 1, Z: 1}, 0, p, p, p, p, int32(1), int64(1), int32(8))
	if err == nil || !strings.Contains(err.Error(), "do not match") {
		t.Fatalf("a mistyped argument was not caught: %v", err)
	}
}

// TestBrokenKernelsAreCaught runs deliberately wrong kernels (broken.cu) and requires the checks
// above to fail for each, so that a pass of the real kernels means something.
func TestBrokenKernelsAreCaught(t *testing.T) {
	count := func(name string, ok bool) {
		if ok {
			passed.Add(1)
		} else {
			failed.Add(1)
			t.Errorf("%s: the bug was not caught", name)
		}
	}

	// A missing __syncthreads: per-order outcome; caught in at least one order (forward).
	x := randn(rand.New(rand.NewPCG(3, 3)), 16*1000, 1)
	var caughtIn []string
	for _, sc := range schedules {
		d := New()
		d.SetSchedule(sc.s, sc.seed)
		T, C := 16, 1000
		xp := upload(t, d, f32bytes(x))
		qa, inv := output(t, d, T*C), output(t, d, 4*T)
		if err := d.Launch("broken_quant_act_rows_nosync", kernels.Dim3{X: T, Y: 1, Z: 1}, kernels.Dim3{X: 256, Y: 1, Z: 1}, 0,
			qa, inv, kernels.Ptr(0), xp, int32(T), int32(C), int32(C)); err != nil {
			t.Fatal(err)
		}
		_, wantInv := actsRef(x, T, C)
		gotInv := bytesF32(download(t, d, inv, 4*T))
		for i := range wantInv {
			if gotInv[i] != wantInv[i] {
				caughtIn = append(caughtIn, sc.s.String())
				break
			}
		}
		d.Close()
	}
	t.Logf("missing __syncthreads: wrong results in %v", caughtIn)
	count("missing __syncthreads", len(caughtIn) > 0 && caughtIn[0] == "forward")

	// Swapped mma fragment registers: the output comparison fails.
	s := linSetups([]linCase{{16, 64, 16}}, []quantize.Granularity{{Kind: quantize.PerChannel}})[0]
	ref := cpuLinear(t, cpu.KernelW8A8, s)
	ok := t.Run("swapped-fragments", func(t *testing.T) {
		d := New()
		defer d.Close()
		ft := &fakeT{T: t}
		func() {
			defer func() { _ = recover() }()
			runW8A8(ft, d, s, ref, "broken_gemm_w8a8_swapfrag")
		}()
		if !ft.failed {
			t.Fatal("swapped A fragments gave the right result")
		}
		t.Logf("caught: %s", ft.msg)
	})
	count("swapped mma fragments", ok)

	// Off-by-one write: the guard check fails (in the ASan build ASan itself stops the process,
	// so the case is skipped there).
	if !Sanitized() {
		d := New()
		n := 100
		codes := upload(t, d, bytes.Repeat([]byte{3}, n))
		scales := upload(t, d, f32bytes([]float32{2}))
		out := output(t, d, 4*n)
		if err := d.Launch("broken_dequant_offbyone", kernels.Dim3{X: 1, Y: 1, Z: 1}, kernels.Dim3{X: 256, Y: 1, Z: 1}, 0,
			out, codes, scales, kernels.Ptr(0), int64(n), int64(n), int32(8)); err != nil {
			t.Fatal(err)
		}
		err := d.CheckGuards()
		t.Logf("off-by-one: %v", err)
		count("off-by-one write", err != nil)
		d.Close()
	}

	// Deadlock and divergent barrier: the launch fails with file:line.
	for _, k := range []struct{ name, want string }{
		{"broken_deadlock", "deadlock"},
		{"broken_divergent_barrier", "divergent __syncthreads"},
	} {
		d := New()
		out := output(t, d, 4*64)
		err := d.Launch(k.name, kernels.Dim3{X: 1, Y: 1, Z: 1}, kernels.Dim3{X: 64, Y: 1, Z: 1}, 0, out)
		t.Logf("%s: %v", k.name, err)
		count(k.name, err != nil && strings.Contains(err.Error(), k.want) && strings.Contains(err.Error(), "broken.cu:"))
		d.Close()
	}
}

// tb is what the helpers need from a test (a *testing.T, or fakeT).
type tb interface {
	Helper()
	Fatal(args ...any)
	Fatalf(format string, args ...any)
}

// fakeT records a Fatalf instead of failing the enclosing test (for the broken-kernel checks).
type fakeT struct {
	*testing.T
	failed bool
	msg    string
}

func (f *fakeT) Fatalf(format string, args ...any) {
	f.failed, f.msg = true, fmt.Sprintf(format, args...)
	panic(f)
}

func (f *fakeT) Fatal(args ...any) { f.Fatalf("%s", fmt.Sprint(args...)) }

// TestSanitizerCatchesOutOfBounds (sanitizer build only) runs an off-by-one global write and an
// out-of-bounds __shared__ write in a child process and requires ASan to stop it.
func TestSanitizerCatchesOutOfBounds(t *testing.T) {
	if !Sanitized() {
		t.Skip("needs the sanitizer build (make test-emu-asan)")
	}
	if k := os.Getenv("GQ_ASAN_CHILD"); k != "" {
		d := New()
		out := output(t, d, 4*100)
		p := kernels.Ptr(0)
		if k == "broken_dequant_offbyone" {
			codes := upload(t, d, bytes.Repeat([]byte{3}, 100))
			scales := upload(t, d, f32bytes([]float32{2}))
			_ = d.Launch(k, kernels.Dim3{X: 1, Y: 1, Z: 1}, kernels.Dim3{X: 256, Y: 1, Z: 1}, 0, out, codes, scales, p, int64(100), int64(100), int32(8))
		} else {
			_ = d.Launch(k, kernels.Dim3{X: 1, Y: 1, Z: 1}, kernels.Dim3{X: 64, Y: 1, Z: 1}, 0, out)
		}
		t.Fatal("not stopped by the sanitizer")
	}
	// UBSan's bounds check sees the __shared__ array's index first; ASan the global guard zone.
	// (Without llvm-symbolizer ASan's stack has no file names, so only the report kind is checked.)
	for k, want := range map[string]string{
		"broken_dequant_offbyone": "AddressSanitizer: use-after-poison",
		"broken_shared_oob":       "broken.cu:78:21: runtime error: index 64 out of bounds",
	} {
		cmd := exec.Command(os.Args[0], "-test.run=^TestSanitizerCatchesOutOfBounds$", "-test.count=1")
		cmd.Env = append(os.Environ(), "GQ_ASAN_CHILD="+k)
		out, err := cmd.CombinedOutput()
		caught := err != nil && strings.Contains(string(out), want)
		if caught {
			passed.Add(1)
			t.Logf("%s: stopped with %q", k, want)
		} else {
			failed.Add(1)
			t.Errorf("%s: not caught by ASan (err %v):\n%s", k, err, out)
		}
	}
}

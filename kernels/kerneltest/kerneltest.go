// Package kerneltest holds the checks of gpuquant's CUDA kernels against their CPU twins: its
// tests (build tags cuda or cudaemu) run every kernel through the typed launchers of package
// kernels on whatever kernels.Device testDevice gives them: the GPU (tag cuda: cuda:0, opened with
// gpu.Open, on the device machine through scripts/device-check.sh) or the CPU emulator of
// kernels/emu (tag cudaemu: every `make test`, each case in three thread orders). The tag-cuda
// build also holds the microbenchmarks (W8A8 GEMM vs cuBLAS int8, weight-only GEMV vs copy
// bandwidth, on-device quantization of a GPT-2 XL-shaped model).
//
// This file is the part other test packages share (kernels/emu's broken-kernel checks run the
// same W8A8 check on deliberately wrong kernels): pure Go, imported only by tests.
package kerneltest

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/gpuquant/gpuquant/cpu"
	"github.com/gpuquant/gpuquant/kernels"
	"github.com/gpuquant/gpuquant/model"
	"github.com/gpuquant/gpuquant/quantize"
)

// TB is what the helpers need from a test: a *testing.T or *testing.B, or a stand-in that records
// the failure (kernels/emu's broken-kernel checks).
type TB interface {
	Helper()
	Fatal(args ...any)
	Fatalf(format string, args ...any)
}

// Eps32 is float32's unit roundoff, 2⁻²⁴.
const Eps32 = 1.0 / (1 << 24)

// F32Bytes encodes v little-endian.
func F32Bytes(v []float32) []byte {
	b := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(x))
	}
	return b
}

// BytesF32 decodes little-endian float32s.
func BytesF32(b []byte) []float32 {
	v := make([]float32, len(b)/4)
	for i := range v {
		v[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return v
}

// BytesI32 decodes little-endian int32s.
func BytesI32(b []byte) []int32 {
	v := make([]int32, len(b)/4)
	for i := range v {
		v[i] = int32(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return v
}

// Upload allocates len(b) bytes on d and copies b there.
func Upload(t TB, d kernels.Device, b []byte) kernels.Ptr {
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

// Output allocates n bytes poisoned with 0xFF (NaN floats, code −1, int32 −1): a kernel that
// leaves an element unwritten fails the comparison.
func Output(t TB, d kernels.Device, n int) kernels.Ptr {
	t.Helper()
	return Upload(t, d, bytes.Repeat([]byte{0xFF}, n))
}

// Download copies n bytes back from p (after the work queued before it).
func Download(t TB, d kernels.Device, p kernels.Ptr, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if err := d.CopyFromDevice(b, p); err != nil {
		t.Fatal(err)
	}
	return b
}

// Randn fills n values: Gaussian with a few outliers, never all zeros.
func Randn(r *rand.Rand, n int, scale float32) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(r.NormFloat64()) * scale
		if r.IntN(97) == 0 {
			v[i] *= 8
		}
	}
	return v
}

// CheckF32Exact requires got and want to be bit-identical.
func CheckF32Exact(t TB, what string, got, want []float32) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d values, want %d", what, len(got), len(want))
	}
	for i := range want {
		if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
			t.Fatalf("%s[%d]: got %v (%#08x) want %v (%#08x)", what, i, got[i], math.Float32bits(got[i]), want[i], math.Float32bits(want[i]))
		}
	}
}

// LinCase is the shape of a Linear: x(T, C) · W(OC, C)ᵀ.
type LinCase struct{ T, C, OC int }

// LinSetup is one Linear to check: a quantized weight, activations and a bias, all random.
type LinSetup struct {
	C     LinCase
	Q     *quantize.Tensor
	X     []float32 // (T, C)
	Bias  []float32 // (OC)
	Opt   quantize.Options
	Label string
}

// LinSetups makes a LinSetup for every case × scheme (absmax, zero-point) × bits (8, 4) ×
// granularity (groups that do not divide C skipped), with seeds fixed by the case's position.
func LinSetups(cases []LinCase, grans []quantize.Granularity) []LinSetup {
	var out []LinSetup
	for ci, c := range cases {
		for _, scheme := range []quantize.Scheme{quantize.Absmax, quantize.ZeroPoint} {
			for _, bits := range []int{8, 4} {
				for _, g := range grans {
					if g.Kind == quantize.PerGroup && c.C%g.Size != 0 {
						continue
					}
					r := rand.New(rand.NewPCG(uint64(ci), uint64(bits*7+len(g.Kind))))
					opt := quantize.Options{Scheme: scheme, Bits: bits, Granularity: g}
					w := Randn(r, c.OC*c.C, 0.05)
					q, err := quantize.Quantize(w, []int{c.OC, c.C}, opt)
					if err != nil {
						panic(err)
					}
					out = append(out, LinSetup{C: c, Q: q, X: Randn(r, c.T*c.C, 1), Bias: Randn(r, c.OC, 0.1), Opt: opt,
						Label: fmt.Sprintf("T%d-C%d-OC%d/%s", c.T, c.C, c.OC, opt)})
				}
			}
		}
	}
	return out
}

// CPULinear runs the CPU backend's Linear on the quantized weight with the given kernel
// (quantize.KernelWeightOnly or quantize.KernelW8A8); nil where the CPU backend has no kernel for the shape
// (4-bit rows of odd length).
func CPULinear(t TB, kernel string, s LinSetup) []float32 {
	if s.Q.Bits == 4 && s.C.C%2 != 0 {
		return nil
	}
	be, err := cpu.NewWith(cpu.Options{Kernel: kernel})
	if err != nil {
		t.Fatal(err)
	}
	in := be.NewBuf(s.C.T, s.C.C).(*cpu.Buf)
	copy(in.Data, s.X)
	out := be.NewBuf(s.C.T, s.C.OC).(*cpu.Buf)
	be.Linear(out, in, s.Q, model.NewF32(s.Bias, s.C.OC))
	return out.Data
}

// UploadWeights puts the codes, scales and zero-points (0 for absmax) on the device.
func UploadWeights(t TB, d kernels.Device, q *quantize.Tensor) (codes, scales, zeros kernels.Ptr) {
	t.Helper()
	codes = Upload(t, d, q.Codes)
	scales = Upload(t, d, F32Bytes(q.Scales))
	if q.Zeros != nil {
		zeros = Upload(t, d, F32Bytes(q.Zeros))
	}
	return
}

// ActsRef is cpu.quantizeActs (per-token absmax, one IEEE division, round half to even).
func ActsRef(x []float32, T, C int) (qa []int8, inv []float32) {
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

// RunW8A8 quantizes the activations (kernels.QuantizeActs) and runs the named GEMM kernel
// (kernels.KGemmW8A8 through kernels.GemmW8A8, or a broken copy with the launcher's grid), then
// checks the activation codes, 1/scale and group sums exactly and every output within the bound
// stated below, against the exact integer result and against ref (the CPU backend's W8A8 Linear;
// nil to skip).
func RunW8A8(t TB, d kernels.Device, s LinSetup, ref []float32, kernel string) {
	t.Helper()
	T, C, OC, gs := s.C.T, s.C.C, s.C.OC, s.Q.GroupSize
	gw, err := kernels.W8A8GroupWidth(C, OC, gs)
	if err != nil {
		t.Fatal(err)
	}
	gpr := C / gw
	codes, scales, zeros := UploadWeights(t, d, s.Q)
	x, bias := Upload(t, d, F32Bytes(s.X)), Upload(t, d, F32Bytes(s.Bias))
	qa, inv, out := Output(t, d, T*C), Output(t, d, 4*T), Output(t, d, 4*T*OC)
	var qsum kernels.Ptr
	if zeros != 0 {
		qsum = Output(t, d, 4*T*gpr)
	}
	if err := kernels.QuantizeActs(d, qa, inv, qsum, x, T, C, gw); err != nil {
		t.Fatal(err)
	}
	if kernel == kernels.KGemmW8A8 {
		w := kernels.W{Data: codes, Scales: scales, Zeros: zeros, GroupSize: gs, Bits: s.Q.Bits}
		err = kernels.GemmW8A8(d, out, qa, inv, qsum, w, bias, T, C, OC, kernels.ActNone)
	} else {
		err = d.Launch(kernel, kernels.Dim3{X: (OC + kernels.W8A8Tile - 1) / kernels.W8A8Tile, Y: (T + kernels.W8A8Tile - 1) / kernels.W8A8Tile, Z: 1}, kernels.Dim3{X: 128, Y: 1, Z: 1}, 0,
			out, qa, inv, qsum, codes, scales, zeros, bias, int32(T), int32(C), int32(OC), int64(gs), int32(s.Q.Bits))
	}
	if err != nil {
		t.Fatal(err)
	}
	wantQa, wantInv := ActsRef(s.X, T, C)
	gotQa := Download(t, d, qa, T*C)
	for i, v := range wantQa {
		if int8(gotQa[i]) != v {
			t.Fatalf("activation code [%d,%d]: got %d want %d", i/C, i%C, int8(gotQa[i]), v)
		}
	}
	CheckF32Exact(t, "inv", BytesF32(Download(t, d, inv, 4*T)), wantInv)
	var gotQs []int32
	if qsum != 0 {
		gotQs = BytesI32(Download(t, d, qsum, 4*T*gpr))
	}
	checkW8A8Out(t, s, wantQa, wantInv, gotQs, BytesF32(Download(t, d, out, 4*T*OC)), ref, gw)
}

// checkW8A8Out checks the W8A8 output got (and the group sums gotQs, when not nil) against the
// exact integer result of the activation codes qa with 1/scale inv, and against ref when not nil.
func checkW8A8Out(t TB, s LinSetup, wantQa []int8, wantInv []float32, gotQs []int32, got, ref []float32, gw int) {
	t.Helper()
	T, C, OC, gs := s.C.T, s.C.C, s.C.OC, s.Q.GroupSize
	gpr := C / gw
	// Integer codes of the weights, decoded once (Code per element is slow on the XL shapes).
	w := make([]int8, OC*C)
	for i := range w {
		w[i] = int8(s.Q.Code(i))
	}
	for tt := 0; tt < T; tt++ {
		a := wantQa[tt*C : (tt+1)*C]
		for n := 0; n < OC; n++ {
			wr := w[n*C : (n+1)*C]
			// Exact reference from the integer dots, in float64, and the magnitude both float32
			// epilogues round against: each adds 2 (or 4 with zeros) rounded terms per group and
			// rounds the scaling and bias, so |err| ≤ (4·gpr + 4)·2⁻²⁴·mag per side.
			var ex, mag float64
			for grp := 0; grp < gpr; grp++ {
				var dot, qs int64
				for k := grp * gw; k < (grp+1)*gw; k++ {
					dot += int64(a[k]) * int64(wr[k])
					qs += int64(a[k])
				}
				if gotQs != nil && int64(gotQs[tt*gpr+grp]) != qs {
					t.Fatalf("qsum[%d,%d] = %d want %d", tt, grp, gotQs[tt*gpr+grp], qs)
				}
				gi := (n*C + grp*gw) / gs
				iv := float64(1 / s.Q.Scales[gi])
				z := 0.0
				if s.Q.Zeros != nil {
					z = float64(s.Q.Zeros[gi])
				}
				ex += iv*float64(dot) - z*iv*float64(qs)
				mag += math.Abs(iv*float64(dot)) + math.Abs(z*iv*float64(qs))
			}
			inv := float64(wantInv[tt])
			ex = ex*inv + float64(s.Bias[n])
			mag = mag*inv + math.Abs(float64(s.Bias[n]))
			tol := float64(4*gpr+4) * Eps32 * mag
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

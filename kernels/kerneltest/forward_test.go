//go:build cuda || cudaemu

package kerneltest

// The forward-pass kernels of norm.cu and attention.cu (kernels.Embed, LayerNorm, AddLayerNorm,
// Add, GELU, Attention, NLL) against the CPU backend's ops (cpu.New through model.Ops) on fresh
// random inputs, outputs poisoned first. Embed and Add are exact; the others are within the
// bounds stated at each check. Every test logs the largest error it saw (go test -v).

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/gpuquant/gpuquant/cpu"
	"github.com/gpuquant/gpuquant/kernels"
	"github.com/gpuquant/gpuquant/model"
	"github.com/gpuquant/gpuquant/quantize"
)

// fwdOps is the reference: the CPU backend through the interface the forward pass uses.
func fwdOps() *cpu.Backend { return cpu.New() }

// fwdBuf is a CPU (rows, cols) buffer holding v.
func fwdBuf(ops model.Ops, rows, cols int, v []float32) model.Buf {
	b := ops.NewBuf(rows, cols)
	copy(b.(*cpu.Buf).Data, v)
	return b
}

func fwdData(b model.Buf) []float32 { return b.(*cpu.Buf).Data }

func fwdBytesF64(b []byte) []float64 {
	v := make([]float64, len(b)/8)
	for i := range v {
		v[i] = math.Float64frombits(binary.LittleEndian.Uint64(b[8*i:]))
	}
	return v
}

// fwdMaxErr records the largest error a test saw over all its cases and schedule orders.
type fwdMaxErr struct {
	mu   sync.Mutex
	v    float64
	what string
}

func (m *fwdMaxErr) add(v float64, what string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if v > m.v || m.what == "" {
		m.v, m.what = v, what
	}
}

func (m *fwdMaxErr) log(t *testing.T, kind string) {
	t.Logf("largest %s: %.3g (%s)", kind, m.v, m.what)
}

// ---------------------------------------------------------------------------------------------
// Embed: bit-exact for every weight format.

// fwdTable is an embedding table (rows, C) in one format of linFormats: what the CPU reads (ref)
// and what the device gets.
type fwdTable struct {
	f   linFormat
	x   []float32
	q   *quantize.Tensor
	ref model.Tensor
}

func fwdMakeTable(t *testing.T, format string, x []float32, rows, C int) fwdTable {
	for _, f := range linFormats() {
		if f.name == format {
			deq, q := floatWeight(t, f, x, rows, C)
			tb := fwdTable{f: f, x: x, q: q, ref: model.NewF32(deq, rows, C)}
			if q != nil {
				tb.ref = q // the CPU reads rows of the codes
			}
			return tb
		}
	}
	t.Fatalf("unknown format %s", format)
	return fwdTable{}
}

func (tb fwdTable) upload(t *testing.T, d kernels.Device) kernels.W {
	return uploadWeight(t, d, tb.f, tb.x, tb.q)
}

func TestEmbed(t *testing.T) {
	const V, C, maxT = 97, 96, 48
	formats := [][2]string{ // wte, wpe
		{"f32", "f32"}, {"f16", "f16"}, {"q8-absmax-channel", "q8-absmax-channel"},
		{"q8-zeropoint-tensor", "f32"}, {"q4-absmax-group32", "q4-zeropoint-channel"}, {"q4-zeropoint-channel", "f16"},
	}
	for fi, f := range formats {
		for _, sh := range []struct{ T, pos0 int }{{5, 7}, {1, 33}} {
			r := rand.New(rand.NewPCG(uint64(fi), uint64(sh.T)))
			wte := fwdMakeTable(t, f[0], Randn(r, V*C, 0.1), V, C)
			wpe := fwdMakeTable(t, f[1], Randn(r, maxT*C, 0.02), maxT, C)
			tokens := make([]int32, sh.T)
			for i := range tokens {
				tokens[i] = int32(r.IntN(V))
			}
			tokens[0] = V - 1 // the last row
			ops := fwdOps()
			want := ops.NewBuf(sh.T, C)
			ops.Embed(want, tokens, sh.pos0, wte.ref, wpe.ref)
			inOrders(t, fmt.Sprintf("%s+%s/T%d-pos%d", f[0], f[1], sh.T, sh.pos0), func(t *testing.T, d kernels.Device) {
				out := Output(t, d, 4*sh.T*C)
				tok, pos := Upload(t, d, model.I32Bytes(tokens)), Upload(t, d, model.I32Bytes([]int32{int32(sh.pos0)}))
				if err := kernels.Embed(d, out, tok, pos, wte.upload(t, d), wpe.upload(t, d), sh.T, C); err != nil {
					t.Fatal(err)
				}
				CheckF32Exact(t, "embed", BytesF32(Download(t, d, out, 4*sh.T*C)), fwdData(want))
			})
		}
	}
}

// ---------------------------------------------------------------------------------------------
// LayerNorm and the fused residual add + LayerNorm.

// lnTol bounds |device − CPU| per row of a LayerNorm output, relative to the row's largest
// |value|: both sum C float32 values (mean, then the squared deviations) in different orders, an
// error of a few ulp of the row's magnitude each.
const lnTol = 1e-5

func checkRowsRel(t *testing.T, what string, got, want []float32, T, C int, tol float64, m *fwdMaxErr) {
	t.Helper()
	for r := range T {
		var ma, worst float64
		wi := 0
		for c := range C {
			ma = max(ma, math.Abs(float64(want[r*C+c])))
		}
		for c := range C {
			e := math.Abs(float64(got[r*C+c]) - float64(want[r*C+c]))
			if !(e <= tol*ma) { // NaN fails
				t.Fatalf("%s[%d,%d] = %v, CPU %v: |diff| %.3g > %.0e × row max-abs %.4g", what, r, c, got[r*C+c], want[r*C+c], e, tol, ma)
			}
			if e > worst {
				worst, wi = e, c
			}
		}
		m.add(worst/ma, fmt.Sprintf("%s row %d col %d", what, r, wi))
	}
}

func TestLayerNorm(t *testing.T) {
	const eps = 1e-5
	var worst fwdMaxErr
	for ci, sh := range []struct{ T, C int }{{1, 768}, {3, 64}, {4, 1600}, {2, 33}} {
		r := rand.New(rand.NewPCG(uint64(ci), 11))
		T, C := sh.T, sh.C
		x := Randn(r, T*C, 2)
		for i := range x {
			x[i] += 3 // a mean far from 0: the variance is of the deviations
		}
		y := Randn(r, T*C, 1)
		w, b := Randn(r, C, 0.5), Randn(r, C, 0.1)
		for i := range w {
			w[i] += 1
		}
		ops := fwdOps()
		wt, bt := model.NewF32(w, C), model.NewF32(b, C)
		wantLN := ops.NewBuf(T, C)
		ops.LayerNorm(wantLN, fwdBuf(ops, T, C, x), wt, bt, eps)
		xs := fwdBuf(ops, T, C, x)
		ops.Add(xs, fwdBuf(ops, T, C, y))
		wantAdd := ops.NewBuf(T, C)
		ops.LayerNorm(wantAdd, xs, wt, bt, eps)

		inOrders(t, fmt.Sprintf("layernorm/T%d-C%d", T, C), func(t *testing.T, d kernels.Device) {
			in, wp, bp := Upload(t, d, F32Bytes(x)), Upload(t, d, F32Bytes(w)), Upload(t, d, F32Bytes(b))
			out := Output(t, d, 4*T*C)
			if err := kernels.LayerNorm(d, out, in, wp, bp, T, C, eps); err != nil {
				t.Fatal(err)
			}
			checkRowsRel(t, "layernorm", BytesF32(Download(t, d, out, 4*T*C)), fwdData(wantLN), T, C, lnTol, &worst)
			CheckF32Exact(t, "layernorm input", BytesF32(Download(t, d, in, 4*T*C)), x)
			// In place (out = in).
			if err := kernels.LayerNorm(d, in, in, wp, bp, T, C, eps); err != nil {
				t.Fatal(err)
			}
			checkRowsRel(t, "layernorm in place", BytesF32(Download(t, d, in, 4*T*C)), fwdData(wantLN), T, C, lnTol, &worst)
		})
		inOrders(t, fmt.Sprintf("add_layernorm/T%d-C%d", T, C), func(t *testing.T, d kernels.Device) {
			xp, yp := Upload(t, d, F32Bytes(x)), Upload(t, d, F32Bytes(y))
			wp, bp := Upload(t, d, F32Bytes(w)), Upload(t, d, F32Bytes(b))
			out := Output(t, d, 4*T*C)
			if err := kernels.AddLayerNorm(d, xp, yp, out, wp, bp, T, C, eps); err != nil {
				t.Fatal(err)
			}
			CheckF32Exact(t, "residual x+y", BytesF32(Download(t, d, xp, 4*T*C)), fwdData(xs))
			checkRowsRel(t, "add_layernorm", BytesF32(Download(t, d, out, 4*T*C)), fwdData(wantAdd), T, C, lnTol, &worst)
		})
	}
	worst.log(t, "|diff| / row max-abs")
}

// ---------------------------------------------------------------------------------------------
// Add (exact) and GELU.

func TestAdd(t *testing.T) {
	for ci, sh := range []struct{ T, C int }{{1, 768}, {7, 1000}, {3, 33}} {
		r := rand.New(rand.NewPCG(uint64(ci), 12))
		T, C := sh.T, sh.C
		x, y := Randn(r, T*C, 1), Randn(r, T*C, 1)
		ops := fwdOps()
		want := fwdBuf(ops, T, C, x)
		ops.Add(want, fwdBuf(ops, T, C, y))
		inOrders(t, fmt.Sprintf("T%d-C%d", T, C), func(t *testing.T, d kernels.Device) {
			xp, yp := Upload(t, d, F32Bytes(x)), Upload(t, d, F32Bytes(y))
			if err := kernels.Add(d, xp, yp, T*C); err != nil {
				t.Fatal(err)
			}
			CheckF32Exact(t, "x+y", BytesF32(Download(t, d, xp, 4*T*C)), fwdData(want))
			CheckF32Exact(t, "y", BytesF32(Download(t, d, yp, 4*T*C)), y)
		})
	}
}

// geluTol bounds |device − CPU| relative to max(|x|, 2⁻¹²⁶): both are 0.5·x·(1 + tanh(u)) with
// tanh within about 1e-7 absolute (CUDA's tanhf, glibc's under the emulator, the CPU's e^x-based
// one), so the difference is about |x|·1e-7 plus a few roundings of the result.
const geluTol = 1e-6

func TestGELU(t *testing.T) {
	var worst fwdMaxErr
	for ci, sh := range []struct{ T, C int }{{1, 3072}, {5, 301}} {
		r := rand.New(rand.NewPCG(uint64(ci), 13))
		T, C := sh.T, sh.C
		x := Randn(r, T*C, 3)
		x[0], x[1], x[2] = 0, -20, 20 // saturated tails
		ops := fwdOps()
		want := fwdBuf(ops, T, C, x)
		ops.GELU(want)
		inOrders(t, fmt.Sprintf("T%d-C%d", T, C), func(t *testing.T, d kernels.Device) {
			xp := Upload(t, d, F32Bytes(x))
			if err := kernels.GELU(d, xp, T*C); err != nil {
				t.Fatal(err)
			}
			got := BytesF32(Download(t, d, xp, 4*T*C))
			for i, w := range fwdData(want) {
				m := max(math.Abs(float64(x[i])), 0x1p-126)
				e := math.Abs(float64(got[i]) - float64(w))
				if !(e <= geluTol*m) {
					t.Fatalf("gelu(%v) = %v, CPU %v: |diff| %.3g > %.0e × |x|", x[i], got[i], w, e, geluTol)
				}
				worst.add(e/m, fmt.Sprintf("x=%v", x[i]))
			}
		})
	}
	worst.log(t, "|diff| / |x|")
}

// ---------------------------------------------------------------------------------------------
// Attention: the cache rows written and the output.

// attTol bounds |device − CPU| per (query row, head) of the attention output, relative to the
// largest |value| of that head's slice of the output row: scores are float32 dot products of hd
// terms summed in different orders, the softmax is online (rescaled per chunk) on the device and
// two-pass on the CPU, and the weighted sums run over pos0+t+1 terms.
const attTol = 1e-5

type attCase struct{ C, nHead, T, pos0 int }

func TestAttention(t *testing.T) {
	cases := []attCase{
		{64, 2, 1, 0},     // one key
		{64, 2, 3, 300},   // row blocks, several rounds of the 8 warps over the keys
		{64, 2, 9, 0},     // the smallest T of the tile blocks, one ragged tile
		{64, 2, 40, 30},   // three tiles, several key chunks
		{96, 2, 20, 5},    // hd 48: not a multiple of 32
		{96, 2, 2, 40},    // hd 48, row blocks
		{256, 2, 18, 50},  // hd 128, the largest
		{256, 2, 1, 70},   // hd 128, decoding
		{8, 2, 17, 3},     // hd 4, the smallest
		{768, 12, 1, 37},  // GPT-2 decoding
		{768, 12, 17, 0},  // GPT-2 prefill
		{768, 12, 5, 9},   // GPT-2, a few tokens after a prompt
		{1600, 25, 1, 20}, // GPT-2 XL decoding
	}
	var worst fwdMaxErr
	for ci, c := range cases {
		r := rand.New(rand.NewPCG(uint64(ci), 14))
		C, nHead, T, pos0 := c.C, c.nHead, c.T, c.pos0
		maxT := pos0 + T + 3 // rows past pos0+T must stay untouched
		qkv := Randn(r, T*3*C, 1)
		kOld, vOld := Randn(r, pos0*C, 1), Randn(r, pos0*C, 1)
		ops := fwdOps()
		kc, vc := ops.NewBuf(maxT, C), ops.NewBuf(maxT, C)
		copy(fwdData(kc), kOld)
		copy(fwdData(vc), vOld)
		want := ops.NewBuf(T, C)
		ops.Attention(want, fwdBuf(ops, T, 3*C, qkv), kc, vc, pos0, nHead)

		inOrders(t, fmt.Sprintf("C%d-H%d/T%d-pos%d", C, nHead, T, pos0), func(t *testing.T, d kernels.Device) {
			// Caches: random rows before pos0, poison (NaN) from pos0 on: the kernel must read
			// only the rows it wrote.
			cache := func(old []float32) kernels.Ptr {
				p := Output(t, d, 4*maxT*C)
				if len(old) > 0 {
					if err := d.CopyToDevice(p, F32Bytes(old)); err != nil {
						t.Fatal(err)
					}
				}
				return p
			}
			kp, vp := cache(kOld), cache(vOld)
			xp := Upload(t, d, F32Bytes(qkv))
			pos := Upload(t, d, model.I32Bytes([]int32{int32(pos0)}))
			out := Output(t, d, 4*T*C)
			if err := kernels.Attention(d, out, xp, kp, vp, pos, T, C, nHead); err != nil {
				t.Fatal(err)
			}
			for _, cc := range []struct {
				name string
				p    kernels.Ptr
				ref  model.Buf
			}{{"k cache", kp, kc}, {"v cache", vp, vc}} {
				got := BytesF32(Download(t, d, cc.p, 4*maxT*C))
				CheckF32Exact(t, cc.name+" rows < pos0+T", got[:(pos0+T)*C], fwdData(cc.ref)[:(pos0+T)*C])
				for i, v := range got[(pos0+T)*C:] {
					if math.Float32bits(v) != 0xFFFFFFFF {
						t.Fatalf("%s: row %d written (%v) past pos0+T", cc.name, pos0+T+i/C, v)
					}
				}
			}
			got := BytesF32(Download(t, d, out, 4*T*C))
			hd := C / nHead
			for h := range nHead {
				g, w := make([]float32, T*hd), make([]float32, T*hd)
				for tt := range T {
					copy(g[tt*hd:], got[tt*C+h*hd:tt*C+(h+1)*hd])
					copy(w[tt*hd:], fwdData(want)[tt*C+h*hd:tt*C+(h+1)*hd])
				}
				checkRowsRel(t, fmt.Sprintf("attention head %d", h), g, w, T, hd, attTol, &worst)
			}
		})
	}
	worst.log(t, "|diff| / (row, head) max-abs")
}

// ---------------------------------------------------------------------------------------------
// NLL.

// nllTol bounds |device − CPU| relative to max(1, |NLL|): both take max + log Σ e^(l−max) − l
// with the sum in float64 of float32 exponentials (CUDA's or glibc's expf vs the CPU's, each
// within a few ulp), so the log differs by a few 1e-8.
const nllTol = 1e-6

func TestNLL(t *testing.T) {
	var worst fwdMaxErr
	for ci, sh := range []struct{ T, V int }{{2, 50257}, {5, 37}} {
		r := rand.New(rand.NewPCG(uint64(ci), 15))
		T, V := sh.T, sh.V
		logits := Randn(r, T*V, 2)
		targets := make([]int32, T)
		for i := range targets {
			targets[i] = int32(r.IntN(V))
		}
		targets[0] = int32(V - 1)
		// Row 1's target is its largest logit (an NLL near 0).
		m := 0
		for c := range V {
			if logits[V+c] > logits[V+m] {
				m = c
			}
		}
		targets[1] = int32(m)
		ops := fwdOps()
		want := make([]float64, T)
		ops.NLL(want, fwdBuf(ops, T, V, logits), targets)
		inOrders(t, fmt.Sprintf("T%d-V%d", T, V), func(t *testing.T, d kernels.Device) {
			lp, tp := Upload(t, d, F32Bytes(logits)), Upload(t, d, model.I32Bytes(targets))
			dst := Output(t, d, 8*T)
			if err := kernels.NLL(d, dst, lp, tp, T, V); err != nil {
				t.Fatal(err)
			}
			got := fwdBytesF64(Download(t, d, dst, 8*T))
			for i := range T {
				e, s := math.Abs(got[i]-want[i]), max(1, math.Abs(want[i]))
				if !(e <= nllTol*s) {
					t.Fatalf("nll[%d] = %v, CPU %v: |diff| %.3g > %.0e × %.3g", i, got[i], want[i], e, nllTol, s)
				}
				worst.add(e/s, fmt.Sprintf("T%d V%d row %d", T, V, i))
			}
		})
	}
	worst.log(t, "|diff| / max(1, |NLL|)")
	// A target outside [0, V) gives NaN (the CPU backend would panic), the other rows their NLL.
	inOrders(t, "bad-target", func(t *testing.T, d kernels.Device) {
		const T, V = 3, 40
		logits := Randn(rand.New(rand.NewPCG(9, 9)), T*V, 1)
		targets := []int32{5, V, -1}
		ops := fwdOps()
		want := make([]float64, 1)
		ops.NLL(want, fwdBuf(ops, 1, V, logits[:V]), targets[:1])
		lp, tp := Upload(t, d, F32Bytes(logits)), Upload(t, d, model.I32Bytes(targets))
		poison := make([]byte, 8*T) // 7.0, not NaN: the NaNs must be written
		for i := range T {
			binary.LittleEndian.PutUint64(poison[8*i:], math.Float64bits(7))
		}
		dst := Upload(t, d, poison)
		if err := kernels.NLL(d, dst, lp, tp, T, V); err != nil {
			t.Fatal(err)
		}
		got := fwdBytesF64(Download(t, d, dst, 8*T))
		if !(math.Abs(got[0]-want[0]) <= nllTol*max(1, want[0])) || !math.IsNaN(got[1]) || !math.IsNaN(got[2]) {
			t.Fatalf("nll = %v, want [%v NaN NaN]", got, want[0])
		}
	})
}

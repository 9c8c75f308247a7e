package cpu

// Linear on quantized weights (*quantize.Tensor, nn.Linear layout (OC, C)).
//
// Two kernel families:
//
//   - weight-only: activations stay float32 and the codes are dequantized inside the matmul, never
//     expanded whole. For T ≤ gemvMaxT (decoding) a GEMV streams each row of codes once per token:
//     per group it accumulates Σ code·x in float32 and applies the group's 1/scale and zero-point
//     (via Σ_group x, computed once per token) at the end of the group. For larger T a panel of rows
//     is dequantized into a per-goroutine float32 scratch and multiplied with the fp32 GemmNT.
//     Numerics: the same as running the float matmul on Dequantize(), up to float32 rounding.
//   - W8A8: activations are quantized per token (absmax, round half to even) and the products are
//     int8×int8→int32 dot products per weight group, with one float epilogue. This changes the
//     numerics (activation rounding), so the backend only uses it when Options.Kernel asks for it.
//     With Options.OutlierThreshold > 0 input channels holding a value beyond the threshold are
//     taken out of the integer product and computed in float (LLM.int8()).

import (
	"encoding/binary"
	"fmt"
	"math"
	"runtime"
	"sort"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/gpuquant/gpuquant/internal/par"
	"github.com/gpuquant/gpuquant/quantize"
)

// Options configures the CPU backend's quantized kernels.
type Options struct {
	// Kernel is quantize.KernelAuto (or ""), KernelWeightOnly or KernelW8A8. Auto means
	// weight-only: W8A8 quantizes the activations as well and so changes the results; it is used
	// only when asked for.
	Kernel string
	// OutlierThreshold > 0 enables the LLM.int8() decomposition in W8A8: the input channels where
	// some |x| exceeds it in a call are multiplied in float32. 0 turns it off.
	OutlierThreshold float32
}

// NewWith returns a CPU backend with the given options.
func NewWith(o Options) (*Backend, error) {
	k, err := quantize.ParseKernel(o.Kernel)
	if err != nil {
		return nil, fmt.Errorf("cpu: %w", err)
	}
	o.Kernel = k
	if !(o.OutlierThreshold >= 0) || math.IsInf(float64(o.OutlierThreshold), 0) {
		return nil, fmt.Errorf("cpu: outlier threshold %v must be a finite value ≥ 0", o.OutlierThreshold)
	}
	return &Backend{opts: o}, nil
}

// KernelsUsed returns how many Linear calls each kernel has run, by name ("f32-avx512",
// "q8-weight-only-avx512", "q4-weight-only-gemm-avx2", "w8a8-vnni", "w8a8-outliers-f32", ...).
// It is safe to call while other goroutines run the backend.
func (be *Backend) KernelsUsed() map[string]int64 {
	m := map[string]int64{}
	be.used.Range(func(k, v any) bool {
		m[k.(string)] = v.(*atomic.Int64).Load()
		return true
	})
	return m
}

func (be *Backend) count(name string) {
	v, ok := be.used.Load(name)
	if !ok {
		v, _ = be.used.LoadOrStore(name, new(atomic.Int64))
	}
	v.(*atomic.Int64).Add(1)
}

func f32KernelName() string {
	switch isa {
	case isaAVX512:
		return "f32-avx512"
	case isaAVX2:
		return "f32-avx2"
	}
	return "f32-go"
}

// gemvMaxT is the largest T run by the weight-only GEMV; above it codes are dequantized per panel
// and multiplied with GemmNT.
const gemvMaxT = 4

// qweight is a quantized matrix prepared for the kernels (cached per tensor by the backend).
type qweight struct {
	t         *quantize.Tensor
	oc, c     int
	bits      int
	g, gpr    int       // values per group within a row, groups per row (g = c when GroupSize ≥ c)
	invs      []float32 // [oc*gpr] 1/scale of (row, group)
	zi        []float32 // [oc*gpr] weight-only zero term: (zero (+8 for 4 bits))/scale; nil when 0
	hasZeros  bool
	w8once    sync.Once
	w8invs    []float32 // [panel][gpr][w8Panel] 1/scale, 0 past OC
	w8zinv    []float32 // [panel][gpr][w8Panel] zero/scale; nil without zero-points
	w8corr    []int32   // [panel][gpr][w8Panel] 128·Σ_group signed code
	w8npanels int
	// w8packed[l] is every panel as pack lays it out for path l, made once (w8Panels): repacking
	// the weights on each call was most of a W8A8 decode step (44% of its time for GPT-2 124M).
	// Only tests switch paths, so one entry is used in practice.
	w8mu     sync.Mutex
	w8packed [w8Paths][]byte
	w8tilers sync.Pool // *w8tiler: one call's scratch, reused across calls
}

// prepareQ checks that t is a matrix the kernels run and precomputes its per-group constants.
func prepareQ(t *quantize.Tensor) (*qweight, error) {
	if len(t.Dims) != 2 {
		return nil, fmt.Errorf("quantized Linear weight must be a matrix, got shape %v", t.Dims)
	}
	if err := t.Validate(); err != nil {
		return nil, err
	}
	oc, c := t.Dims[0], t.Dims[1]
	if oc <= 0 || c <= 0 {
		return nil, fmt.Errorf("empty quantized matrix %v", t.Dims)
	}
	q := &qweight{t: t, oc: oc, c: c, bits: t.Bits, hasZeros: t.Zeros != nil}
	var err error
	if q.g, err = quantize.RowGroup(c, oc, t.GroupSize); err != nil {
		return nil, err
	}
	q.gpr = c / q.g
	if q.bits == 4 && (c%2 != 0 || q.g%2 != 0) {
		return nil, fmt.Errorf("4-bit rows and groups must have even length (C=%d, group %d)", c, q.g)
	}
	n := oc * q.gpr
	q.invs = make([]float32, n)
	var off float32
	if q.bits == 4 {
		off = 8 // the kernels read the stored nibble q+8
	}
	if q.hasZeros || off != 0 {
		q.zi = make([]float32, n)
	}
	for r := 0; r < oc; r++ {
		for j := 0; j < q.gpr; j++ {
			gi := q.group(r, j)
			s := t.Scales[gi]
			if !(s > 0) || math.IsInf(float64(s), 0) {
				return nil, fmt.Errorf("scale %v of group %d is not a positive finite number", s, gi)
			}
			iv := 1 / s
			q.invs[r*q.gpr+j] = iv
			if q.zi != nil {
				q.zi[r*q.gpr+j] = (q.zero(gi) + off) * iv
			}
		}
	}
	return q, nil
}

// group is the index into Scales/Zeros of group j of row r.
func (q *qweight) group(r, j int) int {
	if q.t.GroupSize <= q.c {
		return r*q.gpr + j
	}
	return r * q.c / q.t.GroupSize
}

func (q *qweight) zero(gi int) float32 {
	if q.t.Zeros == nil {
		return 0
	}
	return q.t.Zeros[gi]
}

// rowCodes returns the bytes of row r's codes.
func (q *qweight) rowCodes(r int) []byte {
	if q.bits == 8 {
		return q.t.Codes[r*q.c : (r+1)*q.c]
	}
	return q.t.Codes[r*q.c/2 : (r+1)*q.c/2]
}

// signedRow writes row r's codes as int8 into dst[:c].
func (q *qweight) signedRow(dst []byte, r int) {
	src := q.rowCodes(r)
	if q.bits == 8 {
		copy(dst[:q.c], src)
		return
	}
	dst = dst[:q.c]
	for i, b := range src {
		dst[2*i] = byte(int8(b&15) - 8)
		dst[2*i+1] = byte(int8(b>>4) - 8)
	}
}

// prepared returns the cached kernel data of t.
func (be *Backend) prepared(t *quantize.Tensor) (*qweight, error) {
	if v, ok := be.weights.Load(t); ok {
		return v.(*qweight), nil
	}
	q, err := prepareQ(t)
	if err != nil {
		return nil, err
	}
	v, _ := be.weights.LoadOrStore(t, q)
	return v.(*qweight), nil
}

// quantLinear returns the Linear kernel for a quantized weight, or why the kernels cannot run it.
func (be *Backend) quantLinear(t *quantize.Tensor) (func(out, in, bias []float32, T int), error) {
	q, err := be.prepared(t)
	if err != nil {
		return nil, err
	}
	return func(out, in, bias []float32, T int) {
		if T <= 0 {
			return
		}
		_ = out[T*q.oc-1]
		_ = in[T*q.c-1]
		if bias != nil {
			_ = bias[q.oc-1]
		}
		if be.opts.Kernel == quantize.KernelW8A8 {
			be.count(w8a8Linear(q, out, in, bias, T, be.opts.OutlierThreshold, be.count))
			return
		}
		be.count(weightOnlyLinear(q, out, in, bias, T))
	}, nil
}

// ---------------------------------------------------------------------------
// Weight-only.

var f32Pool = sync.Pool{New: func() any { return new([]float32) }}

func getF32(n int) *[]float32 {
	p := f32Pool.Get().(*[]float32)
	if cap(*p) < n {
		*p = make([]float32, n)
	}
	*p = (*p)[:n]
	return p
}

// weightOnlyLinear computes out(T, OC) = in(T, C)·deq(W)ᵀ + bias and returns the kernel's name.
func weightOnlyLinear(q *qweight, out, in, bias []float32, T int) string {
	if T <= gemvMaxT {
		return qGemvLinear(q, out, in, bias, T)
	}
	return qGemmLinear(q, out, in, bias, T)
}

func woKernelName(q *qweight, what string) string {
	l := woISA
	if !qGemvArchOK(q.bits, q.g) {
		l = woGo
	}
	return fmt.Sprintf("q%d-weight-only%s-%s", q.bits, what, woNames[l])
}

// qGemvLinear is the decode kernel: each row of codes is read once per token, in blocks of rows
// split over all cores.
func qGemvLinear(q *qweight, out, in, bias []float32, T int) string {
	c, oc, gpr := q.c, q.oc, q.gpr
	// 4-bit codes without zero-points are read as signed (nibble − 8), so the +8 term of q.zi
	// (8/scale) drops out with the Σx pass: one stream less for the GEMV to read.
	zi, off := q.zi, 0
	if q.bits == 4 && !q.hasZeros {
		zi, off = nil, 8
	}
	var xs []float32
	if zi != nil {
		xs = make([]float32, T*gpr)
		for t := 0; t < T; t++ {
			x := in[t*c : (t+1)*c]
			for j := range gpr {
				var s float32
				for _, v := range x[j*q.g : (j+1)*q.g] {
					s += v
				}
				xs[t*gpr+j] = s
			}
		}
	}
	// With several tokens, blocks of 32 rows keep the codes in cache between tokens.
	block := oc
	if T > 1 {
		block = 32
	}
	grain := max(32, (1<<15)/c)
	par.For(oc, grain, func(lo, hi int) {
		for r0 := lo; r0 < hi; r0 += block {
			n := min(block, hi-r0)
			codes := q.t.Codes[r0*c*q.bits/8:]
			for t := 0; t < T; t++ {
				var zr, xst []float32
				if zi != nil {
					zr, xst = zi[r0*gpr:], xs[t*gpr:]
				}
				o := out[t*oc+r0 : t*oc+r0+n]
				if q.bits == 4 {
					q4Gemv(n, c, q.g, off, codes, in[t*c:(t+1)*c], q.invs[r0*gpr:], zr, xst, o)
				} else {
					qGemv(q.bits, n, c, q.g, codes, in[t*c:(t+1)*c], q.invs[r0*gpr:], zr, xst, o)
				}
				if bias != nil {
					for i, b := range bias[r0 : r0+n] {
						o[i] += b
					}
				}
			}
		}
	})
	return woKernelName(q, "")
}

// dequantRows writes rows [r0, r0+n) of deq(W) into dst (n×c), as code·(1/scale) − zi.
func (q *qweight) dequantRows(dst []float32, r0, n int) {
	c, g, gpr := q.c, q.g, q.gpr
	for r := r0; r < r0+n; r++ {
		row := dst[(r-r0)*c : (r-r0+1)*c]
		codes := q.rowCodes(r)
		for j := 0; j < gpr; j++ {
			iv := q.invs[r*gpr+j]
			var z float32
			if q.zi != nil {
				z = q.zi[r*gpr+j]
			}
			seg := row[j*g : (j+1)*g]
			if q.bits == 8 {
				cs := codes[j*g : (j+1)*g]
				for k, b := range cs {
					seg[k] = float32(int8(b))*iv - z
				}
				continue
			}
			cs := codes[j*g/2 : (j+1)*g/2]
			for k, b := range cs {
				seg[2*k] = float32(b&15)*iv - z
				seg[2*k+1] = float32(b>>4)*iv - z
			}
		}
	}
}

// qGemmLinear is the prefill kernel: per core, panels of rows are dequantized into a float32
// scratch (about 1 MiB) and multiplied with GemmNT.
func qGemmLinear(q *qweight, out, in, bias []float32, T int) string {
	c, oc := q.c, q.oc
	panel := min(256, max(16, (1<<18)/c/16*16))
	P := runtime.GOMAXPROCS(0)
	chunk := (oc + P - 1) / P
	chunk = (chunk + 15) / 16 * 16
	par.For((oc+chunk-1)/chunk, 1, func(lo, hi int) {
		sp := getF32(panel * c)
		defer f32Pool.Put(sp)
		s := *sp
		for r := lo * chunk; r < min(oc, hi*chunk); r += panel {
			n := min(panel, min(oc, hi*chunk)-r)
			q.dequantRows(s, r, n)
			var b []float32
			if bias != nil {
				b = bias[r : r+n]
			}
			GemmNT(T, n, c, in, c, s, c, b, out[r:], oc)
		}
	})
	return fmt.Sprintf("q%d-weight-only-gemm-%s", q.bits, f32KernelName()[4:])
}

// ---------------------------------------------------------------------------
// W8A8.

// w8prep computes (once per tensor) the panel-ordered scales, zero terms and the 128·Σw
// corrections the unsigned-activation VNNI trick needs.
func (q *qweight) w8prep() {
	q.w8once.Do(func() {
		np := (q.oc + w8Panel - 1) / w8Panel
		n := np * q.gpr * w8Panel
		q.w8npanels = np
		q.w8invs = make([]float32, n)
		q.w8corr = make([]int32, n)
		if q.hasZeros {
			q.w8zinv = make([]float32, n)
		}
		row := make([]byte, q.c)
		for r := 0; r < q.oc; r++ {
			q.signedRow(row, r)
			p, jr := r/w8Panel, r%w8Panel
			for j := 0; j < q.gpr; j++ {
				idx := (p*q.gpr+j)*w8Panel + jr
				iv := q.invs[r*q.gpr+j]
				q.w8invs[idx] = iv
				if q.hasZeros {
					q.w8zinv[idx] = q.zero(q.group(r, j)) * iv
				}
				var s int32
				for _, b := range row[j*q.g : (j+1)*q.g] {
					s += int32(int8(b))
				}
				q.w8corr[idx] = 128 * s
			}
		}
	})
}

// w8Panels returns q's panels packed for path l, packing them on first use.
func (q *qweight) w8Panels(l int) []byte {
	q.w8mu.Lock()
	defer q.w8mu.Unlock()
	if q.w8packed[l] == nil {
		size := q.c * w8Panel
		packed := make([]byte, q.w8npanels*size)
		par.For(q.w8npanels, 1, func(lo, hi int) {
			w := newW8Tiler(q, l)
			for p := lo; p < hi; p++ {
				w.bp = packed[p*size : (p+1)*size]
				w.pack(p)
			}
		})
		q.w8packed[l] = packed
	}
	return q.w8packed[l]
}

// w8acts are one call's activations quantized per token.
type w8acts struct {
	qa  []int8    // (T, C) codes
	u8  []byte    // (T, C) codes + 128 (VNNI path)
	i16 []int16   // (T, C) codes (AVX2 path)
	inv []float32 // (T) 1/scale_t: x ≈ qa·inv
	qs  []float32 // (T+w8MR, gpr) Σ_group qa (zero-point term), padded for the 6-row epilogue
}

// quantizeActs quantizes each token with absmax over the columns not in skip (skip[k] true: the
// code is 0): scale = 127/max|x|, q = round half to even (x·scale); an all-zero row gets scale 1.
func quantizeActs(in []float32, T, c, g int, skip []bool, l int, withQs bool) *w8acts {
	a := &w8acts{qa: make([]int8, T*c), inv: make([]float32, T)}
	switch l {
	case w8VNNI:
		a.u8 = make([]byte, T*c)
	case w8AVX2:
		a.i16 = make([]int16, T*c)
	}
	gpr := c / g
	if withQs {
		a.qs = make([]float32, (T+w8MR)*gpr)
	}
	parallelRows(T, 8, func(t int) {
		x := in[t*c : (t+1)*c]
		var sp *[]float32
		if skip != nil {
			// Skipped columns read as 0: they neither raise the max nor get a code but 0.
			sp = getScratch(c)
			xs := *sp
			for k, v := range x {
				if skip[k] {
					v = 0
				}
				xs[k] = v
			}
			x = xs
		}
		m := absmaxVec(x)
		scale := float32(1)
		if m > 0 {
			scale = 127 / m
		}
		a.inv[t] = 1 / scale
		qa := a.qa[t*c : (t+1)*c]
		var u []byte
		if a.u8 != nil {
			u = a.u8[t*c : (t+1)*c]
		}
		quantRowVec(qa, u, x, scale)
		if sp != nil {
			scratch.Put(sp)
		}
		if a.i16 != nil {
			w := a.i16[t*c : (t+1)*c]
			for k, v := range qa {
				w[k] = int16(v)
			}
		}
		if a.qs != nil {
			for j := 0; j < gpr; j++ {
				var s int32
				for _, v := range qa[j*g : (j+1)*g] {
					s += int32(v)
				}
				a.qs[t*gpr+j] = float32(s)
			}
		}
	})
	return a
}

// outlierColumns marks the input channels where some |in[t, k]| exceeds thr.
func outlierColumns(in []float32, T, c int, thr float32) (skip []bool, cols []int) {
	for t := 0; t < T; t++ {
		for k, v := range in[t*c : (t+1)*c] {
			if v > thr || v < -thr {
				if skip == nil {
					skip = make([]bool, c)
				}
				skip[k] = true
			}
		}
	}
	for k, s := range skip {
		if s {
			cols = append(cols, k)
		}
	}
	return skip, cols
}

// w8tiler holds one goroutine's scratch for the W8A8 tiles.
type w8tiler struct {
	q     *qweight
	l     int    // path: w8Go, w8AVX2, w8VNNI
	bp    []byte // the panel [c/4][w8Panel][4] (assembly paths) or row-major int8 rows (Go): a view of q.w8Panels
	dots  []int32
	facc  [w8MR * w8Panel]float32
	row   []byte
	rows  []byte // w8Panel unpacked 4-bit rows (assembly paths)
	mrMax int
}

// newW8Tiler returns a tiler for q on path l; its bp is one of q.w8Panels(l), set per panel.
func newW8Tiler(q *qweight, l int) *w8tiler {
	w := &w8tiler{q: q, l: l, dots: make([]int32, q.gpr*w8MR*w8Panel), row: make([]byte, q.c), mrMax: w8MR}
	if l == w8AVX2 {
		w.mrMax = 4
	}
	if l != w8Go && q.bits == 4 {
		w.rows = make([]byte, q.c*w8Panel)
	}
	return w
}

// w8Path is the W8A8 path used for q: the selected one if its alignment needs are met, else Go.
func w8Path(q *qweight) int {
	if w8ISA != w8Go && i8DotsArchOK(q.c, q.g) {
		return w8ISA
	}
	return w8Go
}

// pack loads panel p (rows p·w8Panel ..) as signed codes: row-major for Go, [c/4][w8Panel][4] for
// the assembly paths; rows past OC are zero.
func (w *w8tiler) pack(p int) {
	q, c := w.q, w.q.c
	if r0 := p * w8Panel; w.l != w8Go && r0+w8Panel <= q.oc && c%16 == 0 {
		src := w.rows
		if q.bits == 8 {
			src = q.t.Codes[r0*c : (r0+w8Panel)*c]
		} else {
			for j := 0; j < w8Panel; j++ {
				q.signedRow(src[j*c:(j+1)*c], r0+j)
			}
		}
		if packPanelArch(c, src, w.bp) {
			return
		}
	}
	for j := 0; j < w8Panel; j++ {
		r := p*w8Panel + j
		if r >= q.oc {
			if w.l == w8Go {
				clear(w.bp[j*c : (j+1)*c])
			} else {
				for k4 := 0; k4 < c/4; k4++ {
					binary.LittleEndian.PutUint32(w.bp[(k4*w8Panel+j)*4:], 0)
				}
			}
			continue
		}
		if w.l == w8Go {
			q.signedRow(w.bp[j*c:(j+1)*c], r)
			continue
		}
		src := w.row
		if q.bits == 8 {
			src = q.rowCodes(r)
		} else {
			q.signedRow(src, r)
		}
		for k4 := 0; k4 < c/4; k4++ {
			binary.LittleEndian.PutUint32(w.bp[(k4*w8Panel+j)*4:], binary.LittleEndian.Uint32(src[4*k4:]))
		}
	}
}

// tileDots computes the exact int32 dots of tokens [t0, t0+mr) × the packed panel p into w.dots
// ([gpr][w8MR][w8Panel]).
func (w *w8tiler) tileDots(a *w8acts, p, t0, mr int) {
	q, c := w.q, w.q.c
	if w.l == w8Go {
		i8DotsGo(mr, w8Panel, c, q.g, a.qa[t0*c:], bytesAsInt8(w.bp), w.dots)
		return
	}
	var a8 []byte
	var a16 []int16
	if a.u8 != nil {
		a8 = a.u8[t0*c:]
	} else {
		a16 = a.i16[t0*c:]
	}
	i8DotsArch(mr, c, q.gpr, q.g, a8, a16, w.bp, q.w8corr[p*q.gpr*w8Panel:], w.dots)
}

// bytesAsInt8 views two's-complement bytes as int8 (same size and layout).
func bytesAsInt8(b []byte) []int8 {
	if len(b) == 0 {
		return nil
	}
	return unsafe.Slice((*int8)(unsafe.Pointer(&b[0])), len(b))
}

// w8a8Linear computes out = in·deq(W)ᵀ + bias with per-token int8 activations and returns the
// kernel's name (count reports the outlier path separately).
func w8a8Linear(q *qweight, out, in, bias []float32, T int, thr float32, count func(string)) string {
	q.w8prep()
	c, oc, gpr := q.c, q.oc, q.gpr
	l := w8Path(q)
	var skip []bool
	var cols []int
	if thr > 0 {
		skip, cols = outlierColumns(in, T, c, thr)
	}
	a := quantizeActs(in, T, c, q.g, skip, l, q.hasZeros)
	size, panels := c*w8Panel, q.w8Panels(l)
	par.For(q.w8npanels, 1, func(lo, hi int) {
		w, _ := q.w8tilers.Get().(*w8tiler)
		if w == nil || w.l != l {
			w = newW8Tiler(q, l)
		}
		defer q.w8tilers.Put(w)
		for p := lo; p < hi; p++ {
			w.bp = panels[p*size : (p+1)*size]
			r0 := p * w8Panel
			n := min(w8Panel, oc-r0)
			pofs := p * gpr * w8Panel
			var zinv []float32
			if q.w8zinv != nil {
				zinv = q.w8zinv[pofs:]
			}
			for t0 := 0; t0 < T; t0 += w.mrMax {
				mr := min(w.mrMax, T-t0)
				var qs []float32
				if a.qs != nil {
					qs = a.qs[t0*gpr:]
				}
				w.tileDots(a, p, t0, mr)
				if l == w8Go {
					w8EpilogueGo(gpr, mr, w.dots, q.w8invs[pofs:], zinv, qs, gpr, w.facc[:])
				} else {
					w8EpilogueArch(gpr, mr, w.dots, q.w8invs[pofs:], zinv, qs, gpr, w.facc[:])
				}
				for t := 0; t < mr; t++ {
					inv := a.inv[t0+t]
					o := out[(t0+t)*oc+r0 : (t0+t)*oc+r0+n]
					f := w.facc[t*w8Panel : t*w8Panel+n]
					if bias != nil { // o = f·inv + bias, vectorized through Axpy
						copy(o, bias[r0:r0+n])
					} else {
						clear(o)
					}
					Axpy(inv, f, o)
				}
			}
		}
	})
	if len(cols) > 0 {
		outlierMatMul(q, out, in, T, cols)
		count("w8a8-outliers-f32")
	}
	return "w8a8-" + w8Names[l]
}

// outlierMatMul adds in[:, cols]·deq(W)[:, cols]ᵀ to out, in float32.
func outlierMatMul(q *qweight, out, in []float32, T int, cols []int) {
	c, oc, n := q.c, q.oc, len(cols)
	sort.Ints(cols)
	xo := make([]float32, T*n)
	for t := 0; t < T; t++ {
		for i, k := range cols {
			xo[t*n+i] = in[t*c+k]
		}
	}
	wo := make([]float32, oc*n)
	G := q.t.GroupSize
	for r := 0; r < oc; r++ {
		for i, k := range cols {
			e := r*c + k
			gi := e / G
			wo[r*n+i] = (float32(q.t.Code(e)) - q.zero(gi)) / q.t.Scales[gi]
		}
	}
	tmp := make([]float32, T*oc)
	MatMul(tmp, xo, wo, nil, T, n, oc)
	for i, v := range tmp {
		out[i] += v
	}
}

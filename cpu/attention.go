package cpu

import (
	"math"
	"sync"

	"github.com/gpuquant/gpuquant/internal/par"
	"github.com/gpuquant/gpuquant/model"
	"github.com/gpuquant/gpuquant/quantize"
)

// attnRows is how many query rows one attention work item takes: enough to make the score
// product a real GEMM, few enough that NH·T/attnRows items keep every core busy.
const attnRows = 64

// attnKC is the depth of one PV chunk in attentionPacked: attnKC·nr floats of a V panel (16 KiB
// for AVX-512) stay in L1 while every row group of the block uses them.
const attnKC = 128

var scratch = sync.Pool{New: func() any { return new([]float32) }}

func getScratch(n int) *[]float32 {
	p := scratch.Get().(*[]float32)
	if cap(*p) < n {
		*p = make([]float32, n)
	}
	*p = (*p)[:n]
	return p
}

// Attention: see model.Ops. Scores are q·kᵀ/√hd with a causal mask, softmax in float32 with the
// row maximum subtracted (as PyTorch does), then the weighted sum of values.
func (*Backend) Attention(out, qkv, kc, vc model.Buf, pos0, nHead int) {
	o, x, K, V := out.(*Buf), qkv.(*Buf), kc.(*Buf), vc.(*Buf)
	T, C := x.rows, o.cols
	hd := C / nHead
	S := pos0 + T // positions attended by the last row
	for t := range T {
		copy(K.Row(pos0+t), x.Row(t)[C:2*C])
		copy(V.Row(pos0+t), x.Row(t)[2*C:])
	}
	scale := float32(1 / math.Sqrt(float64(hd)))
	if T >= 16 && isa != isaGo && hd%kernelNR() == 0 && attnPacked {
		attentionPacked(o, x, K, V, pos0, nHead, scale)
		return
	}

	// For many rows, PV is a GEMM against Vᵀ (hd, S) per head; for a few (decoding) the
	// transpose would cost more than the product, so rows accumulate values directly.
	var vt [][]float32
	if T >= 16 {
		vt = make([][]float32, nHead)
		par.For(nHead, 1, func(lo, hi int) {
			for h := lo; h < hi; h++ {
				t := make([]float32, hd*S)
				for j := range S {
					for d, v := range V.Row(j)[h*hd : (h+1)*hd] {
						t[d*S+j] = v
					}
				}
				vt[h] = t
			}
		})
	}
	blocks := (T + attnRows - 1) / attnRows
	par.For(nHead*blocks, 1, func(lo, hi int) {
		for item := lo; item < hi; item++ {
			h, t0 := item/blocks, (item%blocks)*attnRows
			t1 := min(t0+attnRows, T)
			rows, span := t1-t0, pos0+t1
			sp := getScratch(rows * span)
			sc := *sp
			if vt != nil {
				GemmNT(rows, span, hd, x.Data[t0*3*C+h*hd:], 3*C, K.Data[h*hd:], C, nil, sc, span)
			} else {
				// Decoding: each row's scores only up to its causal limit, q held in registers.
				for r := range rows {
					q := x.Data[(t0+r)*3*C+h*hd : (t0+r)*3*C+(h+1)*hd]
					scoreRows(sc[r*span:r*span+pos0+t0+r+1], q, K.Data[h*hd:], C)
				}
			}
			// Unnormalized probabilities e^((s−max)·scale); each output row is divided by its
			// sum after the PV product (hd values instead of n).
			var inv [attnRows]float32
			for r := range rows {
				row := sc[r*span : (r+1)*span]
				n := pos0 + t0 + r + 1 // causal: positions 0..pos0+t
				inv[r] = 1 / expScaleSum(row[:n], row[:n], maxVec(row[:n]), scale)
				clear(row[n:])
			}
			dst := o.Data[t0*C+h*hd:]
			if vt != nil {
				GemmNT(rows, hd, span, sc, span, vt[h], S, nil, dst, C)
			} else {
				for r := range rows {
					accumRows(dst[r*C:r*C+hd], V.Data[h*hd:], C, sc[r*span:r*span+pos0+t0+r+1])
				}
			}
			for r := range rows {
				scaleVec(dst[r*C:r*C+hd], inv[r])
			}
			scratch.Put(sp)
		}
	})
}

// attnPacked enables attentionPacked (tests turn it off to compare with the GemmNT path).
var attnPacked = true

// attentionPacked is Attention for prefill on the assembly paths. Per head, K is packed once into
// the GEMM micro-kernel's k-major panels of nr positions and V (already k-major: row j holds the
// hd values of position j) into panels of nr value columns; then every group of gemmMR query rows
// computes scores only up to its own causal limit (rounded up to nr), and the PV product only
// over the positions that group attends. Nothing is computed in the masked upper triangle
// beyond that rounding, and no B matrix is packed per row block.
func attentionPacked(o, x, K, V *Buf, pos0, nHead int, scale float32) {
	T, C := x.rows, o.cols
	hd, nr := C/nHead, kernelNR()
	S := pos0 + T
	Sp := (S + nr - 1) / nr * nr
	kSize, vSize := Sp*hd, S*hd
	bufp := getScratch(nHead * (kSize + vSize))
	defer scratch.Put(bufp)
	buf := *bufp
	panels := func(h int) (kp, vp []float32) {
		return buf[h*(kSize+vSize) : h*(kSize+vSize)+kSize], buf[h*(kSize+vSize)+kSize : (h+1)*(kSize+vSize)]
	}
	par.For(nHead, 1, func(lo, hi int) {
		for h := lo; h < hi; h++ {
			kp, vp := panels(h)
			packHead(kp, vp, K, V, h*hd, hd, nr, S)
		}
	})
	blocks := (T + attnRows - 1) / attnRows
	par.For(nHead*blocks, 1, func(lo, hi int) {
		for item := lo; item < hi; item++ {
			h, t0 := item/blocks, (item%blocks)*attnRows
			kp, vp := panels(h)
			attendRows(o, x, kp, vp, h*hd, hd, t0, min(t0+attnRows, T), pos0, scale)
		}
	})
}

// packHead packs the keys and values of the head whose columns start at c0 (positions 0..S):
// K into k-major panels of nr positions (zero past S), V into panels of nr value columns.
func packHead(kp, vp []float32, K, V *Buf, c0, hd, nr, S int) {
	C := K.cols
	for p := 0; p < len(kp)/(hd*nr); p++ {
		dst := kp[p*hd*nr : (p+1)*hd*nr]
		for jj := range nr {
			j := p*nr + jj
			if j >= S {
				for k := range hd {
					dst[k*nr+jj] = 0
				}
				continue
			}
			for k, v := range K.Data[j*C+c0 : j*C+c0+hd] {
				dst[k*nr+jj] = v
			}
		}
	}
	for p := 0; p < hd/nr; p++ {
		dst := vp[p*S*nr : (p+1)*S*nr]
		for j := range S {
			copy(dst[j*nr:(j+1)*nr], V.Data[j*C+c0+p*nr:j*C+c0+(p+1)*nr])
		}
	}
}

// attendRows computes the output rows t0..t1 of the head whose columns start at c0 from its
// packed keys kp and values vp (packHead).
func attendRows(o, x *Buf, kp, vp []float32, c0, hd, t0, t1, pos0 int, scale float32) {
	C, nr := o.cols, kernelNR()
	S := len(vp) / hd
	rows := t1 - t0
	ld := (pos0 + t1 + nr - 1) / nr * nr
	sp := getScratch(rows * ld)
	defer scratch.Put(sp)
	sc := *sp
	var ap [gemmMR]*float32
	// Scores, panel by panel so each packed K panel is reused by all row groups from L1; a group
	// stops at the first panel past its causal limit.
	for p := 0; p*nr < pos0+t1; p++ {
		for i0 := 0; i0 < rows; i0 += gemmMR {
			mr := min(gemmMR, rows-i0)
			if p*nr >= pos0+t0+i0+mr {
				continue
			}
			for r := range gemmMR {
				ap[r] = &x.Data[(t0+i0+r%mr)*3*C+c0]
			}
			microKernel(hd, &ap, &kp[p*hd*nr], &sc[i0*ld+p*nr], ld, mr, 0)
		}
	}
	// Unnormalized probabilities e^((s−max)·scale), zero up to the group's limit; the output rows
	// are divided by their sums after the PV product (hd values, not n).
	var inv [attnRows]float32
	for r := range rows {
		lim := pos0 + t0 + min(r/gemmMR*gemmMR+gemmMR, rows)
		row := sc[r*ld : r*ld+lim]
		n := pos0 + t0 + r + 1 // causal: positions 0..pos0+t
		inv[r] = 1 / expScaleSum(row[:n], row[:n], maxVec(row[:n]), scale)
		clear(row[n:])
	}
	// PV in depth chunks of attnKC positions (one chunk of a V panel stays in L1 across the row
	// groups), each group only over the positions it attends.
	for p := 0; p < hd/nr; p++ {
		for k0 := 0; k0 < pos0+t1; k0 += attnKC {
			for i0 := 0; i0 < rows; i0 += gemmMR {
				mr := min(gemmMR, rows-i0)
				lim := pos0 + t0 + i0 + mr
				if k0 >= lim {
					continue
				}
				for r := range gemmMR {
					ap[r] = &sc[(i0+r%mr)*ld+k0]
				}
				acc := 0
				if k0 > 0 {
					acc = 1
				}
				microKernel(min(attnKC, lim-k0), &ap, &vp[(p*S+k0)*nr], &o.Data[(t0+i0)*C+c0+p*nr], C, mr, acc)
			}
		}
	}
	for r := range rows {
		scaleVec(o.Data[(t0+r)*C+c0:(t0+r)*C+c0+hd], inv[r])
	}
}

var _ quantize.Backend = (*Backend)(nil)

package cpu

import (
	"math"
	"sync"

	"github.com/gpuquant/gpuquant/model"
)

// attnRows is how many query rows one attention work item takes: enough to make the score
// product a real GEMM, few enough that NH·T/attnRows items keep every core busy.
const attnRows = 64

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

	// For many rows, PV is a GEMM against Vᵀ (hd, S) per head; for a few (decoding) the
	// transpose would cost more than the product, so rows accumulate values directly.
	var vt [][]float32
	if T >= 16 {
		vt = make([][]float32, nHead)
		parallelFor(nHead, 1, func(lo, hi int) {
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
	parallelFor(nHead*blocks, 1, func(lo, hi int) {
		for item := lo; item < hi; item++ {
			h, t0 := item/blocks, (item%blocks)*attnRows
			t1 := min(t0+attnRows, T)
			rows, span := t1-t0, pos0+t1
			sp := getScratch(rows * span)
			sc := *sp
			GemmNT(rows, span, hd, x.Data[t0*3*C+h*hd:], 3*C, K.Data[h*hd:], C, nil, sc, span)
			for r := range rows {
				row := sc[r*span : (r+1)*span]
				n := pos0 + t0 + r + 1 // causal: positions 0..pos0+t
				softmaxScaled(row[:n], scale)
				clear(row[n:])
			}
			dst := o.Data[t0*C+h*hd:]
			if vt != nil {
				GemmNT(rows, hd, span, sc, span, vt[h], S, nil, dst, C)
			} else {
				for r := range rows {
					acc := dst[r*C : r*C+hd]
					clear(acc)
					for j, p := range sc[r*span : r*span+pos0+t0+r+1] {
						Axpy(p, V.Data[j*C+h*hd:j*C+(h+1)*hd], acc)
					}
				}
			}
			scratch.Put(sp)
		}
	})
}

// softmaxScaled replaces row with softmax(row·scale).
func softmaxScaled(row []float32, scale float32) {
	m := row[0]
	for _, v := range row {
		m = max(m, v)
	}
	var sum float32
	for i, v := range row {
		e := expf((v - m) * scale)
		row[i] = e
		sum += e
	}
	inv := 1 / sum
	for i := range row {
		row[i] *= inv
	}
}

var _ model.Ops = (*Backend)(nil)

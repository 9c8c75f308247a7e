package quantize

import (
	"fmt"
	"sync"

	"github.com/gpuquant/gpuquant/internal/par"
)

// Histogram counts values in equal-width bins over [Lo, Hi). Values below Lo are counted in
// Below, values at or above Hi (and NaN) in Above. Add and AddDequantized are not safe to call
// concurrently on one Histogram; fill one per goroutine and Merge them (they do this themselves
// for large inputs).
type Histogram struct {
	Lo, Hi       float64
	Counts       []int64
	Below, Above int64
}

// NewHistogram returns an empty histogram of bins bins over [lo, hi).
func NewHistogram(lo, hi float64, bins int) *Histogram {
	if bins <= 0 || !(hi > lo) {
		panic(fmt.Sprintf("quantize: NewHistogram(%g, %g, %d): want lo < hi and bins > 0", lo, hi, bins))
	}
	return &Histogram{Lo: lo, Hi: hi, Counts: make([]int64, bins)}
}

// Total is the number of values added, in range or not.
func (h *Histogram) Total() int64 {
	n := h.Below + h.Above
	for _, c := range h.Counts {
		n += c
	}
	return n
}

// Merge adds o's counts into h; both must have the same range and bins.
func (h *Histogram) Merge(o *Histogram) error {
	if h.Lo != o.Lo || h.Hi != o.Hi || len(h.Counts) != len(o.Counts) {
		return fmt.Errorf("quantize: merge histogram [%g, %g)×%d into [%g, %g)×%d", o.Lo, o.Hi, len(o.Counts), h.Lo, h.Hi, len(h.Counts))
	}
	for i, c := range o.Counts {
		h.Counts[i] += c
	}
	h.Below += o.Below
	h.Above += o.Above
	return nil
}

func (h *Histogram) empty() *Histogram {
	return &Histogram{Lo: h.Lo, Hi: h.Hi, Counts: make([]int64, len(h.Counts))}
}

// add bins values in one pass.
func (h *Histogram) add(values []float32) {
	bins := len(h.Counts)
	k := float64(bins) / (h.Hi - h.Lo)
	for _, v := range values {
		x := float64(v)
		switch {
		case x < h.Lo:
			h.Below++
		case x >= h.Hi || x != x:
			h.Above++
		default:
			i := int((x - h.Lo) * k)
			if i >= bins { // rounding just below Hi
				i = bins - 1
			}
			h.Counts[i]++
		}
	}
}

// Add bins values, in parallel pieces merged at the end when there are many.
func (h *Histogram) Add(values []float32) {
	h.parallelAdd(len(values), func(part *Histogram, lo, hi int) { part.add(values[lo:hi]) })
}

// AddDequantized bins the dequantized values of t, a chunk at a time, without expanding the
// whole tensor.
func (h *Histogram) AddDequantized(t *Tensor) {
	h.parallelAdd(t.Len(), func(part *Histogram, lo, hi int) {
		buf := make([]float32, hi-lo)
		t.dequantizeRange(buf, lo)
		part.add(buf)
	})
}

func (h *Histogram) parallelAdd(n int, fn func(part *Histogram, lo, hi int)) {
	if n <= chunk {
		fn(h, 0, n)
		return
	}
	var mu sync.Mutex
	par.Pieces(n, chunk, func(lo, hi int) {
		part := h.empty()
		fn(part, lo, hi)
		mu.Lock()
		h.Merge(part)
		mu.Unlock()
	})
}

package quantize

import (
	"fmt"
	"math"
	"sync"

	"github.com/gpuquant/gpuquant/internal/par"
	"github.com/gpuquant/gpuquant/model"
)

// Stats measures how far a quantized tensor is from the original.
type Stats struct {
	Name      string
	N         int64   // values
	MSE       float64 // mean squared error of the dequantized values
	SQNRdB    float64 // 10·log10(Σx² / Σ(x − x̂)²); +Inf when the error is zero
	MaxAbsErr float64
	// RangeUsed is the share of the 2^bits code range actually used: (max code − min code + 1)/2^bits.
	RangeUsed float64
	// Outliers counts the original values with |x − mean| > 6σ.
	Outliers int64

	signal, noise float64 // Σx², Σ(x − x̂)²: Total combines these exactly
}

// acc accumulates one piece of a comparison.
type acc struct {
	n                       int64
	sum, sumSq, errSq, maxE float64
	minQ, maxQ              int
}

func newAcc() acc { return acc{minQ: math.MaxInt, maxQ: math.MinInt} }

func (a *acc) merge(b acc) {
	a.n += b.n
	a.sum += b.sum
	a.sumSq += b.sumSq
	a.errSq += b.errSq
	a.maxE = max(a.maxE, b.maxE)
	a.minQ, a.maxQ = min(a.minQ, b.minQ), max(a.maxQ, b.maxQ)
}

// Compare measures q against orig, which must have the same shape. The sums are float64 and take
// one pass over both tensors (dequantized a chunk at a time, never whole); the 6σ outliers need
// the mean and σ first, so they take a second, read-only pass over orig.
func Compare(name string, orig *model.F32, q *Tensor) Stats {
	n := len(orig.Data)
	if n != q.Len() {
		panic(fmt.Sprintf("quantize: Compare %s: %d original values, %d quantized", name, n, q.Len()))
	}
	var mu sync.Mutex
	total := newAcc()
	par.Pieces(n, chunk, func(lo, hi int) {
		a := newAcc()
		buf := make([]float32, hi-lo)
		q.dequantizeRange(buf, lo)
		for i, x := range orig.Data[lo:hi] {
			xf := float64(x)
			e := xf - float64(buf[i])
			a.sum += xf
			a.sumSq += xf * xf
			a.errSq += e * e
			a.maxE = max(a.maxE, math.Abs(e))
		}
		a.n = int64(hi - lo)
		for i := lo; i < hi; i++ {
			c := int(q.Code(i))
			a.minQ, a.maxQ = min(a.minQ, c), max(a.maxQ, c)
		}
		mu.Lock()
		total.merge(a)
		mu.Unlock()
	})
	s := Stats{Name: name, N: total.n, MaxAbsErr: total.maxE, signal: total.sumSq, noise: total.errSq}
	if n == 0 {
		return s
	}
	s.MSE = total.errSq / float64(n)
	s.SQNRdB = sqnr(total.sumSq, total.errSq)
	s.RangeUsed = float64(total.maxQ-total.minQ+1) / float64(int(1)<<q.Bits)
	mean := total.sum / float64(n)
	sigma := math.Sqrt(max(total.sumSq/float64(n)-mean*mean, 0))
	var outliers int64
	par.Pieces(n, chunk, func(lo, hi int) {
		var c int64
		for _, x := range orig.Data[lo:hi] {
			if math.Abs(float64(x)-mean) > 6*sigma {
				c++
			}
		}
		mu.Lock()
		outliers += c
		mu.Unlock()
	})
	s.Outliers = outliers
	return s
}

func sqnr(signal, noise float64) float64 {
	if noise == 0 {
		return math.Inf(1)
	}
	return 10 * math.Log10(signal/noise)
}

// Total combines per-tensor statistics, weighting each by its number of values: MSE and
// RangeUsed are value-weighted means, SQNR is total signal over total noise, MaxAbsErr the
// largest, Outliers the sum.
func Total(ss []Stats) Stats {
	t := Stats{Name: "total"}
	var rangeSum float64
	for _, s := range ss {
		signal, noise := s.signal, s.noise
		if signal == 0 && noise == 0 && s.N > 0 { // built by hand: recover the sums
			noise = s.MSE * float64(s.N)
			if !math.IsInf(s.SQNRdB, 0) {
				signal = noise * math.Pow(10, s.SQNRdB/10)
			}
		}
		t.N += s.N
		t.signal += signal
		t.noise += noise
		t.MaxAbsErr = max(t.MaxAbsErr, s.MaxAbsErr)
		t.Outliers += s.Outliers
		rangeSum += s.RangeUsed * float64(s.N)
	}
	if t.N > 0 {
		t.MSE = t.noise / float64(t.N)
		t.SQNRdB = sqnr(t.signal, t.noise)
		t.RangeUsed = rangeSum / float64(t.N)
	}
	return t
}

// CompareWeights compares every quantized parameter of q with the same parameter of orig, in
// checkpoint order.
func CompareWeights(orig, q *model.Weights) ([]Stats, error) {
	op, qp := orig.Params(), q.Params()
	if len(op) != len(qp) {
		return nil, fmt.Errorf("quantize: %d parameters in the original, %d in the quantized model", len(op), len(qp))
	}
	var ss []Stats
	for i, p := range qp {
		qt, ok := (*p.T).(*Tensor)
		if !ok {
			continue
		}
		ot, ok := (*op[i].T).(*model.F32)
		if !ok || op[i].Name != p.Name || len(ot.Data) != qt.Len() {
			return nil, fmt.Errorf("quantize: %s: the original is not a float32 tensor of the same shape", p.Name)
		}
		ss = append(ss, Compare(p.Name, ot, qt))
	}
	return ss, nil
}

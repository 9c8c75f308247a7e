// Package cpu is gpuquant's pure-Go backend: it implements model.Ops with goroutine-parallel
// kernels (amd64 assembly for the hot loops, with pure-Go fallbacks) and never uses cgo.
package cpu

import (
	"errors"
	"fmt"
	"math"
	"sync"

	"github.com/gpuquant/gpuquant/internal/par"
	"github.com/gpuquant/gpuquant/model"
	"github.com/gpuquant/gpuquant/quantize"
)

// Backend runs GPT-2 on the host's cores. Quantized weights run the kernels of qlinear.go, chosen
// by its Options (see NewWith).
type Backend struct {
	opts    Options
	used    sync.Map // kernel name → *atomic.Int64 (KernelsUsed)
	weights sync.Map // *quantize.Tensor → *qweight (per-tensor kernel constants)
}

// New returns the CPU backend with the default options (weight-only quantized kernels).
func New() *Backend { return &Backend{opts: Options{Kernel: quantize.KernelAuto}} }

// Buf is a row-major (rows, cols) float32 matrix.
type Buf struct {
	rows, cols int
	Data       []float32
}

func (b *Buf) Rows() int { return b.rows }
func (b *Buf) Cols() int { return b.cols }

// Row returns row r.
func (b *Buf) Row(r int) []float32 { return b.Data[r*b.cols : (r+1)*b.cols] }

func (*Backend) Name() string { return "cpu" }

// Upload makes w runnable here, stored as spec says: quantized in memory (quantize.QuantizeWeights)
// when spec.Quant is set, else as it is. Host tensors need no copy. LayerNorm gains and biases
// quantized by scope "all" are expanded back to float32 (quantize.RunsFloat).
func (be *Backend) Upload(w *model.Weights, spec quantize.Spec) (*model.Weights, error) {
	if err := spec.Validate(); err != nil {
		return nil, err
	}
	if spec.Half {
		return nil, errors.New("cpu: fp16 weights (--scheme fp16) run only on a GPU (--device cuda:N): the CPU backend computes in float32")
	}
	if spec.Quant != nil {
		q, err := quantize.QuantizeWeights(w, *spec.Quant)
		if err != nil {
			return nil, err
		}
		w = q
	}
	copied := spec.Quant != nil // QuantizeWeights returned a copy of its own
	for i, p := range w.Params() {
		if q, ok := (*p.T).(*quantize.Tensor); ok && quantize.RunsFloat(p.Kind) {
			if !copied {
				w, copied = w.Copy(), true
			}
			*w.Params()[i].T = q.Dequantize()
		}
	}
	for _, p := range w.Params() {
		if err := be.supported(*p.T, p.Kind); err != nil {
			return nil, fmt.Errorf("cpu: %s: %w", p.Name, err)
		}
	}
	return w, nil
}

// HostWeights returns w: the CPU runs host weights.
func (*Backend) HostWeights(w, _ *model.Weights) (*model.Weights, error) { return w, nil }

// Close does nothing: the CPU backend holds no device.
func (*Backend) Close() error { return nil }

func (be *Backend) supported(t model.Tensor, k model.Kind) error {
	if _, ok := t.(*model.F32); ok {
		return nil
	}
	if _, ok := t.(model.RowReader); !ok && k == model.KindEmbedding {
		return fmt.Errorf("embedding format %T cannot be read by rows", t)
	}
	if k != model.KindEmbedding {
		if _, err := be.linearKernel(t); err != nil {
			return err
		}
	}
	return nil
}

func (*Backend) NewBuf(rows, cols int) model.Buf {
	return &Buf{rows: rows, cols: cols, Data: make([]float32, rows*cols)}
}

func (*Backend) Slice(b model.Buf, r0, r1 int) model.Buf {
	x := b.(*Buf)
	return &Buf{rows: r1 - r0, cols: x.cols, Data: x.Data[r0*x.cols : r1*x.cols]}
}

func (*Backend) Embed(out model.Buf, tokens []int32, pos0 int, wte, wpe model.Tensor) {
	o := out.(*Buf)
	te, pe := wte.(model.RowReader), wpe.(model.RowReader)
	pos := make([]float32, o.cols)
	for t, id := range tokens {
		row := o.Row(t)
		te.ReadRow(row, int(id))
		pe.ReadRow(pos, pos0+t)
		for i, p := range pos {
			row[i] += p
		}
	}
}

func (*Backend) LayerNorm(out, in model.Buf, w, b model.Tensor, eps float32) {
	o, x := out.(*Buf), in.(*Buf)
	g, bias := w.(*model.F32).Data, b.(*model.F32).Data
	parallelRows(x.rows, 16, func(t int) { layerNormVec(o.Row(t), x.Row(t), g, bias, eps) })
}

func (be *Backend) Linear(out, in model.Buf, w, b model.Tensor) {
	o, x := out.(*Buf), in.(*Buf)
	var bias []float32
	if b != nil {
		bias = b.(*model.F32).Data
	}
	k, _ := be.linearKernel(w) // Upload checked every weight
	k(o.Data, x.Data, bias, x.rows)
}

// linearKernel returns out(T, OC) = in(T, C)·wᵀ + bias for a weight format: float32, or
// quantized codes (*quantize.Tensor, weight-only or W8A8 per the backend's options).
func (be *Backend) linearKernel(w model.Tensor) (func(out, in, bias []float32, T int), error) {
	switch w := w.(type) {
	case *model.F32:
		oc, c := w.Dims[0], w.Dims[1]
		return func(out, in, bias []float32, T int) {
			be.count(f32KernelName())
			MatMul(out, in, w.Data, bias, T, c, oc)
		}, nil
	case *quantize.Tensor:
		return be.quantLinear(w)
	}
	return nil, fmt.Errorf("no CPU matmul for weight format %T", w)
}

// LinearGELU is Linear, then GELU.
func (be *Backend) LinearGELU(out, in model.Buf, w, b model.Tensor) {
	be.Linear(out, in, w, b)
	be.GELU(out)
}

// GELU is GPT-2's gelu_new in place: 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))).
func (*Backend) GELU(x model.Buf) {
	b := x.(*Buf)
	parallelRows(b.rows, 4, func(t int) { geluVec(b.Row(t)) })
}

// AddLayerNorm is Add, then LayerNorm: the same arithmetic the GPU does in one pass.
func (be *Backend) AddLayerNorm(out, x, y model.Buf, w, b model.Tensor, eps float32) {
	be.Add(x, y)
	be.LayerNorm(out, x, w, b, eps)
}

func (*Backend) Add(x, y model.Buf) {
	a, b := x.(*Buf), y.(*Buf)
	const chunk = 1 << 14
	n := len(a.Data)
	par.For((n+chunk-1)/chunk, 4, func(lo, hi int) {
		addVec(a.Data[lo*chunk:min(hi*chunk, n)], b.Data[lo*chunk:min(hi*chunk, n)])
	})
}

func (*Backend) NLL(dst []float64, logits model.Buf, targets []int32) {
	l := logits.(*Buf)
	parallelRows(l.rows, 1, func(t int) {
		row := l.Row(t)
		m := maxVec(row)
		var buf [512]float32
		var sum float64
		for lo := 0; lo < len(row); lo += len(buf) {
			e := buf[:min(len(buf), len(row)-lo)]
			expScaleSum(e, row[lo:lo+len(e)], m, 1)
			var s0, s1, s2, s3 float64
			i := 0
			for ; i+4 <= len(e); i += 4 {
				s0 += float64(e[i])
				s1 += float64(e[i+1])
				s2 += float64(e[i+2])
				s3 += float64(e[i+3])
			}
			for ; i < len(e); i++ {
				s0 += float64(e[i])
			}
			sum += (s0 + s1) + (s2 + s3)
		}
		dst[t] = float64(m) + math.Log(sum) - float64(row[targets[t]])
	})
}

func (*Backend) Read(dst []float32, b model.Buf) { copy(dst, b.(*Buf).Data) }

// Free does nothing: buffers are Go memory.
func (*Backend) Free(model.Buf) {}

// Err is always nil: the CPU ops cannot fail once Upload has accepted the weights.
func (*Backend) Err() error { return nil }

// parallelRows runs fn for every row in [0, n) on all cores, in chunks of at least grain rows
// (par.For over rows).
func parallelRows(n, grain int, fn func(r int)) {
	par.For(n, grain, func(lo, hi int) {
		for r := lo; r < hi; r++ {
			fn(r)
		}
	})
}

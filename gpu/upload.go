package gpu

import (
	"errors"
	"fmt"

	"github.com/gpuquant/gpuquant/kernels"
	"github.com/gpuquant/gpuquant/model"
	"github.com/gpuquant/gpuquant/quantize"
)

// Upload makes w resident on the device, stored as spec says (quantize.Backend): host float32
// tensors as float32, or as IEEE half matrices (spec.Half: our fp16 baseline; activations,
// LayerNorm and the residual stream stay float32), or quantized on the device by our kernels
// (spec.Quant; bit-identical to quantize.QuantizeWeights), one tensor at a time, so that the
// device holds the quantized model plus one float tensor at most; host quantized tensors as
// their codes, scales and zero-points. w may also be float32 device weights from an earlier
// Upload: they are quantized where they are, without a second copy, and the result shares w's
// tensors outside the scope (free both with Close, not one by one). LayerNorm gains and biases
// quantized by scope "all" run as float32 (quantize.RunsFloat). A model that does not fit in the
// device's free memory is refused before any allocation.
func (b *Backend) Upload(w *model.Weights, spec quantize.Spec) (*model.Weights, error) {
	if err := spec.Validate(); err != nil {
		return nil, err
	}
	var need, transient int64
	for _, p := range w.Params() {
		keep, tmp, err := placeBytes(p, spec)
		if err != nil {
			return nil, fmt.Errorf("gpu: %s: %w", p.Name, err)
		}
		need, transient = need+keep, max(transient, tmp)
	}
	what := "the model's weights"
	if spec.Quant != nil {
		what = "the quantized weights (and one float tensor while quantizing)"
	}
	if err := b.fits(need+transient, what); err != nil {
		return nil, err
	}
	out := w.Copy()
	dst := out.Params()
	var made []*Tensor
	for i, p := range w.Params() {
		t, err := b.place(p, spec)
		if err != nil {
			for _, m := range made {
				m.Free(b.d)
			}
			return nil, fmt.Errorf("gpu: upload %s: %w", p.Name, err)
		}
		if t != *p.T {
			made = append(made, t)
		}
		*dst[i].T = t
	}
	b.reserve(w.Config)
	if b.err != nil {
		for _, m := range made {
			m.Free(b.d)
		}
		return nil, b.err
	}
	return out, nil
}

// quantizes reports whether spec quantizes parameter p.
func quantizes(spec quantize.Spec, p model.Param) bool {
	return spec.Quant != nil && quantize.InScope(spec.Quant.Scope, p.Kind, (*p.T).Shape())
}

// placeBytes is the device memory parameter p takes once placed as spec says (0 when it stays
// where it is) and the most it holds on the way (a float copy while quantizing).
func placeBytes(p model.Param, spec quantize.Spec) (keep, transient int64, err error) {
	n := int64(model.NumElements((*p.T).Shape()))
	switch t := (*p.T).(type) {
	case *Tensor:
		switch {
		case t.Bits != 32 || !quantizes(spec, p):
			if spec.Quant == nil || t.Bits != 32 {
				return 0, 0, errors.New("already on a device")
			}
			return 0, 0, nil // shared with w
		case quantize.RunsFloat(p.Kind):
			return 4 * n, quantizedBytes(t.Dims, *spec.Quant), nil
		}
		return quantizedBytes(t.Dims, *spec.Quant), 0, nil
	case *model.F32:
		switch {
		case quantizes(spec, p) && quantize.RunsFloat(p.Kind):
			return 4 * n, 4*n + quantizedBytes(t.Dims, *spec.Quant), nil
		case quantizes(spec, p):
			return quantizedBytes(t.Dims, *spec.Quant), 4 * n, nil
		}
		return n * int64(elemBytes(t.Dims, spec.Half)), 0, nil
	case *quantize.Tensor:
		switch {
		case !spec.Float():
			return 0, 0, quantize.ErrAlreadyQuantized
		case quantize.RunsFloat(p.Kind):
			return 4 * n, 0, nil
		}
		return t.Bytes(), 0, nil
	}
	return 0, 0, fmt.Errorf("no device format for %T", *p.T)
}

// place puts parameter p on the device as spec says (placeBytes accepted it): a new tensor, or
// p's own when it stays as it is.
func (b *Backend) place(p model.Param, spec quantize.Spec) (*Tensor, error) {
	switch t := (*p.T).(type) {
	case *Tensor:
		if !quantizes(spec, p) {
			return t, nil
		}
		return b.quantizeTensor(p, t, *spec.Quant)
	case *model.F32:
		if !quantizes(spec, p) {
			return b.uploadF32(t, spec.Half)
		}
		f, err := Upload(b.d, t)
		if err != nil {
			return nil, err
		}
		defer f.Free(b.d)
		return b.quantizeTensor(p, f, *spec.Quant)
	case *quantize.Tensor:
		if quantize.RunsFloat(p.Kind) {
			return Upload(b.d, t.Dequantize())
		}
		return b.uploadQuantized(t)
	}
	return nil, fmt.Errorf("no device format for %T", *p.T)
}

func elemBytes(dims []int, half bool) int {
	if half && len(dims) == 2 {
		return 2
	}
	return 4
}

// uploadF32 copies a host float32 tensor, as half when half and it is a matrix.
func (b *Backend) uploadF32(t *model.F32, half bool) (*Tensor, error) {
	if elemBytes(t.Dims, half) == 4 {
		return Upload(b.d, t)
	}
	p, err := b.uploadBytes(model.HalfBytes(t.Data))
	if err != nil {
		return nil, err
	}
	return &Tensor{Dims: append([]int(nil), t.Dims...), Bits: 16, Data: p}, nil
}

// uploadQuantized copies a host quantized tensor's codes, scales and zero-points.
func (b *Backend) uploadQuantized(t *quantize.Tensor) (*Tensor, error) {
	q := &Tensor{Dims: append([]int(nil), t.Dims...), Bits: t.Bits, Scheme: t.Scheme, GroupSize: t.GroupSize}
	var err error
	if q.Codes, err = b.uploadBytes(t.Codes); err == nil {
		if q.Scales, err = b.uploadBytes(model.F32Bytes(t.Scales)); err == nil && t.Zeros != nil {
			q.Zeros, err = b.uploadBytes(model.F32Bytes(t.Zeros))
		}
	}
	if err != nil {
		q.Free(b.d)
		return nil, err
	}
	return q, nil
}

func (b *Backend) uploadBytes(data []byte) (kernels.Ptr, error) {
	p, err := alloc(b.d, len(data))
	if err != nil {
		return 0, err
	}
	if err := b.d.CopyToDevice(p, data); err != nil {
		b.d.Free(p)
		return 0, err
	}
	return p, nil
}

// fits refuses an allocation of need bytes that the device's free memory cannot hold with room
// for activations to spare (a tenth of the device, at least 256 MiB), before any of it is made.
func (b *Backend) fits(need int64, what string) error {
	if b.hooks.MemInfo == nil {
		return nil
	}
	free, total, err := b.hooks.MemInfo()
	if err != nil {
		return fmt.Errorf("gpu: %s: memory info: %w", b.name, err)
	}
	if b.hooks.PoolStats != nil {
		_, _, cached := b.hooks.PoolStats()
		free += cached
	}
	spare := max(total/10, 256<<20)
	if need+spare > free {
		return fmt.Errorf("gpu: %s need %s of device memory, but %s has %s free of %s (and %s is kept for activations): use a quantized scheme (--scheme absmax), a smaller model, or --device cpu",
			what, model.HumanBytes(need), b.name, model.HumanBytes(free), model.HumanBytes(total), model.HumanBytes(spare))
	}
	return nil
}

// reserve allocates the scratch a one-token step needs, so that recording a step never allocates.
func (b *Backend) reserve(c model.Config) {
	b.ensure("qa", 4*c.NEmbd)
	b.ensure("inv", 4)
	b.ensure("qsum", 4*c.NEmbd/8)
}

// quantizedBytes is the device memory of a tensor of shape dims quantized with opt.
func quantizedBytes(dims []int, opt quantize.Options) int64 {
	n := model.NumElements(dims)
	gs, err := opt.Granularity.GroupSize("", dims)
	if err != nil || gs <= 0 {
		return int64(n) // an error Quantize will report
	}
	g := int64(n / gs)
	if opt.Scheme == quantize.ZeroPoint {
		g *= 2
	}
	return int64(kernels.CodeBytes(n, opt.Bits)) + 4*g
}

// quantizeTensor quantizes one parameter; norms and biases come back dequantized to float32.
func (b *Backend) quantizeTensor(p model.Param, t *Tensor, opt quantize.Options) (*Tensor, error) {
	q, err := Quantize(b.d, p.Name, t, opt)
	if err != nil || !quantize.RunsFloat(p.Kind) {
		return q, err
	}
	defer q.Free(b.d)
	return b.dequantize(p.Name, q)
}

// dequantize expands a quantized device tensor into a new float32 one (q is left as it is).
func (b *Backend) dequantize(name string, q *Tensor) (*Tensor, error) {
	n := model.NumElements(q.Dims)
	f := &Tensor{Dims: q.Dims, Bits: 32}
	var err error
	if f.Data, err = alloc(b.d, 4*n); err == nil {
		err = kernels.Dequantize(b.d, f.Data, q.Codes, q.Scales, q.Zeros, n, q.GroupSize, q.Bits)
	}
	if err != nil {
		f.Free(b.d)
		return nil, fmt.Errorf("gpu: dequantize %s: %w", name, err)
	}
	return f, nil
}

// HostWeights returns host weights to compare with src and draw histograms from: the quantized
// device tensors of w downloaded as quantize.Tensor, float32 norms and biases downloaded (they
// differ from src under scope "all"), and src's own tensors for the float matrices w holds
// unchanged.
func (b *Backend) HostWeights(w, src *model.Weights) (*model.Weights, error) {
	out := src.Copy()
	dst := out.Params()
	for i, p := range w.Params() {
		t, ok := (*p.T).(*Tensor)
		if !ok {
			return nil, fmt.Errorf("gpu: %s is not a device tensor", p.Name)
		}
		switch {
		case t.Bits == 8 || t.Bits == 4:
			q, err := t.Download(b.d)
			if err != nil {
				return nil, err
			}
			*dst[i].T = q
		case t.Bits == 32 && quantize.RunsFloat(p.Kind):
			f, err := t.DownloadF32(b.d)
			if err != nil {
				return nil, err
			}
			*dst[i].T = f
		}
	}
	return out, nil
}

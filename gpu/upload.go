package gpu

import (
	"encoding/binary"
	"fmt"
	"runtime"
	"sync"

	"github.com/gpuquant/gpuquant/kernels"
	"github.com/gpuquant/gpuquant/model"
	"github.com/gpuquant/gpuquant/quantize"
)

// Upload copies host weights to the device: float32 tensors as float32, quantized ones as their
// codes, scales and zero-points. LayerNorm gains and biases quantized by scope "all" (the
// tutorial's, which only measures their error) are expanded to float32 first, as the CPU backend
// does. A model that does not fit in the device's free memory is refused before any allocation.
func (b *Backend) Upload(w *model.Weights) (*model.Weights, error) { return b.upload(w, false) }

// UploadHalf is Upload with every float32 matrix (embeddings, projections, head) stored as IEEE
// half: our fp16 baseline (activations, LayerNorm and the residual stream stay float32).
func (b *Backend) UploadHalf(w *model.Weights) (*model.Weights, error) { return b.upload(w, true) }

func (b *Backend) upload(w *model.Weights, half bool) (*model.Weights, error) {
	params := w.Params()
	var need int64
	for _, p := range params {
		switch t := (*p.T).(type) {
		case *Tensor:
			return nil, fmt.Errorf("gpu: %s is already on a device", p.Name)
		case *model.F32:
			need += int64(len(t.Data)) * int64(elemBytes(t.Dims, half))
		case *quantize.Tensor:
			if p.Kind == model.KindNorm || p.Kind == model.KindBias {
				need += 4 * int64(t.Len())
			} else {
				need += t.Bytes()
			}
		default:
			return nil, fmt.Errorf("gpu: %s: no device format for %T", p.Name, t)
		}
	}
	if err := b.fits(need, "the model's weights"); err != nil {
		return nil, err
	}
	out := w.Copy()
	dst := out.Params()
	for i, p := range params {
		t, err := b.uploadTensor(*p.T, p.Kind, half)
		if err != nil {
			FreeWeights(b.d, out, i)
			return nil, fmt.Errorf("gpu: upload %s: %w", p.Name, err)
		}
		*dst[i].T = t
	}
	b.reserve(w.Config)
	if b.err != nil {
		FreeWeights(b.d, out, -1)
		return nil, b.err
	}
	return out, nil
}

func elemBytes(dims []int, half bool) int {
	if half && len(dims) == 2 {
		return 2
	}
	return 4
}

func (b *Backend) uploadTensor(t model.Tensor, kind model.Kind, half bool) (*Tensor, error) {
	switch t := t.(type) {
	case *model.F32:
		if elemBytes(t.Dims, half) == 4 {
			return Upload(b.d, t)
		}
		p, err := b.uploadBytes(halfBytes(t.Data))
		if err != nil {
			return nil, err
		}
		return &Tensor{Dims: append([]int(nil), t.Dims...), Bits: 16, Data: p}, nil
	case *quantize.Tensor:
		if kind == model.KindNorm || kind == model.KindBias {
			return Upload(b.d, t.Dequantize())
		}
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
	return nil, fmt.Errorf("no device format for %T", t)
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

// halfBytes converts v to IEEE halves (round to nearest even), little-endian, on all cores.
func halfBytes(v []float32) []byte {
	out := make([]byte, 2*len(v))
	const chunk = 1 << 16
	var wg sync.WaitGroup
	work := make(chan int)
	for range runtime.GOMAXPROCS(0) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for lo := range work {
				for i := lo; i < min(lo+chunk, len(v)); i++ {
					binary.LittleEndian.PutUint16(out[2*i:], model.Float32ToHalf(v[i]))
				}
			}
		}()
	}
	for lo := 0; lo < len(v); lo += chunk {
		work <- lo
	}
	close(work)
	wg.Wait()
	return out
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

// QuantizeOnDevice quantizes the float32 device weights w (from Upload) with opt on the device,
// with our kernels, bit-identical to quantize.QuantizeWeights: the weights are uploaded once and
// every scheme is made from them. w is left as it is; the result shares w's tensors outside the
// scope (free both with Close, not one by one). LayerNorm gains and biases in the scope ("all")
// are quantized and expanded back to float32, as Upload does.
func (b *Backend) QuantizeOnDevice(w *model.Weights, opt quantize.Options) (*model.Weights, error) {
	if err := opt.Validate(); err != nil {
		return nil, err
	}
	var need int64
	for _, p := range w.Params() {
		t, ok := (*p.T).(*Tensor)
		if !ok || t.Bits != 32 {
			return nil, fmt.Errorf("gpu: %s: quantizing on the device needs float32 device weights (have %T)", p.Name, *p.T)
		}
		if quantize.InScope(opt.Scope, p.Kind, t.Dims) {
			need += quantizedBytes(t, opt)
		}
	}
	if err := b.fits(need, "the quantized weights"); err != nil {
		return nil, err
	}
	out := w.Copy()
	var made []*Tensor
	for _, p := range out.Params() {
		t := (*p.T).(*Tensor)
		if !quantize.InScope(opt.Scope, p.Kind, t.Dims) {
			continue
		}
		q, err := b.quantizeTensor(p, t, opt)
		if err != nil {
			for _, m := range made {
				m.Free(b.d)
			}
			return nil, err
		}
		made = append(made, q)
		*p.T = q
	}
	return out, nil
}

// quantizedBytes is the device memory of t quantized with opt.
func quantizedBytes(t *Tensor, opt quantize.Options) int64 {
	n := model.NumElements(t.Dims)
	gs, err := opt.Granularity.GroupSize("", t.Dims)
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
	if err != nil || (p.Kind != model.KindNorm && p.Kind != model.KindBias) {
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

// UploadQuantized uploads the float32 host weights w and quantizes them on the device one tensor
// at a time (QuantizeWeights), so that the device holds the quantized model plus one float tensor
// at most; norms and biases in the scope come back float32, as with QuantizeOnDevice.
func (b *Backend) UploadQuantized(w *model.Weights, opt quantize.Options) (*model.Weights, error) {
	if err := opt.Validate(); err != nil {
		return nil, err
	}
	var need, largest int64
	for _, p := range w.Params() {
		f, ok := (*p.T).(*model.F32)
		if !ok {
			return nil, fmt.Errorf("gpu: %s: %w", p.Name, quantize.ErrAlreadyQuantized)
		}
		ft := &Tensor{Dims: f.Dims, Bits: 32}
		largest = max(largest, ft.Bytes())
		if quantize.InScope(opt.Scope, p.Kind, f.Dims) && p.Kind != model.KindNorm && p.Kind != model.KindBias {
			need += quantizedBytes(ft, opt)
		} else {
			need += ft.Bytes()
		}
	}
	if err := b.fits(need+largest, "the quantized weights (and one float tensor while quantizing)"); err != nil {
		return nil, err
	}
	q, err := QuantizeWeights(b.d, w, opt)
	if err != nil {
		return nil, err
	}
	for _, p := range q.Params() {
		t := (*p.T).(*Tensor)
		if t.Bits == 32 || (p.Kind != model.KindNorm && p.Kind != model.KindBias) {
			continue
		}
		f, err := b.dequantize(p.Name, t)
		if err != nil {
			FreeWeights(b.d, q, -1)
			return nil, err
		}
		t.Free(b.d)
		*p.T = f
	}
	b.reserve(w.Config)
	if b.err != nil {
		FreeWeights(b.d, q, -1)
		return nil, b.err
	}
	return q, nil
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
		case t.Bits == 32 && (p.Kind == model.KindNorm || p.Kind == model.KindBias):
			f, err := t.DownloadF32(b.d)
			if err != nil {
				return nil, err
			}
			*dst[i].T = f
		}
	}
	return out, nil
}

package gpu

import (
	"errors"
	"fmt"
	"math"

	"github.com/gpuquant/gpuquant/kernels"
	"github.com/gpuquant/gpuquant/model"
	"github.com/gpuquant/gpuquant/quantize"
)

// Tensor is a weight resident on a device: float32 values (Bits 32) or integer codes with
// float32 scales (and zero-points), in the layout of quantize.Tensor. It implements model.Tensor,
// so device-resident weights travel in an ordinary model.Weights.
type Tensor struct {
	Dims      []int
	Bits      int // 32 float32, 16 IEEE half, else 8 or 4 (codes)
	Scheme    quantize.Scheme
	GroupSize int
	Data      kernels.Ptr // float values (Bits 32 or 16)
	Codes     kernels.Ptr // codes (Bits 8 or 4)
	Scales    kernels.Ptr // one float32 per group
	Zeros     kernels.Ptr // one float32 per group, ZeroPoint only
}

func (t *Tensor) Shape() []int { return t.Dims }

// Bytes is the device memory the tensor holds.
func (t *Tensor) Bytes() int64 {
	n := model.NumElements(t.Dims)
	if t.Bits == 32 || t.Bits == 16 {
		return int64(t.Bits/8) * int64(n)
	}
	groups := int64(n / t.GroupSize)
	b := int64(kernels.CodeBytes(n, t.Bits)) + 4*groups
	if t.Zeros != 0 {
		b += 4 * groups
	}
	return b
}

// Free releases the tensor's device memory.
func (t *Tensor) Free(d kernels.Device) {
	for _, p := range []kernels.Ptr{t.Data, t.Codes, t.Scales, t.Zeros} {
		if p != 0 {
			d.Free(p)
		}
	}
	*t = Tensor{Dims: t.Dims}
}

// Upload copies a host float32 tensor to the device.
func Upload(d kernels.Device, t *model.F32) (*Tensor, error) {
	p, err := alloc(d, 4*len(t.Data))
	if err != nil {
		return nil, err
	}
	if err := d.CopyToDevice(p, model.F32Bytes(t.Data)); err != nil {
		d.Free(p)
		return nil, err
	}
	return &Tensor{Dims: append([]int(nil), t.Dims...), Bits: 32, Data: p}, nil
}

func alloc(d kernels.Device, n int) (kernels.Ptr, error) {
	return d.Alloc(max(n, 4)) // a zero-size allocation would give no address to free
}

// Quantize quantizes a device float32 tensor on the device with opt's scheme, bits, preset and
// granularity; the codes are bit-identical to quantize.Quantize on the same values. name is used
// in errors. The float tensor is left as it is.
func Quantize(d kernels.Device, name string, f *Tensor, opt quantize.Options) (*Tensor, error) {
	if f.Bits != 32 {
		return nil, fmt.Errorf("gpu: %s is already quantized", name)
	}
	if err := opt.Validate(); err != nil {
		return nil, err
	}
	gs, err := opt.Granularity.GroupSize(name, f.Dims)
	if err != nil {
		return nil, fmt.Errorf("gpu: %w", err)
	}
	n := model.NumElements(f.Dims)
	t := &Tensor{Dims: append([]int(nil), f.Dims...), Bits: opt.Bits, Scheme: opt.Scheme, GroupSize: gs}
	groups := n / gs
	var work kernels.Ptr
	defer func() {
		if work != 0 {
			d.Free(work)
		}
	}()
	if t.Codes, err = alloc(d, kernels.CodeBytes(n, opt.Bits)); err == nil {
		if t.Scales, err = alloc(d, 4*groups); err == nil && opt.Scheme == quantize.ZeroPoint {
			t.Zeros, err = alloc(d, 4*groups)
		}
	}
	if err == nil {
		work, err = alloc(d, kernels.QuantizeWorkBytes(n, gs))
	}
	if err == nil {
		err = kernels.Quantize(d, t.Codes, t.Scales, t.Zeros, work, f.Data, n, gs, opt)
	}
	if err == nil {
		err = checkScales(d, name, t.Scales, groups)
	}
	if err != nil {
		t.Free(d)
		return nil, fmt.Errorf("gpu: quantize %s: %w", name, err)
	}
	return t, nil
}

// checkScales turns the kernels' NaN scale (a group holding NaN or ±Inf) into an error.
func checkScales(d kernels.Device, name string, scales kernels.Ptr, groups int) error {
	s := make([]float32, groups)
	if err := d.CopyFromDevice(model.F32Bytes(s), scales); err != nil {
		return err
	}
	for g, v := range s {
		if math.IsNaN(float64(v)) {
			return fmt.Errorf("%s holds a non-finite value (group %d)", name, g)
		}
	}
	return nil
}

// Download copies a quantized device tensor back as a quantize.Tensor (for checks and saving).
func (t *Tensor) Download(d kernels.Device) (*quantize.Tensor, error) {
	if t.Bits == 32 || t.Bits == 16 {
		return nil, errors.New("gpu: download of a float tensor as quantized")
	}
	n := model.NumElements(t.Dims)
	q := &quantize.Tensor{Dims: append([]int(nil), t.Dims...), Scheme: t.Scheme, Bits: t.Bits, GroupSize: t.GroupSize,
		Codes: make([]byte, kernels.CodeBytes(n, t.Bits)), Scales: make([]float32, n/t.GroupSize)}
	err := d.CopyFromDevice(q.Codes, t.Codes)
	if err == nil {
		err = d.CopyFromDevice(model.F32Bytes(q.Scales), t.Scales)
	}
	if err == nil && t.Zeros != 0 {
		q.Zeros = make([]float32, len(q.Scales))
		err = d.CopyFromDevice(model.F32Bytes(q.Zeros), t.Zeros)
	}
	if err != nil {
		return nil, fmt.Errorf("gpu: download: %w", err)
	}
	return q, q.Validate()
}

// DownloadF32 copies a float device tensor back to the host.
func (t *Tensor) DownloadF32(d kernels.Device) (*model.F32, error) {
	if t.Bits != 32 {
		return nil, errors.New("gpu: float download of a quantized tensor")
	}
	out := make([]float32, model.NumElements(t.Dims))
	if err := d.CopyFromDevice(model.F32Bytes(out), t.Data); err != nil {
		return nil, fmt.Errorf("gpu: download: %w", err)
	}
	return model.NewF32(out, t.Dims...), nil
}

var _ model.Tensor = (*Tensor)(nil)

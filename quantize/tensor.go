package quantize

import (
	"fmt"

	"github.com/gpuquant/gpuquant/model"
)

// Scheme is how real values map to integer codes.
type Scheme string

const (
	// Absmax is symmetric: q = round(x·s), s = qmax / max|x|.
	Absmax Scheme = "absmax"
	// ZeroPoint is asymmetric: q = clamp(round(x·s + z)), s = levels / (max − min),
	// z = round(−min·s − 2^(bits−1)).
	ZeroPoint Scheme = "zeropoint"
)

// Tensor is a quantized tensor: integer codes plus one float32 scale (and, for ZeroPoint, one
// zero-point) per group of GroupSize consecutive values of the row-major data. GroupSize is the
// row length for per-channel, N for group:N, and the element count for per-tensor granularity, so
// a group never straddles two rows except in the per-tensor case.
//
// The dequantized value of code q in group g is (q − Zeros[g]) / Scales[g].
type Tensor struct {
	Dims      []int // (OC, C) for matrices, (C) for vectors
	Scheme    Scheme
	Bits      int // 8 or 4
	GroupSize int
	// Codes holds int8 codes as two's-complement bytes; for 4 bits two codes share a byte, element
	// 2i in the low nibble and 2i+1 in the high nibble, each stored as q+8 (0..15).
	Codes  []byte
	Scales []float32 // per group: the multiplier s
	Zeros  []float32 // per group, integer-valued; nil for Absmax
}

// Shape implements model.Tensor.
func (t *Tensor) Shape() []int { return t.Dims }

// Bytes implements model.Tensor: codes, scales and zero-points.
func (t *Tensor) Bytes() int64 {
	return int64(len(t.Codes)) + 4*int64(len(t.Scales)+len(t.Zeros))
}

// Len is the number of values.
func (t *Tensor) Len() int { return model.NumElements(t.Dims) }

// Code returns the integer code of flat element i.
func (t *Tensor) Code(i int) int8 {
	if t.Bits == 4 {
		b := t.Codes[i/2]
		if i%2 == 1 {
			b >>= 4
		}
		return int8(b&0xf) - 8
	}
	return int8(t.Codes[i])
}

// zero is the zero-point of group g (0 for Absmax).
func (t *Tensor) zero(g int) float32 {
	if t.Zeros == nil {
		return 0
	}
	return t.Zeros[g]
}

// ReadRow dequantizes row r of a matrix into dst (model.RowReader).
func (t *Tensor) ReadRow(dst []float32, r int) {
	c := t.Dims[len(t.Dims)-1]
	t.dequantizeRange(dst[:c], r*c)
}

// Dequantize expands the whole tensor to float32 (for error statistics and reports; the backends
// run on the codes).
func (t *Tensor) Dequantize() *model.F32 {
	out := make([]float32, t.Len())
	t.dequantizeRange(out, 0)
	return model.NewF32(out, t.Dims...)
}

func (t *Tensor) dequantizeRange(dst []float32, first int) {
	for i := range dst {
		e := first + i
		g := e / t.GroupSize
		dst[i] = (float32(t.Code(e)) - t.zero(g)) / t.Scales[g]
	}
}

// Validate checks that the slices agree with the shape, bits and group size, as a corrupted
// checkpoint would not.
func (t *Tensor) Validate() error {
	n := t.Len()
	switch {
	case t.Bits != 8 && t.Bits != 4:
		return fmt.Errorf("unsupported bits %d (want 8 or 4)", t.Bits)
	case t.Scheme != Absmax && t.Scheme != ZeroPoint:
		return fmt.Errorf("unknown scheme %q", t.Scheme)
	case t.GroupSize <= 0 || n%t.GroupSize != 0:
		return fmt.Errorf("group size %d does not divide %d values", t.GroupSize, n)
	case len(t.Codes) != (n*t.Bits+7)/8:
		return fmt.Errorf("%d code bytes for %d values at %d bits (want %d)", len(t.Codes), n, t.Bits, (n*t.Bits+7)/8)
	case len(t.Scales) != n/t.GroupSize:
		return fmt.Errorf("%d scales for %d groups", len(t.Scales), n/t.GroupSize)
	case t.Scheme == ZeroPoint && len(t.Zeros) != len(t.Scales):
		return fmt.Errorf("%d zero-points for %d groups", len(t.Zeros), len(t.Scales))
	case t.Scheme == Absmax && t.Zeros != nil:
		return fmt.Errorf("absmax tensor carries zero-points")
	}
	return nil
}

var _ model.RowReader = (*Tensor)(nil)

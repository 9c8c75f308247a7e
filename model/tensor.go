package model

import "fmt"

// Tensor is a weight held in some storage format by some backend: *F32 on the host, quantized
// integer codes with scales (package quantize), or a device handle (package gpu). Backends dispatch
// on the concrete type; the forward pass never does.
type Tensor interface {
	// Shape is (OC, C) for a matrix in nn.Linear layout, (C) for a vector.
	Shape() []int
	// Bytes is the storage the tensor really occupies, scales and zero-points included.
	Bytes() int64
}

// F32 is a dense row-major float32 tensor in host memory.
type F32 struct {
	Dims []int
	Data []float32
}

// NewF32 returns a tensor over data, which must hold exactly the product of dims values.
func NewF32(data []float32, dims ...int) *F32 {
	if n := NumElements(dims); n != len(data) {
		panic(fmt.Sprintf("model: NewF32: %d values for shape %v (%d)", len(data), dims, n))
	}
	return &F32{Dims: dims, Data: data}
}

func (t *F32) Shape() []int { return t.Dims }
func (t *F32) Bytes() int64 { return 4 * int64(len(t.Data)) }

// Row returns row r of a matrix.
func (t *F32) Row(r int) []float32 {
	c := t.Dims[len(t.Dims)-1]
	return t.Data[r*c : (r+1)*c]
}

// NumElements is the product of dims (1 for a scalar).
func NumElements(dims []int) int {
	n := 1
	for _, d := range dims {
		n *= d
	}
	return n
}

// RowReader is a matrix whose rows can be read as float32, whatever its storage; embedding
// lookups use it so that a quantized wte is expanded one row at a time, never whole.
type RowReader interface {
	ReadRow(dst []float32, r int)
}

// ReadRow copies row r into dst.
func (t *F32) ReadRow(dst []float32, r int) { copy(dst, t.Row(r)) }

// HumanBytes formats a byte count for people: "474.7 MiB", "1.52 GiB".
func HumanBytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.2f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

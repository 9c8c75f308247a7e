package gguf

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"math"

	"github.com/gpuquant/gpuquant/model"
)

// Tensor is one tensor to write: Fill writes exactly Type.DataBytes(elements) bytes.
type Tensor struct {
	Name string
	Dims []int64 // innermost first
	Type TensorType
	Fill func(w io.Writer) error
}

// Write writes a version 3 GGUF to path through a temporary file and a rename, tensors in the
// given order, each aligned to 32 bytes.
func Write(path string, kv []KV, tensors []Tensor) error {
	return model.WriteAtomic(path, func(w *bufio.Writer) error {
		e := &encoder{w: w}
		e.raw([]byte(Magic))
		e.u32(3)
		e.u64(uint64(len(tensors)))
		e.u64(uint64(len(kv)))
		for _, x := range kv {
			e.str(x.Key)
			if err := e.value(x.Value); err != nil {
				return fmt.Errorf("gguf: metadata %q: %w", x.Key, err)
			}
		}
		var off uint64
		for _, t := range tensors {
			e.str(t.Name)
			e.u32(uint32(len(t.Dims)))
			for _, d := range t.Dims {
				e.u64(uint64(d))
			}
			e.u32(uint32(t.Type))
			e.u64(off)
			off = align(off + uint64(t.Type.DataBytes(elements(t.Dims))))
		}
		e.pad()
		for _, t := range tensors {
			before := e.n
			if e.err == nil {
				e.err = t.Fill(e)
			}
			if want := uint64(t.Type.DataBytes(elements(t.Dims))); e.err == nil && e.n-before != want {
				return fmt.Errorf("gguf: tensor %q: wrote %d bytes, want %d", t.Name, e.n-before, want)
			}
			e.pad()
		}
		return e.err
	})
}

func align(n uint64) uint64 { return (n + defaultAlignment - 1) / defaultAlignment * defaultAlignment }

// encoder writes little-endian fields, counting bytes; the first error sticks.
type encoder struct {
	w   *bufio.Writer
	n   uint64
	err error
}

// Write lets Fill write through the encoder, so the bytes are counted.
func (e *encoder) Write(p []byte) (int, error) {
	e.raw(p)
	return len(p), e.err
}

func (e *encoder) raw(b []byte) {
	if e.err == nil {
		_, e.err = e.w.Write(b)
		e.n += uint64(len(b))
	}
}

func (e *encoder) pad() {
	if k := align(e.n) - e.n; k > 0 {
		e.raw(make([]byte, k))
	}
}

func (e *encoder) u32(v uint32) { e.raw(binary.LittleEndian.AppendUint32(nil, v)) }
func (e *encoder) u64(v uint64) { e.raw(binary.LittleEndian.AppendUint64(nil, v)) }
func (e *encoder) str(s string) {
	e.u64(uint64(len(s)))
	e.raw([]byte(s))
}

// value writes a value's type and the value.
func (e *encoder) value(v any) error {
	if a, ok := v.(Array); ok {
		e.u32(uint32(TypeArray))
		e.u32(uint32(a.Elem))
		switch vs := a.Values.(type) {
		case []string:
			e.u64(uint64(len(vs)))
			for _, s := range vs {
				e.str(s)
			}
		case []int32:
			e.u64(uint64(len(vs)))
			for _, x := range vs {
				e.u32(uint32(x))
			}
		case []float32:
			e.u64(uint64(len(vs)))
			for _, x := range vs {
				e.u32(math.Float32bits(x))
			}
		default:
			return fmt.Errorf("unsupported array %T", a.Values)
		}
		return nil
	}
	switch x := v.(type) {
	case uint32:
		e.u32(uint32(TypeUint32))
		e.u32(x)
	case int32:
		e.u32(uint32(TypeInt32))
		e.u32(uint32(x))
	case float32:
		e.u32(uint32(TypeFloat32))
		e.u32(math.Float32bits(x))
	case bool:
		e.u32(uint32(TypeBool))
		b := byte(0)
		if x {
			b = 1
		}
		e.raw([]byte{b})
	case string:
		e.u32(uint32(TypeString))
		e.str(x)
	case uint64:
		e.u32(uint32(TypeUint64))
		e.u64(x)
	default:
		return fmt.Errorf("unsupported value %T", v)
	}
	return nil
}

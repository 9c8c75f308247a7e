// Package gguf reads and writes GGUF, llama.cpp's checkpoint format, for GPT-2: export of our
// float and quantized weights (F32, F16, Q8_0, Q4_0) with GPT-2's tokenizer, loadable by
// llama.cpp, and import of a llama.cpp GPT-2 GGUF into model.Weights.
//
// The layout (GGUF version 3, little-endian): "GGUF", version uint32, tensor count uint64,
// metadata count uint64; the metadata as key (string), value type uint32, value; one tensor info
// per tensor: name, dimension count uint32, dimensions uint64 (innermost first: ggml's ne[0] is a
// row's length), ggml type uint32, offset uint64 into the data section; then, at the next
// multiple of general.alignment (32 by default), the data section. Strings are a uint64 length and
// bytes; arrays an element type uint32, a count uint64 and the elements.
package gguf

import (
	"encoding/binary"
	"fmt"
	"math"
	"strings"
)

// Magic opens every GGUF file.
const Magic = "GGUF"

// ValueType is a metadata value's type.
type ValueType uint32

// Metadata value types.
const (
	TypeUint8 ValueType = iota
	TypeInt8
	TypeUint16
	TypeInt16
	TypeUint32
	TypeInt32
	TypeFloat32
	TypeBool
	TypeString
	TypeArray
	TypeUint64
	TypeInt64
	TypeFloat64
)

var valueSizes = map[ValueType]int{TypeUint8: 1, TypeInt8: 1, TypeUint16: 2, TypeInt16: 2, TypeUint32: 4, TypeInt32: 4,
	TypeFloat32: 4, TypeBool: 1, TypeUint64: 8, TypeInt64: 8, TypeFloat64: 8}

// TensorType is a ggml tensor type.
type TensorType uint32

// The tensor types this package reads and writes (ggml's numbers).
const (
	F32  TensorType = 0
	F16  TensorType = 1
	Q4_0 TensorType = 2
	Q8_0 TensorType = 8
)

// BlockSize is the values per quantization block of Q8_0 and Q4_0.
const BlockSize = 32

func (t TensorType) String() string {
	switch t {
	case F32:
		return "F32"
	case F16:
		return "F16"
	case Q4_0:
		return "Q4_0"
	case Q8_0:
		return "Q8_0"
	}
	return fmt.Sprintf("ggml type %d", uint32(t))
}

// ParseTensorType reads "f32", "f16", "q8_0" or "q4_0" (any case).
func ParseTensorType(s string) (TensorType, error) {
	for _, t := range []TensorType{F32, F16, Q8_0, Q4_0} {
		if strings.EqualFold(s, t.String()) {
			return t, nil
		}
	}
	return 0, fmt.Errorf("gguf: unknown format %q (want f32, f16, q8_0 or q4_0)", s)
}

// DataBytes is the size of n values (n a multiple of the block size for the block types).
func (t TensorType) DataBytes(n int64) int64 {
	switch t {
	case F32:
		return 4 * n
	case F16:
		return 2 * n
	case Q8_0:
		return n / BlockSize * (2 + BlockSize)
	case Q4_0:
		return n / BlockSize * (2 + BlockSize/2)
	}
	return -1
}

// KV is one metadata entry. Value is uint8, int8, uint16, int16, uint32, int32, float32, bool,
// string, uint64, int64, float64, or an Array.
type KV struct {
	Key   string
	Value any
}

// Array is a metadata array: Values is []string, []int32, []uint32 or []float32 for those element
// types, []any of the scalars otherwise.
type Array struct {
	Elem   ValueType
	Values any
}

// TensorInfo describes one tensor; Data is its bytes, within the file image it was parsed from.
type TensorInfo struct {
	Name string
	Dims []int64 // innermost first
	Type TensorType
	Data []byte
}

// Elements is the tensor's value count.
func (t *TensorInfo) Elements() int64 { return elements(t.Dims) }

func elements(dims []int64) int64 {
	n := int64(1)
	for _, d := range dims {
		n *= d
	}
	return n
}

// File is a parsed GGUF image.
type File struct {
	Version uint32
	KV      []KV
	Tensors []TensorInfo
}

// Get returns the value of key, nil when absent.
func (f *File) Get(key string) any {
	for _, kv := range f.KV {
		if kv.Key == key {
			return kv.Value
		}
	}
	return nil
}

const (
	defaultAlignment = 32
	maxDims          = 4 // GGML_MAX_DIMS
	maxElements      = 1 << 40
)

// Parse checks a whole GGUF image and returns its metadata and tensors, whose Data point into
// data. Every count and length is checked against the bytes left before anything is allocated,
// so a corrupt or hostile file gives an error naming the field, never a panic or a huge
// allocation.
func Parse(data []byte) (*File, error) {
	r := &reader{data: data}
	if len(data) < 24 || string(data[:4]) != Magic {
		return nil, fmt.Errorf("gguf: not a GGUF file (no %q magic, or shorter than its 24-byte header)", Magic)
	}
	r.off = 4
	f := &File{Version: r.u32()}
	if f.Version != 2 && f.Version != 3 {
		return nil, fmt.Errorf("gguf: version %d not supported (want 2 or 3)", f.Version)
	}
	nTensors, nKV := r.u64(), r.u64()
	// A metadata entry takes at least 13 bytes (empty key, type, a one-byte value), a tensor info
	// at least 28 (empty name, one dimension, type, offset).
	if nKV > uint64(r.left())/13 {
		return nil, fmt.Errorf("gguf: metadata count %d does not fit in the %d bytes left", nKV, r.left())
	}
	if nTensors > uint64(r.left())/28 {
		return nil, fmt.Errorf("gguf: tensor count %d does not fit in the %d bytes left", nTensors, r.left())
	}
	for i := range nKV {
		key := r.str("metadata key")
		typ := ValueType(r.u32())
		v := r.value(typ, key, 0)
		if r.err != nil {
			return nil, fmt.Errorf("gguf: metadata %d (%q): %w", i, key, r.err)
		}
		f.KV = append(f.KV, KV{key, v})
	}
	align := uint64(defaultAlignment)
	if a := f.Get("general.alignment"); a != nil {
		v, ok := a.(uint32)
		if !ok || v == 0 || v&(v-1) != 0 || v > 1<<16 {
			return nil, fmt.Errorf("gguf: general.alignment %v: want a power of two uint32 up to 65536", a)
		}
		align = uint64(v)
	}
	offsets := make([]uint64, nTensors)
	for i := range nTensors {
		t, off := r.tensorInfo()
		if r.err != nil {
			return nil, fmt.Errorf("gguf: tensor info %d (%q): %w", i, t.Name, r.err)
		}
		f.Tensors, offsets[i] = append(f.Tensors, t), off
	}
	start := (uint64(r.off) + align - 1) / align * align
	if start > uint64(len(data)) {
		return nil, fmt.Errorf("gguf: truncated: the data section would start at byte %d of %d", start, len(data))
	}
	body := data[start:]
	seen := map[string]bool{}
	for i := range f.Tensors {
		t := &f.Tensors[i]
		if seen[t.Name] {
			return nil, fmt.Errorf("gguf: tensor %q appears twice", t.Name)
		}
		seen[t.Name] = true
		size, off := uint64(t.Type.DataBytes(t.Elements())), offsets[i]
		switch {
		case off%align != 0:
			return nil, fmt.Errorf("gguf: tensor %q: offset %d is not a multiple of the alignment %d", t.Name, off, align)
		case off > uint64(len(body)) || size > uint64(len(body))-off:
			return nil, fmt.Errorf("gguf: truncated: tensor %q needs bytes %d..%d of a %d-byte data section", t.Name, off, off+size, len(body))
		}
		t.Data = body[off : off+size]
	}
	return f, nil
}

// reader reads little-endian fields; the first failure sticks in err and later reads return
// zeros.
type reader struct {
	data []byte
	off  int
	err  error
}

func (r *reader) left() int { return len(r.data) - r.off }

func (r *reader) take(n uint64, what string) []byte {
	if r.err != nil {
		return nil
	}
	if n > uint64(r.left()) {
		r.err = fmt.Errorf("truncated: %s needs %d bytes, %d left", what, n, r.left())
		return nil
	}
	b := r.data[r.off : r.off+int(n)]
	r.off += int(n)
	return b
}

func (r *reader) u32() uint32 {
	if b := r.take(4, "a uint32"); b != nil {
		return binary.LittleEndian.Uint32(b)
	}
	return 0
}

func (r *reader) u64() uint64 {
	if b := r.take(8, "a uint64"); b != nil {
		return binary.LittleEndian.Uint64(b)
	}
	return 0
}

func (r *reader) str(what string) string {
	n := r.u64()
	return string(r.take(n, what))
}

// value reads one value of type typ; arrays may not nest deeper than one level.
func (r *reader) value(typ ValueType, key string, depth int) any {
	if r.err != nil {
		return nil
	}
	switch typ {
	case TypeString:
		return r.str("a string")
	case TypeArray:
		if depth > 0 {
			r.err = fmt.Errorf("nested arrays are not supported")
			return nil
		}
		return r.array(key)
	}
	size, ok := valueSizes[typ]
	if !ok {
		r.err = fmt.Errorf("unknown value type %d", typ)
		return nil
	}
	b := r.take(uint64(size), "a value")
	if b == nil {
		return nil
	}
	return scalar(typ, b)
}

func scalar(typ ValueType, b []byte) any {
	switch typ {
	case TypeUint8:
		return b[0]
	case TypeInt8:
		return int8(b[0])
	case TypeUint16:
		return binary.LittleEndian.Uint16(b)
	case TypeInt16:
		return int16(binary.LittleEndian.Uint16(b))
	case TypeUint32:
		return binary.LittleEndian.Uint32(b)
	case TypeInt32:
		return int32(binary.LittleEndian.Uint32(b))
	case TypeFloat32:
		return math.Float32frombits(binary.LittleEndian.Uint32(b))
	case TypeBool:
		return b[0] != 0
	case TypeUint64:
		return binary.LittleEndian.Uint64(b)
	case TypeInt64:
		return int64(binary.LittleEndian.Uint64(b))
	}
	return math.Float64frombits(binary.LittleEndian.Uint64(b)) // TypeFloat64
}

func (r *reader) array(key string) any {
	elem := ValueType(r.u32())
	n := r.u64()
	if r.err != nil {
		return nil
	}
	minSize := uint64(8) // a string's length
	if elem != TypeString {
		s, ok := valueSizes[elem]
		if !ok {
			r.err = fmt.Errorf("array of unknown or unsupported element type %d", elem)
			return nil
		}
		minSize = uint64(s)
	}
	if n > uint64(r.left())/minSize {
		r.err = fmt.Errorf("array count %d does not fit in the %d bytes left", n, r.left())
		return nil
	}
	if elem == TypeString {
		v := make([]string, 0, n)
		for range n {
			v = append(v, r.str("an array string"))
		}
		return Array{elem, v}
	}
	vals := make([]any, n)
	for i := range vals {
		vals[i] = scalar(elem, r.take(minSize, "an array element"))
	}
	return Array{elem, typedSlice(elem, vals)}
}

// typedSlice gives the element types a GPT-2 file's arrays use their Go slice type; others stay
// []any.
func typedSlice(elem ValueType, v []any) any {
	switch elem {
	case TypeInt32:
		return convertAll[int32](v)
	case TypeUint32:
		return convertAll[uint32](v)
	case TypeFloat32:
		return convertAll[float32](v)
	}
	return v
}

func convertAll[T any](v []any) []T {
	out := make([]T, len(v))
	for i, x := range v {
		out[i] = x.(T)
	}
	return out
}

func (r *reader) tensorInfo() (TensorInfo, uint64) {
	t := TensorInfo{Name: r.str("a tensor name")}
	nd := r.u32()
	if r.err == nil && (nd == 0 || nd > maxDims) {
		r.err = fmt.Errorf("%d dimensions (want 1 to %d)", nd, maxDims)
	}
	n := int64(1)
	for range nd {
		d := r.u64()
		if r.err != nil {
			break
		}
		if d == 0 || d > maxElements || uint64(n)*d > maxElements {
			r.err = fmt.Errorf("dimension %d (shape so far %v) is zero or makes over 2^40 values", d, t.Dims)
			break
		}
		t.Dims = append(t.Dims, int64(d))
		n *= int64(d)
	}
	t.Type = TensorType(r.u32())
	off := r.u64()
	if r.err != nil {
		return t, 0
	}
	switch t.Type {
	case F32, F16:
	case Q8_0, Q4_0:
		if t.Dims[0]%BlockSize != 0 {
			r.err = fmt.Errorf("%s rows of %d values are not whole blocks of %d", t.Type, t.Dims[0], BlockSize)
		}
	default:
		r.err = fmt.Errorf("unsupported tensor type %s (this reader takes F32, F16, Q8_0 and Q4_0)", t.Type)
	}
	return t, off
}

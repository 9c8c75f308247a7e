package gguf

import (
	"encoding/binary"
	"math"

	"github.com/gpuquant/gpuquant/model"
)

// Q8_0 is blocks of 32 values: an IEEE half scale d, then 32 int8 codes q; x = q·d.
// Q4_0 is blocks of 32 values: d, then 16 bytes whose low nibbles hold values 0..15 and high
// nibbles values 16..31, each as q+8 with q in −8..7; x = q·d.

const (
	q8Block = 2 + BlockSize
	q4Block = 2 + BlockSize/2
)

// putQ8Block writes one Q8_0 block.
func putQ8Block(dst []byte, d uint16, q []int8) {
	binary.LittleEndian.PutUint16(dst, d)
	for i, v := range q {
		dst[2+i] = byte(v)
	}
}

// putQ4Block writes one Q4_0 block from codes q in −8..7.
func putQ4Block(dst []byte, d uint16, q []int8) {
	binary.LittleEndian.PutUint16(dst, d)
	for j := range BlockSize / 2 {
		dst[2+j] = byte(q[j]+8) | byte(q[j+BlockSize/2]+8)<<4
	}
}

// quantizeQ8 is llama.cpp's Q8_0 rounding of one block: d = max|x|/127, q = round(x/d) with
// halves away from zero (C's roundf), the scale stored as half.
func quantizeQ8(x []float32, q []int8) uint16 {
	var amax float32
	for _, v := range x {
		amax = max(amax, float32(math.Abs(float64(v))))
	}
	d := amax / 127
	var id float32
	if d != 0 {
		id = 1 / d
	}
	for i, v := range x {
		q[i] = int8(math.Round(float64(v * id)))
	}
	return model.Float32ToHalf(d)
}

// quantizeQ4 is llama.cpp's Q4_0 rounding of one block: d = m/−8 for the value m of largest
// magnitude (so m itself gets code −8), q = min(7, ⌊x/d + 8.5⌋ − 8).
func quantizeQ4(x []float32, q []int8) uint16 {
	var amax, m float32
	for _, v := range x {
		if a := float32(math.Abs(float64(v))); a > amax {
			amax, m = a, v
		}
	}
	d := m / -8
	var id float32
	if d != 0 {
		id = 1 / d
	}
	for i, v := range x {
		q[i] = int8(min(15, int(v*id+8.5))) - 8 // int() truncates; v·id + 8.5 ≥ 0.5 here
	}
	return model.Float32ToHalf(d)
}

// decodeBlocks expands Q8_0 or Q4_0 data into dst (len(dst) values).
func decodeBlocks(t TensorType, data []byte, dst []float32) {
	size := q8Block
	if t == Q4_0 {
		size = q4Block
	}
	for b := range len(dst) / BlockSize {
		blk := data[b*size : (b+1)*size]
		d := model.HalfToFloat32(binary.LittleEndian.Uint16(blk))
		out := dst[b*BlockSize : (b+1)*BlockSize]
		if t == Q8_0 {
			for i := range out {
				out[i] = float32(int8(blk[2+i])) * d
			}
			continue
		}
		for j := range BlockSize / 2 {
			out[j] = float32(int(blk[2+j]&0xf)-8) * d
			out[j+BlockSize/2] = float32(int(blk[2+j]>>4)-8) * d
		}
	}
}

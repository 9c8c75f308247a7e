package model

import "unsafe"

func unsafePointer(b []byte) unsafe.Pointer { return unsafe.Pointer(unsafe.SliceData(b)) }

// F32View reinterprets little-endian float32 bytes without copying (amd64 and arm64 are little
// endian); ok is false when b is not 4-byte aligned.
func F32View(b []byte) (v []float32, ok bool) {
	if len(b) == 0 {
		return nil, true
	}
	if uintptr(unsafePointer(b))%4 != 0 {
		return nil, false
	}
	return unsafe.Slice((*float32)(unsafePointer(b)), len(b)/4), true
}

// I32Bytes is the little-endian byte view of v, without copying.
func I32Bytes(v []int32) []byte {
	if len(v) == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(v))), 4*len(v))
}

// F32Bytes is the little-endian byte view of v, without copying.
func F32Bytes(v []float32) []byte {
	if len(v) == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(v))), 4*len(v))
}

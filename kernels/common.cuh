// common.cuh — small device helpers shared by the kernel families (header-only, #pragma once so
// that the CPU emulator can include every .cu file in one translation unit).
#pragma once

// Scheme numbers, as the Go launchers pass them (kernels.Absmax, kernels.ZeroPoint).
#define GQ_ABSMAX 0
#define GQ_ZEROPOINT 1

// Orderable bits of a float: a < b (as floats, -0 < +0) iff ord(a) < ord(b) (as ints), so
// atomicMin/atomicMax on ints give a float min/max. ord is its own inverse.
__device__ __forceinline__ int gq_ord(float f) {
  int i = __float_as_int(f);
  return i >= 0 ? i : i ^ 0x7fffffff;
}
__device__ __forceinline__ float gq_unord(int i) { return __int_as_float(i >= 0 ? i : i ^ 0x7fffffff); }

// Code e of a tensor with `bits` 8 (two's-complement bytes) or 4 (element 2i in the low nibble of
// byte i, 2i+1 in the high nibble, each stored as q+8), as quantize.Tensor.Code.
__device__ __forceinline__ int gq_code(const unsigned char* codes, long long e, int bits) {
  if (bits == 8) return (signed char)codes[e];
  unsigned char b = codes[e >> 1];
  return int((e & 1) ? (b >> 4) : (b & 15)) - 8;
}

__device__ __forceinline__ float gq_warp_max(float v) {
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}
__device__ __forceinline__ float gq_warp_sum(float v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

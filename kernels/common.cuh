// common.cuh — small device helpers shared by the kernel families (header-only, #pragma once so
// that the CPU emulator can include every .cu file in one translation unit).
#pragma once
#include "ptx.cuh"

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

// gq_warp_reduce folds v over the 32 lanes of the warp with op (every lane gets the result).
template <class T, class Op>
__device__ __forceinline__ T gq_warp_reduce(T v, Op op) {
  for (int o = 16; o > 0; o >>= 1) v = op(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

// gq_block_reduce folds v over the block with op (every thread gets the result; identity fills
// the missing warps). blockDim.x must be a multiple of 32, at most 1024; red is 32 values of
// __shared__ memory that no other call uses concurrently.
template <class T, class Op>
__device__ __forceinline__ T gq_block_reduce(T v, T* red, T identity, Op op) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  v = gq_warp_reduce(v, op);
  __syncthreads();  // red may still be read by a previous call
  if (lane == 0) red[warp] = v;
  __syncthreads();
  return gq_warp_reduce(lane < (int)(blockDim.x >> 5) ? red[lane] : identity, op);
}

struct GqMax {
  __device__ __forceinline__ float operator()(float a, float b) const { return fmaxf(a, b); }
};
struct GqSum {
  template <class T>
  __device__ __forceinline__ T operator()(T a, T b) const { return a + b; }
};

__device__ __forceinline__ float gq_warp_max(float v) { return gq_warp_reduce(v, GqMax{}); }
__device__ __forceinline__ float gq_warp_sum(float v) { return gq_warp_reduce(v, GqSum{}); }

// gq_weight is element e (flat index) of a weight in any of the formats gpu.Tensor holds, as a
// float: bits 32 float32, 16 IEEE half, 8 or 4 codes dequantized exactly as quantize.Tensor does,
// (q − z_g)/s_g with g = e/gs (zeros null for absmax). Kernels pass the five fields as separate
// arguments (launch arguments are never structs).
__device__ __forceinline__ float gq_weight(const void* data, const float* scales, const float* zeros, long long gs,
                                           int bits, long long e) {
  if (bits == 32) return static_cast<const float*>(data)[e];
  if (bits == 16) return cvt_f32_f16(static_cast<const unsigned short*>(data)[e]);
  const long long g = e / gs;
  const float z = zeros ? zeros[g] : 0.0f;
  return __fdiv_rn(__fsub_rn((float)gq_code(static_cast<const unsigned char*>(data), e, bits), z), scales[g]);
}

// gq_weight_iv is gq_weight with quantized codes scaled by 1/s rather than divided by s: the
// numerics of the linear kernels (gemv.cu, gemm_f32.cu), a multiply in their inner loops.
template <int BITS>
__device__ __forceinline__ float gq_weight_iv(const unsigned char* w, const float* scales, const float* zeros,
                                           long long gs, long long e) {
  if (BITS >= 16) return gq_weight(w, scales, zeros, gs, BITS, e);
  const long long g = e / gs;
  return ((float)gq_code(w, e, BITS) - (zeros ? zeros[g] : 0.0f)) * __fdiv_rn(1.0f, scales[g]);
}

// gq_block_sum is the sum of v over the block (gq_block_reduce).
__device__ __forceinline__ float gq_block_sum(float v, float* red) { return gq_block_reduce(v, red, 0.0f, GqSum{}); }

// Epilogue activations of the linear kernels (kernels.Act).
#define GQ_ACT_NONE 0
#define GQ_ACT_GELU 1

// gq_gelu is GPT-2's gelu_new, 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))).
__device__ __forceinline__ float gq_gelu(float x) {
  return 0.5f * x * (1.0f + tanhf(0.7978845608028654f * (x + 0.044715f * x * x * x)));
}

__device__ __forceinline__ float gq_act(float v, int act) { return act == GQ_ACT_GELU ? gq_gelu(v) : v; }

// gemm_f16.cu — the fp16 baseline's prefill GEMM on the tensor cores (mma.sync m16n8k16, f16
// inputs, f32 accumulation, ptx.cuh), as cuBLAS/PyTorch run an fp16 model:
//
//   out(T, OC) = act(half(x)(T, C) · W(OC, C)ᵀ + bias)
//
// W is IEEE half (OC, C) (gpu.Tensor Bits 16); activations are rounded to half (nearest even)
// while their tile is loaded, products accumulate in float32, the epilogue (bias, GELU) is float32.
// Tiles of 64 tokens × 64 output channels × 32 k per block of 4 warps, each warp a 32×32 corner
// (2 × 4 m16n8 tiles), two k16 steps per tile; any T, C, OC (ragged tiles are zero-padded in
// shared memory). The same structure as the W8A8 GEMM (gemm_int8.cu), so that the two compare
// like for like.
#include "common.cuh"

#define H_BM 64   // tokens per block
#define H_BN 64   // output channels per block
#define H_BK 32   // k per tile (two mma k16 steps)
#define H_LDS 40  // shared row stride in halves (80 bytes, a multiple of 16): fragment reads hit 32 distinct banks

// gemm_f16: blockDim (128), grid (ceil(OC/64), ceil(T/64)); bias may be null; act is GQ_ACT_NONE
// or GQ_ACT_GELU. Each of the 4 warps computes a 32×32 corner of the 64×64 tile: 2 (m16) × 4 (n8)
// mma tiles per k16 step.
extern "C" __global__ void __launch_bounds__(128)
    gemm_f16(float* out /* (T, OC) */, const float* x /* (T, C) */, const unsigned short* w /* (OC, C) half */,
             const float* bias /* (OC) or null */, int T, int C, int OC, int act) {
  __shared__ __align__(16) unsigned short sA[H_BM * H_LDS];
  __shared__ __align__(16) unsigned short sB[H_BN * H_LDS];
  const int m0 = blockIdx.y * H_BM, n0 = blockIdx.x * H_BN;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int wm = (warp >> 1) * 32, wn = (warp & 1) * 32;  // this warp's 32×32 corner of the tile
  const int g = lane >> 2, t = lane & 3;
  const int lr = threadIdx.x >> 1, lc = (threadIdx.x & 1) * 16;  // loader: row lr, k lc..lc+15
  const bool wvec = (C & 7) == 0 && ((unsigned long long)w & 15) == 0;
  float acc[2][4][4];
#pragma unroll
  for (int mi = 0; mi < 2; mi++)
#pragma unroll
    for (int nj = 0; nj < 4; nj++)
#pragma unroll
      for (int i = 0; i < 4; i++) acc[mi][nj][i] = 0.0f;
  for (int k0 = 0; k0 < C; k0 += H_BK) {
    {  // activations: 16 floats rounded to half
      const int row = m0 + lr, k = k0 + lc;
      unsigned short* d = sA + lr * H_LDS + lc;
#pragma unroll
      for (int j = 0; j < 16; j++) d[j] = row < T && k + j < C ? cvt_rn_f16_f32(x[(long long)row * C + k + j]) : 0;
    }
    {  // weights: 16 halves, 16 bytes at a time where aligned
      const int row = n0 + lr, k = k0 + lc;
      unsigned short* d = sB + lr * H_LDS + lc;
#pragma unroll
      for (int h = 0; h < 16; h += 8) {
        if (wvec && row < OC && k + h + 8 <= C) {
          *reinterpret_cast<uint4*>(d + h) = *reinterpret_cast<const uint4*>(w + (long long)row * C + k + h);
        } else {
#pragma unroll
          for (int j = h; j < h + 8; j++) d[j] = row < OC && k + j < C ? w[(long long)row * C + k + j] : 0;
        }
      }
    }
    __syncthreads();
#pragma unroll
    for (int ks = 0; ks < H_BK; ks += 16) {
      unsigned a[2][4];
#pragma unroll
      for (int mi = 0; mi < 2; mi++)
#pragma unroll
        for (int i = 0; i < 4; i++)
          a[mi][i] = *reinterpret_cast<const unsigned*>(sA + (wm + 16 * mi + g + 8 * (i & 1)) * H_LDS + ks + 8 * (i >> 1) + 2 * t);
#pragma unroll
      for (int nj = 0; nj < 4; nj++) {
        unsigned b[2];
#pragma unroll
        for (int i = 0; i < 2; i++)
          b[i] = *reinterpret_cast<const unsigned*>(sB + (wn + 8 * nj + g) * H_LDS + ks + 8 * i + 2 * t);
#pragma unroll
        for (int mi = 0; mi < 2; mi++) mma_m16n8k16_f16(acc[mi][nj], a[mi], b, acc[mi][nj]);
      }
    }
    __syncthreads();  // the tiles are overwritten next step
  }
#pragma unroll
  for (int mi = 0; mi < 2; mi++)
#pragma unroll
    for (int nj = 0; nj < 4; nj++)
#pragma unroll
      for (int i = 0; i < 4; i++) {
        const int m = m0 + wm + 16 * mi + g + 8 * (i >> 1), n = n0 + wn + 8 * nj + 2 * t + (i & 1);
        if (m < T && n < OC) out[(long long)m * OC + n] = gq_act(acc[mi][nj][i] + (bias ? bias[n] : 0.0f), act);
      }
}

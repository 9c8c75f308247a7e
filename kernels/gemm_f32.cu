// gemm_f32.cu — the float GEMM for prefill (many tokens) with float activations and weights in any
// format: float32 (the fp32 baseline: plain FMA, no TF32, so results match the CPU backend to
// float rounding), IEEE half, or int8/int4 codes dequantized while the weight tile is loaded
// (the weight-only path). Weights are read once per 64 tokens instead of once per 4 (gemv.cu).
//
//   out(T, OC) = act(x(T, C) · deq(W)ᵀ + bias)
//
// Tiles: 64 tokens × 64 output channels per block of 256 threads, each thread a 4×4 corner, k in
// steps of 16 through shared memory. Plain CUDA cores: what limits it is FMA throughput (no tensor
// cores, no double buffering); the W8A8 path (gemm_int8.cu) is the tensor-core one.
#include "common.cuh"

#define GF_BM 64  // tokens per block
#define GF_BN 64  // output channels per block
#define GF_BK 16  // k per step
#define GF_PAD 4  // shared row padding: the transposed stores spread over banks

// gemm_f32_body: sA and sB are the kernel's tiles (declared there, so that the four instances of
// the body share one allocation of shared memory).
template <int BITS>
__device__ __forceinline__ void gemm_f32_body(float (*sA)[GF_BM + GF_PAD], float (*sB)[GF_BN + GF_PAD], float* out,
                                              const float* x, const unsigned char* w, const float* scales,
                                              const float* zeros, const float* bias, int T, int C, int OC,
                                              long long gs, int act) {
  const int tid = threadIdx.x;
  const int m0 = blockIdx.y * GF_BM, n0 = blockIdx.x * GF_BN;
  const int tm = (tid >> 4) * 4, tn = (tid & 15) * 4;  // this thread's 4×4 corner
  const int lr = tid >> 2, lk = (tid & 3) * 4;         // loader: row lr, k lk..lk+3 of both tiles
  float acc[4][4];
#pragma unroll
  for (int i = 0; i < 4; i++)
#pragma unroll
    for (int j = 0; j < 4; j++) acc[i][j] = 0.0f;
  const bool arow = m0 + lr < T, brow = n0 + lr < OC;
  const float* xr = x + (long long)(m0 + lr) * C;
  const long long we = (long long)(n0 + lr) * C;
  for (int k0 = 0; k0 < C; k0 += GF_BK) {
#pragma unroll
    for (int j = 0; j < 4; j++) {
      const int k = k0 + lk + j;
      sA[lk + j][lr] = arow && k < C ? xr[k] : 0.0f;
      sB[lk + j][lr] = brow && k < C ? gq_weight_iv<BITS>(w, scales, zeros, gs, we + k) : 0.0f;
    }
    __syncthreads();
#pragma unroll
    for (int k = 0; k < GF_BK; k++) {
      float a[4], b[4];
#pragma unroll
      for (int i = 0; i < 4; i++) a[i] = sA[k][tm + i], b[i] = sB[k][tn + i];
#pragma unroll
      for (int i = 0; i < 4; i++)
#pragma unroll
        for (int j = 0; j < 4; j++) acc[i][j] = fmaf(a[i], b[j], acc[i][j]);
    }
    __syncthreads();  // the tiles are overwritten next step
  }
#pragma unroll
  for (int i = 0; i < 4; i++) {
    const int m = m0 + tm + i;
    if (m >= T) break;
#pragma unroll
    for (int j = 0; j < 4; j++) {
      const int n = n0 + tn + j;
      if (n < OC) out[(long long)m * OC + n] = gq_act(acc[i][j] + (bias ? bias[n] : 0.0f), act);
    }
  }
}

// gemm_f32: blockDim (256), grid (ceil(OC/64), ceil(T/64)). w is (OC, C) in `bits` bits (32, 16,
// 8 or 4); scales and zeros as gemv's (null for float weights); bias may be null; act is
// GQ_ACT_NONE or GQ_ACT_GELU.
extern "C" __global__ void __launch_bounds__(256)
    gemm_f32(float* out /* (T, OC) */, const float* x /* (T, C) */, const unsigned char* w /* (OC, C) */,
             const float* scales /* (groups) */, const float* zeros /* (groups) or null */,
             const float* bias /* (OC) or null */, int T, int C, int OC, long long gs, int bits, int act) {
  __shared__ float sA[GF_BK][GF_BM + GF_PAD];
  __shared__ float sB[GF_BK][GF_BN + GF_PAD];
  switch (bits) {
    case 32:
      gemm_f32_body<32>(sA, sB, out, x, w, scales, zeros, bias, T, C, OC, gs, act);
      break;
    case 16:
      gemm_f32_body<16>(sA, sB, out, x, w, scales, zeros, bias, T, C, OC, gs, act);
      break;
    case 8:
      gemm_f32_body<8>(sA, sB, out, x, w, scales, zeros, bias, T, C, OC, gs, act);
      break;
    default:
      gemm_f32_body<4>(sA, sB, out, x, w, scales, zeros, bias, T, C, OC, gs, act);
  }
}

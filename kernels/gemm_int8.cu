// gemm_int8.cu — W8A8: int8 activations (quant_act_rows) × int8 weight codes on the tensor cores
// (mma.sync m16n8k32, ptx.cuh), exact int32 dot products per weight group, one float epilogue:
//
//   out[t, n] = act(inv_t · Σ_grp ( (1/s_g)·dot_grp(t, n) − (z_g/s_g)·qsum[t, grp] ) + bias[n])
//
// with dot_grp the int32 dot of qa(t, ·) and the codes of row n over group grp, g = (n·C + grp·gw)/gs
// and gw = min(gs, C) the group width inside a row (cpu.w8a8Linear's numerics). Weights (OC, C)
// int8 or (OC, C/2) packed int4 codes, as quantize.Tensor; any T, C, OC (ragged tiles are
// zero-padded in shared memory); gw must be C or a multiple of 32.
#include "common.cuh"
#include "ptx.cuh"

#define W8_BM 32   // tokens per block
#define W8_BN 32   // output channels per block
#define W8_BK 32   // k per step (one mma k32)
#define W8_LDS 48  // shared row stride in bytes: 4-byte fragment reads hit 32 distinct banks

// w8_load_tile copies a (32 rows, 32 k) int8 tile into shared memory, zero outside (rows, C):
// 128 threads × 8 bytes. src holds int8 rows of C codes (bits 8) or packed int4 rows (bits 4).
__device__ __forceinline__ void w8_load_tile(signed char* dst /* (32, W8_LDS) */, const unsigned char* src,
                                             int row0, int rows, int k0, int C, int bits) {
  const int r = threadIdx.x >> 2, c = (threadIdx.x & 3) * 8;
  const int row = row0 + r, k = k0 + c;
  signed char* d = dst + r * W8_LDS + c;
  if (bits == 8 && row < rows && k + 8 <= C && (C & 7) == 0) {
    *reinterpret_cast<uint2*>(d) = *reinterpret_cast<const uint2*>(src + (long long)row * C + k);
    return;
  }
#pragma unroll
  for (int j = 0; j < 8; j++)
    d[j] = (row < rows && k + j < C) ? (signed char)gq_code(src, (long long)row * C + k + j, bits) : 0;
}

// gemm_w8a8_body is the kernel; Bug != 0 only in the deliberately broken copies that prove the
// CPU tests catch fragment mistakes (kernels/emu/broken.cu).
template <int Bug>
__device__ __forceinline__ void gemm_w8a8_body(float* out, const signed char* qa, const float* inv, const int* qsum,
                                               const unsigned char* codes, const float* scales, const float* zeros,
                                               const float* bias, int T, int C, int OC, long long gs, int bits,
                                               int act) {
  __shared__ __align__(16) signed char sA[W8_BM * W8_LDS];
  __shared__ __align__(16) signed char sB[W8_BN * W8_LDS];
  const int m0 = blockIdx.y * W8_BM, n0 = blockIdx.x * W8_BN;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int wm = (warp >> 1) * 16, wn = (warp & 1) * 16;  // this warp's 16×16 corner of the tile
  const int g = lane >> 2, t = lane & 3;
  const int gw = gs < (long long)C ? (int)gs : C;
  const int gpr = C / gw;
  int acc[2][4];
  float f[2][4];
#pragma unroll
  for (int j = 0; j < 2; j++)
#pragma unroll
    for (int i = 0; i < 4; i++) acc[j][i] = 0, f[j][i] = 0.0f;
  for (int k0 = 0; k0 < C; k0 += W8_BK) {
    w8_load_tile(sA, reinterpret_cast<const unsigned char*>(qa), m0, T, k0, C, 8);
    w8_load_tile(sB, codes, n0, OC, k0, C, bits);
    __syncthreads();
    unsigned a[4];
#pragma unroll
    for (int i = 0; i < 4; i++)
      a[i] = *reinterpret_cast<const unsigned*>(sA + (wm + g + 8 * (i & 1)) * W8_LDS + 16 * (i >> 1) + 4 * t);
    if (Bug == 1) {
      const unsigned s = a[1];
      a[1] = a[2];
      a[2] = s;
    }
#pragma unroll
    for (int j = 0; j < 2; j++) {
      unsigned b[2];
#pragma unroll
      for (int i = 0; i < 2; i++)
        b[i] = *reinterpret_cast<const unsigned*>(sB + (wn + 8 * j + g) * W8_LDS + 16 * i + 4 * t);
      mma_m16n8k32_s8(acc[j], a, b, acc[j]);
    }
    __syncthreads();  // the tiles are overwritten next step
    if ((k0 + W8_BK) % gw == 0 || k0 + W8_BK >= C) {  // end of a weight group: float epilogue
      const int grp = k0 / gw;
#pragma unroll
      for (int j = 0; j < 2; j++)
#pragma unroll
        for (int i = 0; i < 4; i++) {
          const int m = m0 + wm + g + 8 * (i >> 1), n = n0 + wn + 8 * j + 2 * t + (i & 1);
          if (m < T && n < OC) {
            const long long gi = ((long long)n * C + (long long)grp * gw) / gs;
            const float iv = __fdiv_rn(1.0f, scales[gi]);
            f[j][i] += iv * (float)acc[j][i];
            if (zeros) f[j][i] -= (zeros[gi] * iv) * (float)qsum[(long long)m * gpr + grp];
          }
          acc[j][i] = 0;
        }
    }
  }
#pragma unroll
  for (int j = 0; j < 2; j++)
#pragma unroll
    for (int i = 0; i < 4; i++) {
      const int m = m0 + wm + g + 8 * (i >> 1), n = n0 + wn + 8 * j + 2 * t + (i & 1);
      if (m < T && n < OC) out[(long long)m * OC + n] = gq_act(f[j][i] * inv[m] + (bias ? bias[n] : 0.0f), act);
    }
}

// gemm_w8a8: blockDim (128), grid (ceil(OC/32), ceil(T/32)). qsum (from quant_act_rows with
// g = gw) is needed only with zeros; zeros and bias may be null; act is GQ_ACT_NONE or GQ_ACT_GELU.
extern "C" __global__ void __launch_bounds__(128)
    gemm_w8a8(float* out /* (T, OC) */, const signed char* qa /* (T, C) */, const float* inv /* (T) */,
              const int* qsum /* (T, C/gw) or null */, const unsigned char* codes /* (OC, C) or (OC, C/2) */,
              const float* scales /* (groups) */, const float* zeros /* (groups) or null */,
              const float* bias /* (OC) or null */, int T, int C, int OC, long long gs, int bits, int act) {
  gemm_w8a8_body<0>(out, qa, inv, qsum, codes, scales, zeros, bias, T, C, OC, gs, bits, act);
}

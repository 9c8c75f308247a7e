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

#define W8_BM 64   // tokens per block
#define W8_BN 64   // output channels per block
#define W8_BK 32   // k per step (one mma k32)
#define W8_LDS 48  // shared row stride in bytes: 4-byte fragment reads hit 32 distinct banks

// w8_load_tile copies a (64 rows, 32 k) int8 tile into shared memory, zero outside (rows, C):
// 128 threads × 16 bytes. src holds int8 rows of C codes (bits 8) or packed int4 rows (bits 4).
__device__ __forceinline__ void w8_load_tile(signed char* dst /* (64, W8_LDS) */, const unsigned char* src,
                                             int row0, int rows, int k0, int C, int bits) {
  const int r = threadIdx.x >> 1, c = (threadIdx.x & 1) * 16;
  const int row = row0 + r, k = k0 + c;
  signed char* d = dst + r * W8_LDS + c;
  if (bits == 8 && row < rows && k + 16 <= C && (C & 15) == 0) {
    *reinterpret_cast<uint4*>(d) = *reinterpret_cast<const uint4*>(src + (long long)row * C + k);  // W8_LDS % 16 == 0
    return;
  }
#pragma unroll
  for (int j = 0; j < 16; j++)
    d[j] = (row < rows && k + j < C) ? (signed char)gq_code(src, (long long)row * C + k + j, bits) : 0;
}

// gemm_w8a8_body is the kernel; Bug != 0 only in the deliberately broken copies that prove the
// CPU tests catch fragment mistakes (kernels/emu/broken.cu). Each of the 4 warps computes a 32×32
// corner of the 64×64 tile: 2 (m16) × 4 (n8) mma tiles per k step, so that every A fragment is
// used 4 times and every B fragment twice.
template <int Bug>
__device__ __forceinline__ void gemm_w8a8_body(float* out, const signed char* qa, const float* inv, const int* qsum,
                                               const unsigned char* codes, const float* scales, const float* zeros,
                                               const float* bias, int T, int C, int OC, long long gs, int bits,
                                               int act) {
  __shared__ __align__(16) signed char sA[W8_BM * W8_LDS];
  __shared__ __align__(16) signed char sB[W8_BN * W8_LDS];
  const int m0 = blockIdx.y * W8_BM, n0 = blockIdx.x * W8_BN;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int wm = (warp >> 1) * 32, wn = (warp & 1) * 32;  // this warp's 32×32 corner of the tile
  const int g = lane >> 2, t = lane & 3;
  const int gw = gs < (long long)C ? (int)gs : C;
  const int gpr = C / gw;
  int acc[2][4][4];
  float f[2][4][4];
#pragma unroll
  for (int mi = 0; mi < 2; mi++)
#pragma unroll
    for (int nj = 0; nj < 4; nj++)
#pragma unroll
      for (int i = 0; i < 4; i++) acc[mi][nj][i] = 0, f[mi][nj][i] = 0.0f;
  for (int k0 = 0; k0 < C; k0 += W8_BK) {
    w8_load_tile(sA, reinterpret_cast<const unsigned char*>(qa), m0, T, k0, C, 8);
    w8_load_tile(sB, codes, n0, OC, k0, C, bits);
    __syncthreads();
    unsigned a[2][4];
#pragma unroll
    for (int mi = 0; mi < 2; mi++)
#pragma unroll
      for (int i = 0; i < 4; i++)
        a[mi][i] = *reinterpret_cast<const unsigned*>(sA + (wm + 16 * mi + g + 8 * (i & 1)) * W8_LDS + 16 * (i >> 1) + 4 * t);
    if (Bug == 1) {
      const unsigned s = a[0][1];
      a[0][1] = a[0][2];
      a[0][2] = s;
    }
#pragma unroll
    for (int nj = 0; nj < 4; nj++) {
      unsigned b[2];
#pragma unroll
      for (int i = 0; i < 2; i++)
        b[i] = *reinterpret_cast<const unsigned*>(sB + (wn + 8 * nj + g) * W8_LDS + 16 * i + 4 * t);
#pragma unroll
      for (int mi = 0; mi < 2; mi++) mma_m16n8k32_s8(acc[mi][nj], a[mi], b, acc[mi][nj]);
    }
    __syncthreads();  // the tiles are overwritten next step
    if ((k0 + W8_BK) % gw == 0 || k0 + W8_BK >= C) {  // end of a weight group: float epilogue
      const int grp = k0 / gw;
#pragma unroll
      for (int mi = 0; mi < 2; mi++)
#pragma unroll
        for (int nj = 0; nj < 4; nj++)
#pragma unroll
          for (int i = 0; i < 4; i++) {
            const int m = m0 + wm + 16 * mi + g + 8 * (i >> 1), n = n0 + wn + 8 * nj + 2 * t + (i & 1);
            if (m < T && n < OC) {
              const long long gi = ((long long)n * C + (long long)grp * gw) / gs;
              const float iv = __fdiv_rn(1.0f, scales[gi]);
              f[mi][nj][i] += iv * (float)acc[mi][nj][i];
              if (zeros) f[mi][nj][i] -= (zeros[gi] * iv) * (float)qsum[(long long)m * gpr + grp];
            }
            acc[mi][nj][i] = 0;
          }
    }
  }
#pragma unroll
  for (int mi = 0; mi < 2; mi++)
#pragma unroll
    for (int nj = 0; nj < 4; nj++)
#pragma unroll
      for (int i = 0; i < 4; i++) {
        const int m = m0 + wm + 16 * mi + g + 8 * (i >> 1), n = n0 + wn + 8 * nj + 2 * t + (i & 1);
        if (m < T && n < OC) out[(long long)m * OC + n] = gq_act(f[mi][nj][i] * inv[m] + (bias ? bias[n] : 0.0f), act);
      }
}

// gemm_w8a8: blockDim (128), grid (ceil(OC/64), ceil(T/64)). qsum (from quant_act_rows with
// g = gw) is needed only with zeros; zeros and bias may be null; act is GQ_ACT_NONE or GQ_ACT_GELU.
extern "C" __global__ void __launch_bounds__(128)
    gemm_w8a8(float* out /* (T, OC) */, const signed char* qa /* (T, C) */, const float* inv /* (T) */,
              const int* qsum /* (T, C/gw) or null */, const unsigned char* codes /* (OC, C) or (OC, C/2) */,
              const float* scales /* (groups) */, const float* zeros /* (groups) or null */,
              const float* bias /* (OC) or null */, int T, int C, int OC, long long gs, int bits, int act) {
  gemm_w8a8_body<0>(out, qa, inv, qsum, codes, scales, zeros, bias, T, C, OC, gs, bits, act);
}

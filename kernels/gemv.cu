// gemv.cu — weight-only int8/int4 GEMV for decoding: float activations, codes dequantized in
// registers, never expanded in memory.
//
//   out(T, OC) = x(T, C) · deq(W)ᵀ + bias,   deq(W)[r, k] = (q[r, k] − z_g)·(1/s_g), g = (r·C + k)/gs
//
// W is quantize.Tensor's layout: codes (OC, C) int8, or (OC, C/2) packed int4 (element 2i in the
// low nibble, stored as q+8); one scale (and zero-point) per group of gs consecutive values of the
// flat codes (gs = OC·C per tensor, C per channel, the group size per group).
#include "common.cuh"

#define GEMV_TOK 4  // tokens per warp (grid.y covers T in steps of GEMV_TOK)

// gemv_wo: one warp per output row r, GEMV_TOK tokens per warp, blockDim.x a multiple of 32 (one
// row per warp), grid (ceil(OC / warps per block), ceil(T / GEMV_TOK)). When C is a multiple of 32,
// gs of the chunk size and the pointers 16-byte aligned, each lane reads its codes 16 bytes at a
// time (16 int8 or 32 int4 codes, one group) and x as float4; other shapes take the scalar path.
// zeros and bias may be null.
extern "C" __global__ void gemv_wo(float* out /* (T, OC) */, const float* x /* (T, C) */,
                                   const unsigned char* codes /* (OC, C) int8 or (OC, C/2) int4 */,
                                   const float* scales /* (groups) */, const float* zeros /* (groups) or null */,
                                   const float* bias /* (OC) or null */, int T, int C, int OC, long long gs,
                                   int bits) {
  const int lane = threadIdx.x & 31;
  const int r = blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
  const int t0 = blockIdx.y * GEMV_TOK;
  if (r >= OC || t0 >= T) return;  // uniform per warp
  const int nt = T - t0 < GEMV_TOK ? T - t0 : GEMV_TOK;
  const long long rowe = (long long)r * C;  // flat index of the row's first code
  float acc[GEMV_TOK];
#pragma unroll
  for (int i = 0; i < GEMV_TOK; i++) acc[i] = 0.0f;
  const int per = bits == 8 ? 16 : 32;  // codes per 16-byte load
  const bool vec = C % 32 == 0 && gs % per == 0 && ((unsigned long long)codes & 15) == 0 &&
                   ((unsigned long long)x & 15) == 0;
  if (vec) {
    const unsigned char* rowc = codes + (bits == 8 ? rowe : rowe / 2);
    for (int ch = lane; ch < C / per; ch += 32) {
      const uint4 u = *reinterpret_cast<const uint4*>(rowc + 16 * ch);
      const long long gi = (rowe + (long long)ch * per) / gs;
      const float iv = __fdiv_rn(1.0f, scales[gi]);
      const float z = zeros ? zeros[gi] : 0.0f;
      const unsigned wd[4] = {u.x, u.y, u.z, u.w};
      float w[32];
      if (bits == 8) {
#pragma unroll
        for (int j = 0; j < 16; j++) w[j] = ((float)(signed char)(wd[j >> 2] >> (8 * (j & 3))) - z) * iv;
      } else {
#pragma unroll
        for (int j = 0; j < 32; j++) w[j] = ((float)((int)((wd[j >> 3] >> (4 * (j & 7))) & 15) - 8) - z) * iv;
      }
#pragma unroll
      for (int tt = 0; tt < GEMV_TOK; tt++) {
        if (tt >= nt) break;
        const float4* xv = reinterpret_cast<const float4*>(x + (long long)(t0 + tt) * C + (long long)ch * per);
        float s = acc[tt];
        for (int j4 = 0; j4 < per / 4; j4++) {
          const float4 a = xv[j4];
          s += w[4 * j4] * a.x + w[4 * j4 + 1] * a.y + w[4 * j4 + 2] * a.z + w[4 * j4 + 3] * a.w;
        }
        acc[tt] = s;
      }
    }
  } else {
    for (int k = lane; k < C; k += 32) {
      const long long gi = (rowe + k) / gs;
      const float z = zeros ? zeros[gi] : 0.0f;
      const float w = ((float)gq_code(codes, rowe + k, bits) - z) * __fdiv_rn(1.0f, scales[gi]);
#pragma unroll
      for (int tt = 0; tt < GEMV_TOK; tt++)
        if (tt < nt) acc[tt] += w * x[(long long)(t0 + tt) * C + k];
    }
  }
#pragma unroll
  for (int tt = 0; tt < GEMV_TOK; tt++) {
    if (tt >= nt) break;
    const float s = gq_warp_sum(acc[tt]);
    if (lane == 0) out[(long long)(t0 + tt) * OC + r] = s + (bias ? bias[r] : 0.0f);
  }
}

// gemv.cu — GEMV for decoding, every weight format: float activations, weights read once per
// GEMV_TOK tokens and converted in registers, never expanded in memory.
//
//   out(T, OC) = act(x(T, C) · deq(W)ᵀ + bias),   deq(W)[r, k] = (q[r, k] − z_g)·(1/s_g), g = (r·C + k)/gs
//
// W is (OC, C) float32 (bits 32), IEEE half (bits 16), or quantize.Tensor's codes: int8, or packed
// int4 (element 2i in the low nibble, stored as q+8), one scale (and zero-point) per group of gs
// consecutive values of the flat codes (gs = OC·C per tensor, C per channel, the group size per
// group; ignored for float weights).
#include "common.cuh"

#define GEMV_TOK 4     // tokens per warp (grid.y covers T in steps of GEMV_TOK)
#define GEMV_UNROLL 4  // 16-byte weight loads in flight per lane

// gemv_unpack converts the 16 bytes u into the 128/BITS weights they hold.
template <int BITS>
__device__ __forceinline__ void gemv_unpack(float* w, const uint4 u, float z, float iv) {
  const unsigned wd[4] = {u.x, u.y, u.z, u.w};
  if (BITS == 32) {
#pragma unroll
    for (int j = 0; j < 4; j++) w[j] = __int_as_float((int)wd[j]);
  } else if (BITS == 16) {
#pragma unroll
    for (int j = 0; j < 8; j++) w[j] = cvt_f32_f16((unsigned short)(wd[j >> 1] >> (16 * (j & 1))));
  } else if (BITS == 8) {
#pragma unroll
    for (int j = 0; j < 16; j++) w[j] = ((float)(signed char)(wd[j >> 2] >> (8 * (j & 3))) - z) * iv;
  } else {
#pragma unroll
    for (int j = 0; j < 32; j++) w[j] = ((float)((int)((wd[j >> 3] >> (4 * (j & 7))) & 15) - 8) - z) * iv;
  }
}

// gemv_body: one warp per output row r, GEMV_TOK tokens per warp. When each row is a whole number
// of 16-byte chunks lying in one group, and the pointers are 16-byte aligned, each lane reads the
// weights 16 bytes at a time and x as float4; other shapes take the scalar path.
template <int BITS>
__device__ __forceinline__ void gemv_body(float* out, const float* x, const unsigned char* w, const float* scales,
                                          const float* zeros, const float* bias, int T, int C, int OC, long long gs,
                                          int act) {
  constexpr int PER = 128 / BITS;  // weights per 16-byte load
  const int lane = threadIdx.x & 31;
  const int r = blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
  const int t0 = blockIdx.y * GEMV_TOK;
  if (r >= OC || t0 >= T) return;  // uniform per warp
  const int nt = T - t0 < GEMV_TOK ? T - t0 : GEMV_TOK;
  const long long rowe = (long long)r * C;  // flat index of the row's first weight
  float acc[GEMV_TOK];
#pragma unroll
  for (int i = 0; i < GEMV_TOK; i++) acc[i] = 0.0f;
  const bool vec = C % PER == 0 && (BITS >= 16 || gs % PER == 0) && ((unsigned long long)w & 15) == 0 &&
                   ((unsigned long long)x & 15) == 0;
  if (vec) {
    const uint4* roww = reinterpret_cast<const uint4*>(w + rowe * BITS / 8);
    const int nch = C / PER;
    // GEMV_UNROLL chunks per lane are loaded before any is used: more bytes in flight per warp,
    // which is what a bandwidth-bound GEMV needs.
    for (int ch0 = lane; ch0 < nch; ch0 += 32 * GEMV_UNROLL) {
      uint4 u[GEMV_UNROLL];
#pragma unroll
      for (int i = 0; i < GEMV_UNROLL; i++)
        if (ch0 + 32 * i < nch) u[i] = roww[ch0 + 32 * i];
#pragma unroll
      for (int i = 0; i < GEMV_UNROLL; i++) {
        const int ch = ch0 + 32 * i;
        if (ch >= nch) break;
        float z = 0.0f, iv = 1.0f;
        if (BITS <= 8) {
          const long long gi = (rowe + (long long)ch * PER) / gs;
          iv = __fdiv_rn(1.0f, scales[gi]);
          if (zeros) z = zeros[gi];
        }
        float wv[PER];
        gemv_unpack<BITS>(wv, u[i], z, iv);
#pragma unroll
        for (int tt = 0; tt < GEMV_TOK; tt++) {
          if (tt >= nt) break;
          const float4* xv = reinterpret_cast<const float4*>(x + (long long)(t0 + tt) * C + (long long)ch * PER);
          float s = acc[tt];
#pragma unroll
          for (int j4 = 0; j4 < PER / 4; j4++) {
            const float4 a = xv[j4];
            s += wv[4 * j4] * a.x + wv[4 * j4 + 1] * a.y + wv[4 * j4 + 2] * a.z + wv[4 * j4 + 3] * a.w;
          }
          acc[tt] = s;
        }
      }
    }
  } else {
    for (int k = lane; k < C; k += 32) {
      const float wk = gq_weight_iv<BITS>(w, scales, zeros, gs, rowe + k);
#pragma unroll
      for (int tt = 0; tt < GEMV_TOK; tt++)
        if (tt < nt) acc[tt] += wk * x[(long long)(t0 + tt) * C + k];
    }
  }
#pragma unroll
  for (int tt = 0; tt < GEMV_TOK; tt++) {
    if (tt >= nt) break;
    const float s = gq_warp_sum(acc[tt]);
    if (lane == 0) out[(long long)(t0 + tt) * OC + r] = gq_act(s + (bias ? bias[r] : 0.0f), act);
  }
}

// gemv: blockDim.x a multiple of 32 (one row per warp), grid (ceil(OC / warps per block),
// ceil(T / GEMV_TOK)). scales, zeros (quantized weights) and bias may be null; act is
// GQ_ACT_NONE or GQ_ACT_GELU (the fused bias + GELU of GPT-2's MLP).
extern "C" __global__ void gemv(float* out /* (T, OC) */, const float* x /* (T, C) */,
                                const unsigned char* w /* (OC, C) in `bits` bits */, const float* scales /* (groups) */,
                                const float* zeros /* (groups) or null */, const float* bias /* (OC) or null */, int T,
                                int C, int OC, long long gs, int bits, int act) {
  switch (bits) {
    case 32:
      gemv_body<32>(out, x, w, scales, zeros, bias, T, C, OC, gs, act);
      break;
    case 16:
      gemv_body<16>(out, x, w, scales, zeros, bias, T, C, OC, gs, act);
      break;
    case 8:
      gemv_body<8>(out, x, w, scales, zeros, bias, T, C, OC, gs, act);
      break;
    default:
      gemv_body<4>(out, x, w, scales, zeros, bias, T, C, OC, gs, act);
  }
}

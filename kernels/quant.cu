// quant.cu — quantize and dequantize on the device, bit-identical to package quantize.
//
// Shapes: a tensor is N float values in row-major order, cut into G = N/gs groups of gs
// consecutive values (gs = N per tensor, C per channel, the group size per group). Codes are
// int8 bytes (N) or packed int4 (ceil(N/2) bytes, element 2i in the low nibble of byte i, each
// stored as q+8), scales and zero-points one float per group, exactly as quantize.Tensor.
//
// Quantizing is four launches with no host round trip: quant_minmax_init, quant_minmax (per group
// min and max with warp shuffles and atomicMin/atomicMax on order-preserving float bits),
// quant_params (scale and zero-point per group), quant_encode. The arithmetic is quantize's, one
// IEEE float32 rounding per operation (the _rn intrinsics forbid FMA contraction):
//   absmax:     s = (1/max|x|)·num (two roundings, as PyTorch's num / tensor), q = rint(x·s)
//   zero-point: s = (1/(max−min))·num, z = rint(−s·min − 2^(bits−1)), q = rint(x·s + z)
// clamped to [−qmax, qmax] (absmax) or [−2^(bits−1), 2^(bits−1)−1]; max|x| = 0 gives s = 1,
// max = min a range of 1, a scale above FLT_MAX is clamped to it. A group holding NaN or ±Inf, or
// whose range overflows, gets scale and zero-point NaN (quantize.Quantize reports an error
// instead; callers check the scales).
#include "common.cuh"

// quant_minmax_init sets every group's (min, max) to (+Inf, −Inf) in ordered-int form.
extern "C" __global__ void quant_minmax_init(int* minmax /* (G, 2) */, int G) {
  int g = blockIdx.x * blockDim.x + threadIdx.x;
  if (g >= G) return;
  minmax[2 * g] = gq_ord(__int_as_float(0x7f800000));      // +Inf
  minmax[2 * g + 1] = gq_ord(__int_as_float(0xff800000));  // −Inf
}

// quant_minmax folds x into minmax: each warp scans one segment of at most seg values lying in a
// single group and merges its min and max with atomics. blockDim.x must be a multiple of 32; the
// grid covers G·ceil(gs/seg) warps.
extern "C" __global__ void quant_minmax(int* minmax /* (G, 2) */, const float* x /* (N) */, long long N,
                                        long long gs, int seg) {
  const long long warp = ((long long)blockIdx.x * blockDim.x + threadIdx.x) / 32;
  const int lane = threadIdx.x & 31;
  const long long spg = (gs + seg - 1) / seg;
  if (warp >= (N / gs) * spg) return;  // uniform per warp
  const long long g = warp / spg;
  const long long lo = g * gs + (warp % spg) * seg;
  const long long hi = lo + seg < (g + 1) * gs ? lo + seg : (g + 1) * gs;
  float mn = __int_as_float(0x7f800000), mx = __int_as_float(0xff800000);
  int bad = 0;
  for (long long e = lo + lane; e < hi; e += 32) {
    const float v = x[e];
    bad |= !(fabsf(v) <= 3.402823466e38f);  // NaN or ±Inf
    mn = fminf(mn, v);
    mx = fmaxf(mx, v);
  }
  for (int o = 16; o > 0; o >>= 1) {
    mn = fminf(mn, __shfl_xor_sync(0xffffffffu, mn, o));
    mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, o));
  }
  bad = __any_sync(0xffffffffu, bad);
  if (lane == 0) {
    atomicMin(&minmax[2 * g], gq_ord(mn));
    atomicMax(&minmax[2 * g + 1], bad ? 0x7fffffff : gq_ord(mx));  // 0x7fffffff: a NaN above all
  }
}

// gq_divide is num/d as PyTorch computes `num / tensor`: (1/d)·num, rounded twice, clamped to
// FLT_MAX (quantize.divide).
__device__ __forceinline__ float gq_divide(float num, float d) {
  const float s = __fmul_rn(__frcp_rn(d), num);
  return s > 3.402823466e38f ? 3.402823466e38f : s;
}

// quant_params turns each group's (min, max) into its scale and (zero-point scheme) zero-point.
// num is the scale numerator (127/7 absmax, 255/15 zero-point, 100/200 for the int8 article
// preset), offset 2^(bits−1) (zero-point only); zeros is null for absmax.
extern "C" __global__ void quant_params(float* scales /* (G) */, float* zeros /* (G) or null */,
                                        const int* minmax /* (G, 2) */, int G, int scheme, float num,
                                        float offset) {
  const int g = blockIdx.x * blockDim.x + threadIdx.x;
  if (g >= G) return;
  const float mn = gq_unord(minmax[2 * g]), mx = gq_unord(minmax[2 * g + 1]);
  const float nan = __int_as_float(0x7fffffff);
  if (scheme == GQ_ABSMAX) {
    const float m = fmaxf(-mn, mx);
    scales[g] = mx != mx ? nan : m == 0.0f ? 1.0f : gq_divide(num, m);
    return;
  }
  float r = __fsub_rn(mx, mn);
  if (!(fabsf(r) <= 3.402823466e38f)) {  // NaN input or overflowing range
    scales[g] = nan;
    zeros[g] = nan;
    return;
  }
  if (r == 0.0f) r = 1.0f;
  const float s = gq_divide(num, r);
  scales[g] = s;
  zeros[g] = rintf(__fsub_rn(__fmul_rn(-s, mn), offset));
}

__device__ __forceinline__ int gq_encode1(const float* x, const float* scales, const float* zeros, long long e,
                                          long long gs, float lo, float hi) {
  const long long g = e / gs;
  float v = __fmul_rn(x[e], scales[g]);
  if (zeros) v = __fadd_rn(v, zeros[g]);
  return (int)fminf(fmaxf(rintf(v), lo), hi);
}

// quant_encode writes the codes of x (one thread per output byte, grid-stride). zeros is null
// for absmax.
extern "C" __global__ void quant_encode(unsigned char* codes /* (N) int8 or (ceil(N/2)) int4 */,
                                        const float* x /* (N) */, const float* scales /* (G) */,
                                        const float* zeros /* (G) or null */, long long N, long long gs,
                                        int bits) {
  const int half = 1 << (bits - 1);
  const float lo = zeros ? -(float)half : -(float)(half - 1), hi = (float)(half - 1);
  const long long nbytes = bits == 8 ? N : (N + 1) / 2;
  for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < nbytes;
       i += (long long)gridDim.x * blockDim.x) {
    if (bits == 8) {
      codes[i] = (unsigned char)(signed char)gq_encode1(x, scales, zeros, i, gs, lo, hi);
      continue;
    }
    const int l = gq_encode1(x, scales, zeros, 2 * i, gs, lo, hi) + 8;
    const int h = 2 * i + 1 < N ? gq_encode1(x, scales, zeros, 2 * i + 1, gs, lo, hi) + 8 : 0;
    codes[i] = (unsigned char)(l | (h << 4));
  }
}

// dequant writes out[e] = (q_e − z_g)/s_g (quantize.Tensor.Dequantize, exactly); zeros is null for
// absmax.
extern "C" __global__ void dequant(float* out /* (N) */, const unsigned char* codes /* (N) or (ceil(N/2)) */,
                                   const float* scales /* (G) */, const float* zeros /* (G) or null */,
                                   long long N, long long gs, int bits) {
  for (long long e = (long long)blockIdx.x * blockDim.x + threadIdx.x; e < N; e += (long long)gridDim.x * blockDim.x) {
    const long long g = e / gs;
    const float z = zeros ? zeros[g] : 0.0f;
    out[e] = __fdiv_rn(__fsub_rn((float)gq_code(codes, e, bits), z), scales[g]);
  }
}

// gq_block_absmax returns the maximum of the block's m ≥ 0 (every thread gets it).
__device__ __forceinline__ float gq_block_absmax(float m) {
  __shared__ float red[32];
  return gq_block_reduce(m, red, 0.0f, GqMax{});
}

// quant_act_rows quantizes activations per token for W8A8 (cpu.quantizeActs): one block per row t,
// scale_t = 127/max|x_t| (one IEEE division; 1 for an all-zero row), qa = clamp(rint(x·scale_t),
// ±127), inv_t = 1/scale_t, and with qsum non-null the sum of each row's codes over groups of g
// (the zero-point correction of gemm_w8a8). blockDim.x a multiple of 32.
extern "C" __global__ void quant_act_rows(signed char* qa /* (T, C) */, float* inv /* (T) */,
                                          int* qsum /* (T, C/g) or null */, const float* x /* (T, C) */, int T,
                                          int C, int g) {
  const int t = blockIdx.x;
  if (t >= T) return;  // uniform per block
  const float* xr = x + (long long)t * C;
  signed char* qr = qa + (long long)t * C;
  float m = 0.0f;
  for (int k = threadIdx.x; k < C; k += blockDim.x) m = fmaxf(m, fabsf(xr[k]));
  m = gq_block_absmax(m);
  const float scale = m > 0.0f ? __fdiv_rn(127.0f, m) : 1.0f;
  if (threadIdx.x == 0) inv[t] = __fdiv_rn(1.0f, scale);
  for (int k = threadIdx.x; k < C; k += blockDim.x)
    qr[k] = (signed char)(int)fminf(fmaxf(rintf(__fmul_rn(xr[k], scale)), -127.0f), 127.0f);
  if (!qsum) return;
  __syncthreads();  // the block's codes are in global memory
  const int gpr = C / g;
  for (int j = threadIdx.x; j < gpr; j += blockDim.x) {
    int s = 0;
    for (int k = j * g; k < (j + 1) * g; k++) s += qr[k];
    qsum[(long long)t * gpr + j] = s;
  }
}

// norm.cu — the element-wise and per-row ops of the GPT-2 forward pass, twins of package cpu's
// Backend (Embed, LayerNorm, Add, GELU, NLL) plus the fused residual add + LayerNorm. Activations
// are float32, row-major: T rows (tokens) of C channels, V logits per row for nll.
//
// Positions are read from device memory (pos[0] = pos0), never passed by value, so that a
// captured CUDA graph replays with a new position by rewriting one int32. Token ids and pos0 are
// not range-checked on the device: the caller guarantees 0 ≤ tokens[t] < vocabulary rows and
// pos0 + T ≤ position rows.
//
// Numerics: embed is bit-exact (one IEEE addition of the two dequantized values, as cpu.Embed).
// layernorm sums in float32 (per-thread partial sums, then a tree), so it differs from the CPU's
// sequential or 16-lane sums by a few ulp of the row's magnitude; gelu uses tanhf (CUDA's, within
// 2 ulp; the CPU has its own e^x-based tanh); nll sums e^(l − max) in double. On the GPU nvcc may
// contract a*b+c into an FMA where no _rn intrinsic forbids it (only more accurate).
#include "common.cuh"

// embed writes out[t, c] = wte[tokens[t], c] + wpe[pos0 + t, c] (grid-stride over T·C). Each
// table is a weight in any format gq_weight reads (bits 32, 16, 8, 4), passed as its five fields.
extern "C" __global__ void embed(float* out /* (T, C) */, const int* tokens /* (T) */, const int* pos /* (1): pos0 */,
                                 const void* wte, const float* wte_scales, const float* wte_zeros, long long wte_gs,
                                 int wte_bits, const void* wpe, const float* wpe_scales, const float* wpe_zeros,
                                 long long wpe_gs, int wpe_bits, int T, int C) {
  const long long pos0 = pos[0];
  const long long n = (long long)T * C;
  for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x) {
    const long long t = i / C, c = i - t * C;
    const float a = gq_weight(wte, wte_scales, wte_zeros, wte_gs, wte_bits, (long long)tokens[t] * C + c);
    const float b = gq_weight(wpe, wpe_scales, wpe_zeros, wpe_gs, wpe_bits, (pos0 + t) * C + c);
    out[i] = __fadd_rn(a, b);
  }
}

// norm_row writes o = (x − mean)·rstd·w + b over one row of C values, two passes over x (mean,
// then the variance of the deviations), as cpu.layerNormVec. Every thread reads back only the
// elements it wrote itself, so x may have been updated by the same thread just before (and o may
// be x).
__device__ __forceinline__ void norm_row(float* o, const float* x, const float* w, const float* b, int C, float sum,
                                         float eps, float* red) {
  const float mean = __fdiv_rn(gq_block_sum(sum, red), (float)C);
  float v = 0.0f;
  for (int c = threadIdx.x; c < C; c += blockDim.x) {
    const float d = __fsub_rn(x[c], mean);
    v = __fadd_rn(v, __fmul_rn(d, d));
  }
  const float var = __fdiv_rn(gq_block_sum(v, red), (float)C);
  const float rstd = __fdiv_rn(1.0f, sqrtf(__fadd_rn(var, eps)));
  for (int c = threadIdx.x; c < C; c += blockDim.x) o[c] = (x[c] - mean) * rstd * w[c] + b[c];
}

// layernorm: out[t] = LayerNorm(in[t]) with gain w and bias b (C each); one block per row,
// blockDim.x a multiple of 32.
extern "C" __global__ void layernorm(float* out /* (T, C) */, const float* in /* (T, C) */, const float* w,
                                     const float* b, int T, int C, float eps) {
  __shared__ float red[32];
  const int t = blockIdx.x;
  if (t >= T) return;  // uniform per block
  const float* x = in + (long long)t * C;
  float s = 0.0f;
  for (int c = threadIdx.x; c < C; c += blockDim.x) s = __fadd_rn(s, x[c]);
  norm_row(out + (long long)t * C, x, w, b, C, s, eps, red);
}

// add_layernorm is the residual add fused with the next LayerNorm: x[t] += y[t] (written back to
// x), then out[t] = LayerNorm(x[t]). One block per row, blockDim.x a multiple of 32.
extern "C" __global__ void add_layernorm(float* x /* (T, C) */, const float* y /* (T, C) */, float* out /* (T, C) */,
                                         const float* w, const float* b, int T, int C, float eps) {
  __shared__ float red[32];
  const int t = blockIdx.x;
  if (t >= T) return;
  float* xr = x + (long long)t * C;
  const float* yr = y + (long long)t * C;
  float s = 0.0f;
  for (int c = threadIdx.x; c < C; c += blockDim.x) {
    const float v = __fadd_rn(xr[c], yr[c]);
    xr[c] = v;
    s = __fadd_rn(s, v);
  }
  norm_row(out + (long long)t * C, xr, w, b, C, s, eps, red);
}

// add: x[i] += y[i] (grid-stride; exact).
extern "C" __global__ void add(float* x, const float* y, long long n) {
  for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x)
    x[i] = __fadd_rn(x[i], y[i]);
}

// gelu applies GPT-2's gelu_new in place (common.cuh gq_gelu, as the linear kernels' epilogue):
// 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))).
extern "C" __global__ void gelu(float* x, long long n) {
  for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x)
    x[i] = gq_gelu(x[i]);
}

// nll writes dst[t] = −log softmax(logits[t])[targets[t]] = max + log Σ e^(l − max) − l[target],
// the sum of the float32 exponentials taken in double; NaN for a target outside [0, V). One block
// per row, blockDim.x a multiple of 32.
extern "C" __global__ void nll(double* dst /* (T) */, const float* logits /* (T, V) */, const int* targets /* (T) */,
                               int T, int V) {
  __shared__ float redf[32];
  __shared__ double redd[32];
  const int t = blockIdx.x;
  if (t >= T) return;
  const float* row = logits + (long long)t * V;
  float m = __int_as_float(0xff800000);
  for (int c = threadIdx.x; c < V; c += blockDim.x) m = fmaxf(m, row[c]);
  m = gq_block_reduce(m, redf, __int_as_float(0xff800000), GqMax{});  // −Inf fills
  double s = 0.0;
  for (int c = threadIdx.x; c < V; c += blockDim.x) s += (double)expf(__fsub_rn(row[c], m));
  s = gq_block_reduce(s, redd, 0.0, GqSum{});
  if (threadIdx.x == 0) {
    const int tg = targets[t];
    dst[t] = tg >= 0 && tg < V ? (double)m + log(s) - (double)row[tg] : (double)__int_as_float(0x7fffffff);
  }
}

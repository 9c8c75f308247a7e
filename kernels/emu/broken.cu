// broken.cu — deliberately wrong kernels, compiled only into the CPU emulator (tag cudaemu) to
// prove that the tests catch each kind of bug (emu_test.go, TestBrokenKernelsAreCaught). Never
// part of the PTX.
#include "../common.cuh"

// broken_quant_act_rows_nosync is quant_act_rows without the __syncthreads between the per-warp
// maxima being written to shared memory and warp 0 reading them.
__device__ __forceinline__ float broken_block_absmax(float m) {
  __shared__ float red[32];
  __shared__ float all;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  m = gq_warp_max(m);
  if (lane == 0) red[warp] = m;
  // BUG: missing __syncthreads();
  if (warp == 0) {
    m = gq_warp_max(lane < (int)(blockDim.x >> 5) ? red[lane] : 0.0f);
    if (lane == 0) all = m;
  }
  __syncthreads();
  return all;
}
extern "C" __global__ void broken_quant_act_rows_nosync(signed char* qa, float* inv, int* qsum, const float* x, int T,
                                                        int C, int g) {
  const int t = blockIdx.x;
  if (t >= T) return;
  const float* xr = x + (long long)t * C;
  float m = 0.0f;
  for (int k = threadIdx.x; k < C; k += blockDim.x) m = fmaxf(m, fabsf(xr[k]));
  m = broken_block_absmax(m);
  const float scale = m > 0.0f ? __fdiv_rn(127.0f, m) : 1.0f;
  if (threadIdx.x == 0) inv[t] = __fdiv_rn(1.0f, scale);
  for (int k = threadIdx.x; k < C; k += blockDim.x)
    qa[(long long)t * C + k] = (signed char)(int)fminf(fmaxf(rintf(__fmul_rn(xr[k], scale)), -127.0f), 127.0f);
  (void)qsum;
  (void)g;
}

// broken_gemm_w8a8_swapfrag is gemm_w8a8 with A fragment registers 1 and 2 swapped.
extern "C" __global__ void broken_gemm_w8a8_swapfrag(float* out, const signed char* qa, const float* inv,
                                                     const int* qsum, const unsigned char* codes, const float* scales,
                                                     const float* zeros, const float* bias, int T, int C, int OC,
                                                     long long gs, int bits) {
  gemm_w8a8_body<1>(out, qa, inv, qsum, codes, scales, zeros, bias, T, C, OC, gs, bits, GQ_ACT_NONE);
}

// broken_dequant_offbyone is dequant with `e <= N`: it writes one float past the output.
extern "C" __global__ void broken_dequant_offbyone(float* out, const unsigned char* codes, const float* scales,
                                                   const float* zeros, long long N, long long gs, int bits) {
  for (long long e = (long long)blockIdx.x * blockDim.x + threadIdx.x; e <= N; e += (long long)gridDim.x * blockDim.x) {
    const long long g = (e < N ? e : N - 1) / gs;
    const float z = zeros ? zeros[g] : 0.0f;
    out[e] = __fdiv_rn(__fsub_rn((float)gq_code(codes, e < N ? e : N - 1, bits), z), scales[g]);
  }
}

// broken_deadlock: lane 0 waits in a full-warp shuffle while its warp waits at __syncthreads.
extern "C" __global__ void broken_deadlock(float* out) {
  float v = threadIdx.x;
  if (threadIdx.x == 0) v = __shfl_sync(0xffffffffu, v, 1);
  __syncthreads();
  out[threadIdx.x] = v;
}

// broken_divergent_barrier: odd and even threads wait at different __syncthreads.
extern "C" __global__ void broken_divergent_barrier(float* out) {
  if (threadIdx.x & 1) {
    __syncthreads();
  } else {
    __syncthreads();
  }
  out[threadIdx.x] = 1.0f;
}

// broken_shared_oob writes one element past a __shared__ array: invisible to the plain emulator
// (it lands in a neighbour), caught by ASan in the sanitizer build (__shared__ is a plain static).
extern "C" __global__ void broken_shared_oob(float* out) {
  __shared__ float sh[64];
  sh[threadIdx.x + 1] = 1.0f;  // BUG: thread 63 writes sh[64]
  __syncthreads();
  out[threadIdx.x] = sh[threadIdx.x];
}

// attention.cu — causal multi-head self-attention of GPT-2 over a key/value cache, the twin of
// cpu.Backend.Attention, in one launch: it appends the T new keys and values (columns C:2C and
// 2C:3C of qkv) to the caches at rows pos0.. and computes, for every head h (columns
// [h·hd, (h+1)·hd), hd = C/nHead) and query row t, softmax(q·kᵀ/√hd) over positions [0, pos0+t]
// and the weighted sum of the values (new positions read from qkv, older ones from the caches).
//
// pos0 is read from device memory (pos[0]) and no grid depends on it, so the same launches serve
// every position of a replayed CUDA graph. The caller guarantees pos0 + T ≤ the cache rows (not
// checkable here). Shapes: hd a multiple of 4, at most ATT_HDMAX; qkv, k, v and out 16-byte
// aligned (float4 loads); the launcher (kernels.Attention) checks both.
//
// The softmax is online (streaming): keys are visited in chunks, each row keeps its running
// maximum m of the raw scores, the running sum l of e^((s−m)·scale) and the unnormalized output,
// rescaled by e^((m_old−m_new)·scale) when the maximum grows, so any context length works with a
// fixed amount of shared memory. Scores and sums are float32, as on the CPU.
//
// Two schedules, picked by the launcher through the grid (uniform per launch, never by pos0):
//   - row blocks, grid (nHead, T), any blockDim.x multiple of 32 up to 32·ATT_ROW_WARPS (decoding,
//     small T): one block per (head, query row); its warps split the keys in blocks of 32 (one key
//     per lane for q·k, reading K rows straight from global memory with float4 loads; one value
//     column per lane for p·V, coalesced), each warp with its own online softmax, merged through
//     shared memory at the end.
//   - tile blocks, grid (nHead, ceil(T/ATT_BR)), blockDim.x = 128 (prefill): one block per (head,
//     ATT_BR query rows); chunks of ATT_KC keys and values are staged in shared memory once for
//     all the tile's rows, scores come from 2×2 register tiles of float4 dot products, and each
//     thread accumulates up to 4 rows × 4 value columns.
// What limits it: decoding runs nHead·T blocks, so at T = 1 only nHead SMs work and each streams
// its head's whole cache (splitting the keys over blocks, flash-decoding style, needs a workspace
// and a combine step: not done); the tile path computes on CUDA cores in float32 (no tensor
// cores) and the masked part of the diagonal chunk is computed and discarded.
#include "common.cuh"

#define ATT_HDMAX 128     // largest head size
#define ATT_BR 16         // query rows per tile block
#define ATT_KC 32         // keys per staged chunk (tile blocks)
#define ATT_TILE_THREADS 128
#define ATT_ROW_WARPS 8   // most warps of a row block

// Shared memory, one buffer carved by each schedule (float offsets, all multiples of 4).
#define ATT_Q 0                                      // tile: Q (ATT_BR, hd)      row: q (hd)
#define ATT_K (ATT_Q + ATT_BR * ATT_HDMAX)           // tile: K chunk (ATT_KC, hd + 4)
#define ATT_V (ATT_K + ATT_KC * (ATT_HDMAX + 4))     // tile: V chunk (ATT_KC, hd)
#define ATT_S (ATT_V + ATT_KC * ATT_HDMAX)           // tile: scores/probabilities (ATT_BR, ATT_KC + 1)
#define ATT_STAT (ATT_S + ATT_BR * (ATT_KC + 1))     // tile: m, l, alpha per row (3·ATT_BR)
#define ATT_SMEM (ATT_STAT + 4 * ATT_BR)
#define ATT_RP ATT_HDMAX                             // row: p per warp (ATT_ROW_WARPS, 32)
#define ATT_RM (ATT_RP + ATT_ROW_WARPS * 32)         // row: m, l per warp
#define ATT_RACC (ATT_RM + 2 * ATT_ROW_WARPS)        // row: output per warp (ATT_ROW_WARPS, ATT_HDMAX)
#if ATT_RACC + ATT_ROW_WARPS * ATT_HDMAX > ATT_SMEM
#error "attention.cu: the row schedule does not fit the shared buffer"
#endif

__device__ __forceinline__ float att_dot4(float4 a, float4 b) { return a.x * b.x + a.y * b.y + a.z * b.z + a.w * b.w; }

// att_kv is where key (which 1) or value (which 2) j of head h is read: the cache for the positions
// before pos0, the new rows of qkv for the others. Reading the new ones from qkv lets every block
// store its own rows into the cache in the same launch (att_store) with no block waiting for
// another's stores: one launch per layer instead of two.
__device__ __forceinline__ const float* att_kv(const float* cache, const float* qkv, int j, int pos0, int C, int h,
                                               int hd, int which) {
  return j < pos0 ? cache + (long long)j * C + h * hd : qkv + (long long)(j - pos0) * 3 * C + which * C + h * hd;
}

// att_store copies head h's key and value of new row t into the caches at row pos0 + t.
__device__ __forceinline__ void att_store(float* k, float* v, const float* qkv, int t, int pos0, int C, int h, int hd) {
  const float* src = qkv + (long long)t * 3 * C + h * hd;
  const long long dst = (long long)(pos0 + t) * C + h * hd;
  for (int d = threadIdx.x; d < hd; d += blockDim.x) {
    k[dst + d] = src[C + d];
    v[dst + d] = src[2 * C + d];
  }
}

// att_row: one block per (head blockIdx.x, query row blockIdx.y).
__device__ __forceinline__ void att_row(float* sm, float* out, const float* qkv, float* k, float* v, int pos0, int C,
                                        int hd, float scale) {
  const int h = blockIdx.x, t = blockIdx.y;
  att_store(k, v, qkv, t, pos0, C, h, hd);
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
  const float ninf = __int_as_float(0xff800000);
  float* q = sm + ATT_Q;
  float* P = sm + ATT_RP + warp * 32;
  const float* qg = qkv + (long long)t * 3 * C + h * hd;
  for (int d = threadIdx.x; d < hd; d += blockDim.x) q[d] = qg[d];
  __syncthreads();

  const int n = pos0 + t + 1;  // keys 0 .. pos0+t
  const int nc = hd >> 2;
  const float4* q4 = reinterpret_cast<const float4*>(q);
  float m = ninf, l = 0.0f, acc[4] = {0.0f, 0.0f, 0.0f, 0.0f};  // value columns lane + 32·i
  for (int j0 = warp * 32; j0 < n; j0 += nw * 32) {  // uniform per warp; lane 0's key is valid
    const int j = j0 + lane;
    float s = ninf;
    if (j < n) {
      const float4* kr = reinterpret_cast<const float4*>(att_kv(k, qkv, j, pos0, C, h, hd, 1));
      float a = 0.0f;
      for (int c = 0; c < nc; c++) a += att_dot4(q4[c], __ldg(kr + c));
      s = a;
    }
    const float mn = fmaxf(m, gq_warp_max(s));  // finite
    const float alpha = expf((m - mn) * scale);  // 0 on the first block (m = −Inf)
    const float p = j < n ? expf((s - mn) * scale) : 0.0f;
    l = l * alpha + gq_warp_sum(p);
    m = mn;
    P[lane] = p;
    __syncwarp();
    const int jn = n - j0 < 32 ? n - j0 : 32;
#pragma unroll
    for (int i = 0; i < 4; i++) acc[i] *= alpha;
    for (int jj = 0; jj < jn; jj++) {
      const float pj = P[jj];
      const float* vr = att_kv(v, qkv, j0 + jj, pos0, C, h, hd, 2);
#pragma unroll
      for (int i = 0; i < 4; i++)
        if (lane + 32 * i < hd) acc[i] += pj * __ldg(vr + lane + 32 * i);
    }
    __syncwarp();  // P is rewritten by the next block of keys
  }

  // Merge the warps: out = Σ_w acc_w·f_w / Σ_w l_w·f_w, f_w = e^((m_w − M)·scale).
  float* Mw = sm + ATT_RM;
  float* Lw = Mw + ATT_ROW_WARPS;
  float* Acc = sm + ATT_RACC;
  if (lane == 0) {
    Mw[warp] = m;
    Lw[warp] = l;
  }
#pragma unroll
  for (int i = 0; i < 4; i++)
    if (lane + 32 * i < hd) Acc[warp * ATT_HDMAX + lane + 32 * i] = acc[i];
  __syncthreads();
  float M = ninf;
  for (int w = 0; w < nw; w++) M = fmaxf(M, Mw[w]);
  float* o = out + (long long)t * C + h * hd;
  for (int d = threadIdx.x; d < hd; d += blockDim.x) {
    float num = 0.0f, den = 0.0f;
    for (int w = 0; w < nw; w++) {
      const float f = expf((Mw[w] - M) * scale);  // 0 for a warp that saw no key
      num += Acc[w * ATT_HDMAX + d] * f;
      den += Lw[w] * f;
    }
    o[d] = num * (1.0f / den);
  }
}

// att_tile: one block of ATT_TILE_THREADS threads per (head blockIdx.x, query rows
// blockIdx.y·ATT_BR ..).
__device__ __forceinline__ void att_tile(float* sm, float* out, const float* qkv, float* k, float* v, int pos0, int T,
                                         int C, int hd, float scale) {
  const int h = blockIdx.x, row0 = blockIdx.y * ATT_BR, tid = threadIdx.x;
  const int rows = T - row0 < ATT_BR ? T - row0 : ATT_BR;
  for (int r = 0; r < rows; r++) att_store(k, v, qkv, row0 + r, pos0, C, h, hd);
  const int nc = hd >> 2, ks = hd + 4;  // float4 columns; K row stride (≡ 4 mod 32 for hd % 32 == 0)
  const float ninf = __int_as_float(0xff800000);
  const float4 zero4 = {0.0f, 0.0f, 0.0f, 0.0f};
  float* Qs = sm + ATT_Q;
  float* Ks = sm + ATT_K;
  float* Vs = sm + ATT_V;
  float* S = sm + ATT_S;
  float* Mr = sm + ATT_STAT;
  float* Lr = Mr + ATT_BR;
  float* Ar = Lr + ATT_BR;

  for (int i = tid; i < ATT_BR * nc; i += blockDim.x) {
    const int r = i / nc, c = i - r * nc;
    float4 q = zero4;
    if (r < rows) q = __ldg(reinterpret_cast<const float4*>(qkv + (long long)(row0 + r) * 3 * C + h * hd) + c);
    reinterpret_cast<float4*>(Qs + r * hd)[c] = q;
  }
  if (tid < ATT_BR) {
    Mr[tid] = ninf;
    Lr[tid] = 0.0f;
  }

  const int nk = pos0 + row0 + rows;  // keys attended by the tile's last row
  // Scores: rows qr, qr+8 × keys qk, qk+16 of the chunk.
  const int qr = tid >> 4, qk = tid & 15;
  // Softmax: row sr, keys 4·sj .. 4·sj+3 (the 8 threads of a row are consecutive lanes).
  const int sr = tid >> 3, sj = tid & 7;
  // p·V: value column pc (float4), rows pg + RG·i.
  const int RG = ATT_TILE_THREADS / nc, pc = tid % nc, pg = tid / nc;
  const bool pv = pg < RG;
  float acc[4][4];
#pragma unroll
  for (int i = 0; i < 4; i++) acc[i][0] = acc[i][1] = acc[i][2] = acc[i][3] = 0.0f;

  for (int c0 = 0; c0 < nk; c0 += ATT_KC) {
    const int kn = nk - c0 < ATT_KC ? nk - c0 : ATT_KC;
    __syncthreads();  // the previous chunk is consumed (first time: Q and the row stats are set)
    for (int i = tid; i < ATT_KC * nc; i += blockDim.x) {
      const int j = i / nc, c = i - j * nc;
      float4 kv = zero4, vv = zero4;
      if (j < kn) {
        kv = __ldg(reinterpret_cast<const float4*>(att_kv(k, qkv, c0 + j, pos0, C, h, hd, 1)) + c);
        vv = __ldg(reinterpret_cast<const float4*>(att_kv(v, qkv, c0 + j, pos0, C, h, hd, 2)) + c);
      }
      reinterpret_cast<float4*>(Ks + j * ks)[c] = kv;
      reinterpret_cast<float4*>(Vs + j * hd)[c] = vv;
    }
    __syncthreads();

    {
      const float4* qa = reinterpret_cast<const float4*>(Qs + qr * hd);
      const float4* qb = reinterpret_cast<const float4*>(Qs + (qr + 8) * hd);
      const float4* ka = reinterpret_cast<const float4*>(Ks + qk * ks);
      const float4* kb = reinterpret_cast<const float4*>(Ks + (qk + 16) * ks);
      float s00 = 0.0f, s01 = 0.0f, s10 = 0.0f, s11 = 0.0f;
      for (int c = 0; c < nc; c++) {
        const float4 x0 = qa[c], x1 = qb[c], y0 = ka[c], y1 = kb[c];
        s00 += att_dot4(x0, y0);
        s01 += att_dot4(x0, y1);
        s10 += att_dot4(x1, y0);
        s11 += att_dot4(x1, y1);
      }
      // Causal mask: row r sees keys ≤ pos0 + row0 + r; rows past T see none.
      const int la = qr < rows ? pos0 + row0 + qr : -1, lb = qr + 8 < rows ? pos0 + row0 + qr + 8 : -1;
      const int ja = c0 + qk, jb = c0 + qk + 16;
      S[qr * (ATT_KC + 1) + qk] = ja <= la ? s00 : ninf;
      S[qr * (ATT_KC + 1) + qk + 16] = jb <= la ? s01 : ninf;
      S[(qr + 8) * (ATT_KC + 1) + qk] = ja <= lb ? s10 : ninf;
      S[(qr + 8) * (ATT_KC + 1) + qk + 16] = jb <= lb ? s11 : ninf;
    }
    __syncthreads();

    {
      float* Sr = S + sr * (ATT_KC + 1) + 4 * sj;
      float s[4], mx = ninf;
#pragma unroll
      for (int i = 0; i < 4; i++) {
        s[i] = Sr[i];
        mx = fmaxf(mx, s[i]);
      }
      for (int o = 4; o > 0; o >>= 1) mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, o));
      const float mo = Mr[sr], mn = fmaxf(mo, mx);
      float alpha = 1.0f, sum = 0.0f;
      if (mn != ninf) {  // a row past T has seen no key: p = 0, alpha = 1
        alpha = expf((mo - mn) * scale);
#pragma unroll
        for (int i = 0; i < 4; i++) {
          const float p = expf((s[i] - mn) * scale);  // 0 for masked keys
          Sr[i] = p;
          sum += p;
        }
      } else {
#pragma unroll
        for (int i = 0; i < 4; i++) Sr[i] = 0.0f;
      }
      for (int o = 4; o > 0; o >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, o);
      if (sj == 0) {  // after the shuffles: every lane of the row has read Mr[sr]
        Mr[sr] = mn;
        Lr[sr] = Lr[sr] * alpha + sum;
        Ar[sr] = alpha;
      }
    }
    __syncthreads();

    if (pv) {
#pragma unroll
      for (int i = 0; i < 4; i++) {
        const int r = pg + RG * i;
        if (r < ATT_BR) {
          const float a = Ar[r];
          acc[i][0] *= a;
          acc[i][1] *= a;
          acc[i][2] *= a;
          acc[i][3] *= a;
        }
      }
      const float4* V4 = reinterpret_cast<const float4*>(Vs) + pc;
      for (int j = 0; j < kn; j++) {
        const float4 vv = V4[j * nc];
#pragma unroll
        for (int i = 0; i < 4; i++) {
          const int r = pg + RG * i;
          if (r < ATT_BR) {
            const float p = S[r * (ATT_KC + 1) + j];
            acc[i][0] += p * vv.x;
            acc[i][1] += p * vv.y;
            acc[i][2] += p * vv.z;
            acc[i][3] += p * vv.w;
          }
        }
      }
    }
  }

  if (!pv) return;
#pragma unroll
  for (int i = 0; i < 4; i++) {
    const int r = pg + RG * i;
    if (r < rows) {
      const float inv = 1.0f / Lr[r];
      const float4 o = {acc[i][0] * inv, acc[i][1] * inv, acc[i][2] * inv, acc[i][3] * inv};
      reinterpret_cast<float4*>(out + (long long)(row0 + r) * C + h * hd)[pc] = o;
    }
  }
}

// attention stores the new keys and values of qkv(T, 3C) into the caches k, v (maxT, C) at rows
// pos0.. and writes out(T, C): grid (nHead, T) for row blocks, (nHead, ceil(T/ATT_BR)) with 128
// threads for tile blocks (see the top of the file).
extern "C" __global__ void __launch_bounds__(256) attention(float* out /* (T, C) */, const float* qkv /* (T, 3C) */,
                                                            float* k /* (maxT, C) */, float* v /* (maxT, C) */,
                                                            const int* pos /* (1): pos0 */, int T, int C, int nHead) {
  __shared__ float4 sm4[ATT_SMEM / 4];
  float* sm = reinterpret_cast<float*>(sm4);
  const int hd = C / nHead;
  const int pos0 = pos[0];
  const float scale = (float)(1.0 / sqrt((double)hd));  // as the CPU: float32(1/√hd) from float64
  if ((int)gridDim.y == T)
    att_row(sm, out, qkv, k, v, pos0, C, hd, scale);
  else
    att_tile(sm, out, qkv, k, v, pos0, T, C, hd, scale);
}

// ptx.cuh — every inline-PTX instruction our kernels use, one wrapper each. On the GPU
// (__CUDA_ARCH__) the wrapper is the asm statement; under the CPU emulator (CUDAEMU, see
// kernels/emu/cudaemu.h) it is an emulation written from the PTX ISA's definition, so kernel
// bodies never carry #ifdefs. Each emulation must be confirmed once on a real GPU
// (scripts/device-check.sh); the CPU tests can only prove the kernels against it.
#pragma once

// cvt_f32_f16: the float32 value of the IEEE binary16 bits h (exact: every half is a float).
//   cvt.f32.f16
__device__ __forceinline__ float cvt_f32_f16(unsigned short h) {
#if defined(__CUDA_ARCH__)
  float f;
  asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(h));
  return f;
#elif defined(CUDAEMU)
  const unsigned sign = (unsigned)(h & 0x8000u) << 16, e = (h >> 10) & 31u, m = h & 0x3ffu;
  if (e == 31) return __int_as_float((int)(sign | 0x7f800000u | (m << 13)));  // ±Inf, NaN (payload kept)
  if (e != 0) return __int_as_float((int)(sign | ((e + 112) << 23) | (m << 13)));
  const float v = (float)m * (1.0f / 16777216.0f);  // subnormal: m·2⁻²⁴, exact in float
  return sign ? -v : v;
#else
#error "ptx.cuh: compile with nvcc or with -DCUDAEMU and kernels/emu/cudaemu.h"
#endif
}

// cvt_rn_f16_f32: the IEEE binary16 bits of f rounded to nearest even (overflow to ±Inf, NaN kept).
//   cvt.rn.f16.f32
__device__ __forceinline__ unsigned short cvt_rn_f16_f32(float f) {
#if defined(__CUDA_ARCH__)
  unsigned short h;
  asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(f));
  return h;
#elif defined(CUDAEMU)
  const unsigned x = (unsigned)__float_as_int(f);
  const unsigned sign = (x >> 16) & 0x8000u, ax = x & 0x7fffffffu;
  if (ax > 0x7f800000u) return (unsigned short)(sign | 0x7e00u | ((ax >> 13) & 0x3ffu));  // NaN
  if (ax >= 0x477ff000u) return (unsigned short)(sign | 0x7c00u);  // rounds to ≥ 65520: ±Inf
  if (ax < 0x38800000u) {  // below 2⁻¹⁴: a subnormal half (or 0), m·2⁻²⁴ rounded to nearest even
    const float v = __int_as_float((int)ax) * 16777216.0f;  // exact: a power-of-two scaling
    return (unsigned short)(sign | (unsigned)rintf(v));
  }
  const unsigned r = ax + 0xfffu + ((ax >> 13) & 1u);  // round the 13 dropped bits to nearest even
  return (unsigned short)(sign | ((r - 0x38000000u) >> 13));
#else
#error "ptx.cuh: compile with nvcc or with -DCUDAEMU and kernels/emu/cudaemu.h"
#endif
}

#if defined(CUDAEMU)
// mma_emu emulates a warp-collective mma.sync m16n8kK from the fragment layouts below (A row-major,
// B column-major, each 32-bit register holding EPR consecutive elements along k; elem(reg, j)
// decodes element j): every lane deposits its registers, then computes its own four outputs from
// the whole A and B, located through the layout (not the caller's maths), in k order.
template <int K, int EPR, class Acc, class Elem>
inline void mma_emu(Acc d[4], const unsigned a[4], const unsigned b[2], const Acc c[4], Elem elem) {
  cudaemu::Warp& w = cudaemu::my_warp();
  const int lane = cudaemu::lane_id();
  unsigned* mine = reinterpret_cast<unsigned*>(w.scratch[lane]);
  for (int i = 0; i < 4; i++) mine[i] = a[i];
  for (int i = 0; i < 2; i++) mine[4 + i] = b[i];
  cudaemu::warp_barrier(0xffffffffu, CUDAEMU_SITE);
  if (w.mask != 0xffffffffu) cudaemu::kernel_error("mma.sync with fewer than 32 lanes (ptx.cuh)");
  constexpr int KH = K / 2;  // k covered by one register of a lane's pair
  auto reg = [&](int src, int r) { return reinterpret_cast<const unsigned*>(w.scratch[src])[r]; };
  auto A = [&](int row, int k) { return elem(reg((row & 7) * 4 + (k % KH) / EPR, (row >> 3) + 2 * (k / KH)), k % EPR); };
  auto B = [&](int k, int col) { return elem(reg(col * 4 + (k % KH) / EPR, 4 + k / KH), k % EPR); };
  const int g = lane >> 2, t = lane & 3;
  Acc out[4];
  for (int i = 0; i < 4; i++) {
    const int row = g + 8 * (i >> 1), col = 2 * t + (i & 1);
    Acc s = c[i];
    for (int k = 0; k < K; k++) s += A(row, k) * B(k, col);
    out[i] = s;
  }
  cudaemu::warp_barrier(0xffffffffu, CUDAEMU_SITE);  // nobody overwrites scratch before all read
  for (int i = 0; i < 4; i++) d[i] = out[i];
}
#endif

// mma_m16n8k16_f16: D(16×8, f32) = A(16×16, f16, row) · B(16×8, f16, col) + C(16×8, f32), one
// warp-collective tensor-core instruction (sm_80+):
//   mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32
// Fragment layout (PTX ISA, "Matrix fragments for mma.m16n8k16" with .f16), g = lane>>2,
// t = lane&3, each 32-bit register holding 2 consecutive halves along k (element b = k&1 in the
// low 16 bits for b = 0):
//   a[i] (i<4):  row g + 8·(i&1),      k 8·(i>>1) + 2·t + b
//   b[i] (i<2):  col g,                k 8·i + 2·t + b
//   c[i], d[i]:  row g + 8·(i>>1),     col 2·t + (i&1)
// (the int8 m16n8k32 layout below with 2-byte elements). The emulation sums the 16 exact products
// in k order in float32; the hardware's internal order and rounding may differ, by a few ulp of
// the sum of magnitudes.
__device__ __forceinline__ void mma_m16n8k16_f16(float d[4], const unsigned a[4], const unsigned b[2], const float c[4]) {
#if defined(__CUDA_ARCH__)
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 "
      "{%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%10, %11, %12, %13};\n"
      : "=f"(d[0]), "=f"(d[1]), "=f"(d[2]), "=f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]), "f"(c[0]), "f"(c[1]),
        "f"(c[2]), "f"(c[3]));
#elif defined(CUDAEMU)
  mma_emu<16, 2>(d, a, b, c, [](unsigned r, int j) { return cvt_f32_f16((unsigned short)(r >> (16 * j))); });
#else
#error "ptx.cuh: compile with nvcc or with -DCUDAEMU and kernels/emu/cudaemu.h"
#endif
}

// mma_m16n8k32_s8: D(16×8, s32) = A(16×32, s8, row) · B(32×8, s8, col) + C(16×8, s32), one
// warp-collective tensor-core instruction (sm_80+):
//   mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32
// Fragment layout (PTX ISA, "Matrix fragments for mma.m16n8k32"), with g = lane>>2, t = lane&3,
// each 32-bit register holding 4 consecutive int8 values along k (byte b = k&3):
//   a[i] (i<4):  row g + 8·(i&1),      k 16·(i>>1) + 4·t + b
//   b[i] (i<2):  col g,                k 16·i + 4·t + b
//   c[i], d[i]:  row g + 8·(i>>1),     col 2·t + (i&1)
// All 32 lanes of the warp must call it together.
__device__ __forceinline__ void mma_m16n8k32_s8(int d[4], const unsigned a[4], const unsigned b[2], const int c[4]) {
#if defined(__CUDA_ARCH__)
  asm volatile(
      "mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 "
      "{%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%10, %11, %12, %13};\n"
      : "=r"(d[0]), "=r"(d[1]), "=r"(d[2]), "=r"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]), "r"(c[0]), "r"(c[1]),
        "r"(c[2]), "r"(c[3]));
#elif defined(CUDAEMU)
  mma_emu<32, 4>(d, a, b, c, [](unsigned r, int j) { return (int)(signed char)(r >> (8 * j)); });
#else
#error "ptx.cuh: compile with nvcc or with -DCUDAEMU and kernels/emu/cudaemu.h"
#endif
}

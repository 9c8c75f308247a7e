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
  // Warp-collective: every lane deposits its registers, then each lane computes its own four
  // outputs from the whole A and B, located through the layout above (not the caller's maths).
  cudaemu::Warp& w = cudaemu::my_warp();
  const int lane = cudaemu::lane_id();
  unsigned* mine = reinterpret_cast<unsigned*>(w.scratch[lane]);
  for (int i = 0; i < 4; i++) mine[i] = a[i];
  for (int i = 0; i < 2; i++) mine[4 + i] = b[i];
  cudaemu::warp_barrier(0xffffffffu, CUDAEMU_SITE);
  if (w.mask != 0xffffffffu) cudaemu::kernel_error("mma.sync with fewer than 32 lanes (ptx.cuh)");
  auto A = [&](int row, int k) -> int {
    int reg = (row >> 3) + 2 * (k >> 4);
    int src = (row & 7) * 4 + ((k & 15) >> 2);
    const unsigned* r = reinterpret_cast<const unsigned*>(w.scratch[src]);
    return (signed char)(r[reg] >> (8 * (k & 3)));
  };
  auto B = [&](int k, int col) -> int {
    int reg = k >> 4;
    int src = col * 4 + ((k & 15) >> 2);
    const unsigned* r = reinterpret_cast<const unsigned*>(w.scratch[src]);
    return (signed char)(r[4 + reg] >> (8 * (k & 3)));
  };
  const int g = lane >> 2, t = lane & 3;
  int out[4];
  for (int i = 0; i < 4; i++) {
    int row = g + 8 * (i >> 1), col = 2 * t + (i & 1);
    int s = c[i];
    for (int k = 0; k < 32; k++) s += A(row, k) * B(k, col);
    out[i] = s;
  }
  cudaemu::warp_barrier(0xffffffffu, CUDAEMU_SITE);  // nobody overwrites scratch before all read
  for (int i = 0; i < 4; i++) d[i] = out[i];
#else
#error "ptx.cuh: compile with nvcc or with -DCUDAEMU and kernels/emu/cudaemu.h"
#endif
}

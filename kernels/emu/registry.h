// registry.h — gpuquant's kernels compiled for the CPU (cudaemu.h) and listed by name with their
// argument signatures. Included by emu.cc (the kernels.Device emulator) and by
// driver/driver.cc (the emulated libcuda.so.1), so both run the same kernels the same way.
#pragma once

#include "cudaemu.h"

#include <functional>
#include <string>
#include <tuple>
#include <vector>

#include "../ptx.cuh"
#include "../quant.cu"
#include "../gemv.cu"
#include "../gemm_f32.cu"
#include "../gemm_f16.cu"
#include "../gemm_int8.cu"
#include "../norm.cu"
#include "../attention.cu"
#include "broken.cu"

namespace cudaemu {

// Code is the signature letter of a parameter type: p pointer, i int32, u uint32, l 64-bit
// integer, f float32.
template <class T>
struct Code;
template <>
struct Code<int> {
  static constexpr char c = 'i';
};
template <>
struct Code<unsigned> {
  static constexpr char c = 'u';
};
template <>
struct Code<long> {
  static constexpr char c = 'l';
};
template <>
struct Code<unsigned long> {
  static constexpr char c = 'l';
};
template <>
struct Code<long long> {
  static constexpr char c = 'l';
};
template <>
struct Code<unsigned long long> {
  static constexpr char c = 'l';
};
template <>
struct Code<float> {
  static constexpr char c = 'f';
};
template <class T>
struct Code<T*> {
  static constexpr char c = 'p';
};

// size_of is the byte size of a parameter with signature letter c.
inline size_t size_of(char c) { return c == 'p' || c == 'l' ? 8 : 4; }

// Kernel is one emulated kernel; run takes its arguments packed back to back in signature order.
struct Kernel {
  const char* name;
  std::string sig;
  std::function<std::string(dim3, dim3, const unsigned char*)> run;
};

template <class... A>
Kernel entry(const char* name, void (*fn)(A...)) {
  Kernel k;
  k.name = name;
  k.sig = std::string{Code<A>::c...};
  k.run = [fn](dim3 g, dim3 b, const unsigned char* buf) {
    std::tuple<A...> args;
    size_t off = 0;
    std::apply([&](auto&... a) { ((memcpy(&a, buf + off, sizeof a), off += sizeof a), ...); }, args);
    struct Ctx {
      void (*f)(A...);
      std::tuple<A...>* t;
    } ctx{fn, &args};
    return launch(g, b, [](void* p) { auto* c = static_cast<Ctx*>(p); std::apply(c->f, *c->t); }, &ctx);
  };
  return k;
}

#define CUDAEMU_KERNEL(fn) ::cudaemu::entry(#fn, &fn)

// kernels lists gpuquant's kernels and the deliberately broken ones of broken.cu.
inline std::vector<Kernel> kernels() {
  return {
      CUDAEMU_KERNEL(quant_minmax_init), CUDAEMU_KERNEL(quant_minmax), CUDAEMU_KERNEL(quant_params),
      CUDAEMU_KERNEL(quant_encode), CUDAEMU_KERNEL(dequant), CUDAEMU_KERNEL(quant_act_rows), CUDAEMU_KERNEL(gemv),
      CUDAEMU_KERNEL(gemm_f32), CUDAEMU_KERNEL(gemm_f16), CUDAEMU_KERNEL(gemm_w8a8), CUDAEMU_KERNEL(embed),
      CUDAEMU_KERNEL(layernorm), CUDAEMU_KERNEL(add_layernorm), CUDAEMU_KERNEL(add), CUDAEMU_KERNEL(gelu),
      CUDAEMU_KERNEL(nll), CUDAEMU_KERNEL(attention),
      // test-only
      CUDAEMU_KERNEL(broken_quant_act_rows_nosync), CUDAEMU_KERNEL(broken_gemm_w8a8_swapfrag),
      CUDAEMU_KERNEL(broken_dequant_offbyone), CUDAEMU_KERNEL(broken_deadlock),
      CUDAEMU_KERNEL(broken_divergent_barrier), CUDAEMU_KERNEL(broken_shared_oob),
  };
}

}  // namespace cudaemu

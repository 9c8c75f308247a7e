//go:build cudaemu

// emu.cc — the CPU emulator of gpuquant's CUDA kernels: the .cu files compiled unchanged as C++
// with cudaemu.h, a registry of kernels by name with their argument signatures, and the C entry
// points emu.go calls (emu.h). Built only with the cudaemu build tag.
#include "cudaemu.h"

#include <functional>
#include <tuple>

#include "../ptx.cuh"
#include "../quant.cu"
#include "../gemv.cu"
#include "../gemm_f32.cu"
#include "../gemm_f16.cu"
#include "../gemm_int8.cu"
#include "../norm.cu"
#include "../attention.cu"
#include "broken.cu"
#include "emu.h"

namespace {

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
struct Code<long long> {
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
    return cudaemu::launch(g, b, [](void* p) { auto* c = static_cast<Ctx*>(p); std::apply(c->f, *c->t); }, &ctx);
  };
  return k;
}

#define K(fn) entry(#fn, &fn)
const std::vector<Kernel>& kernels() {
  static const std::vector<Kernel> ks = {
      K(quant_minmax_init), K(quant_minmax), K(quant_params), K(quant_encode), K(dequant),
      K(quant_act_rows), K(gemv), K(gemm_f32), K(gemm_f16), K(gemm_w8a8),
      K(embed), K(layernorm), K(add_layernorm), K(add), K(gelu), K(nll), K(attention),
      // test-only
      K(broken_quant_act_rows_nosync), K(broken_gemm_w8a8_swapfrag), K(broken_dequant_offbyone),
      K(broken_deadlock), K(broken_divergent_barrier), K(broken_shared_oob),
  };
  return ks;
}
#undef K

char* dup(const std::string& s) {
  char* p = static_cast<char*>(malloc(s.size() + 1));
  memcpy(p, s.c_str(), s.size() + 1);
  return p;
}

size_t size_of(char c) { return c == 'p' || c == 'l' ? 8 : 4; }

}  // namespace

extern "C" {

char* cudaemu_launch(const char* name, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by, unsigned bz,
                     int shared, const char* sig, const unsigned char* args, size_t len) {
  for (const Kernel& k : kernels()) {
    if (strcmp(k.name, name) != 0) continue;
    if (k.sig != sig) return dup(std::string("arguments (") + sig + ") do not match the kernel's (" + k.sig + ")");
    size_t want = 0;
    for (char c : k.sig) want += size_of(c);
    if (want != len) return dup("packed argument size mismatch");
    if (shared != 0) return dup("dynamic shared memory is not emulated (use static __shared__ arrays)");
    std::string e = k.run(dim3(gx, gy, gz), dim3(bx, by, bz), args);
    return e.empty() ? nullptr : dup(e);
  }
  return dup(std::string("no kernel named ") + name);
}

void cudaemu_set_schedule(int order, unsigned long long seed) {
  cudaemu::g_order = order;
  cudaemu::g_seed = seed;
}

int cudaemu_sanitized(void) {
#if defined(CUDAEMU_ASAN)
  return 1;
#else
  return 0;
#endif
}

#define CUDAEMU_STR2(x) #x
#define CUDAEMU_STR(x) CUDAEMU_STR2(x)
const char* cudaemu_src_hash(void) { return CUDAEMU_STR(CUDAEMU_SRC_HASH) + 1; }  // without the leading h

int cudaemu_kernel_count(void) { return int(kernels().size()); }
const char* cudaemu_kernel_name(int i) { return kernels()[i].name; }
const char* cudaemu_kernel_sig(int i) { return kernels()[i].sig.c_str(); }

uintptr_t cudaemu_alloc(size_t bytes) { return uintptr_t(aligned_alloc(256, (bytes + 255) / 256 * 256)); }
void cudaemu_free(uintptr_t p) { free(reinterpret_cast<void*>(p)); }
void cudaemu_copy(uintptr_t dst, uintptr_t src, size_t n) {
  memcpy(reinterpret_cast<void*>(dst), reinterpret_cast<const void*>(src), n);
}
void cudaemu_fill(uintptr_t dst, int byte, size_t n) { memset(reinterpret_cast<void*>(dst), byte, n); }
int cudaemu_guard_ok(uintptr_t p, int byte, size_t n) {
  const unsigned char* b = reinterpret_cast<const unsigned char*>(p);
  for (size_t i = 0; i < n; i++)
    if (b[i] != (unsigned char)byte) return 0;
  return 1;
}
void cudaemu_poison(uintptr_t p, size_t n, int on) {
#if defined(CUDAEMU_ASAN)
  if (on) {
    ASAN_POISON_MEMORY_REGION(reinterpret_cast<void*>(p), n);
  } else {
    ASAN_UNPOISON_MEMORY_REGION(reinterpret_cast<void*>(p), n);
  }
#else
  (void)p, (void)n, (void)on;
#endif
}

}  // extern "C"

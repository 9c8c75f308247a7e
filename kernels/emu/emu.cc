//go:build cudaemu

// emu.cc — the CPU emulator of gpuquant's CUDA kernels: the .cu files compiled unchanged as C++
// with cudaemu.h, a registry of kernels by name with their argument signatures, and the C entry
// points emu.go calls (emu.h). Built only with the cudaemu build tag.
#include "emu.h"
#include "registry.h"

namespace {

using cudaemu::Kernel;
using cudaemu::size_of;

const std::vector<Kernel>& kernels() {
  static const std::vector<Kernel> ks = cudaemu::kernels();
  return ks;
}

char* dup(const std::string& s) {
  char* p = static_cast<char*>(malloc(s.size() + 1));
  memcpy(p, s.c_str(), s.size() + 1);
  return p;
}

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

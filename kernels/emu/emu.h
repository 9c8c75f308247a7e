// emu.h — the C interface of the CPU emulator of gpuquant's kernels (emu.cc), used by emu.go.
#pragma once
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

// cudaemu_launch runs kernel name over the grid; sig holds one letter per argument (p pointer,
// i int32, u uint32, l int64, f float32) and args their packed little-endian bytes. It returns
// NULL, or an error message to free().
char* cudaemu_launch(const char* name, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by, unsigned bz,
                     int shared, const char* sig, const unsigned char* args, size_t len);
// cudaemu_set_schedule picks the order fibers run between sync points: 0 forward, 1 reverse,
// 2 random (seeded).
void cudaemu_set_schedule(int order, unsigned long long seed);
// cudaemu_sanitized is 1 in the -fsanitize=address build.
int cudaemu_sanitized(void);
int cudaemu_kernel_count(void);
const char* cudaemu_kernel_name(int i);
const char* cudaemu_kernel_sig(int i);
// Memory helpers (addresses as integers, so the Go side never converts uintptr to a pointer).
uintptr_t cudaemu_alloc(size_t bytes);
void cudaemu_free(uintptr_t p);
void cudaemu_copy(uintptr_t dst, uintptr_t src, size_t n);
void cudaemu_fill(uintptr_t dst, int byte, size_t n);
// cudaemu_guard_ok reports whether all n bytes at p equal byte.
int cudaemu_guard_ok(uintptr_t p, int byte, size_t n);
// cudaemu_poison marks n bytes at p unaddressable (1) or addressable (0) under ASan; no-op otherwise.
void cudaemu_poison(uintptr_t p, size_t n, int on);

#ifdef __cplusplus
}
#endif

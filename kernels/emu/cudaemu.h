// cudaemu.h — run gpuquant's CUDA kernels, unchanged, on the CPU (for tests; see
// /work/shared/CUDA_ON_CPU.md and README "CUDA kernels on the CPU").
//
// Compile a .cu file as C++17 with -DCUDAEMU after including this header (kernels/emu/emu.cc does).
//
// What it emulates:
//   - __global__/__device__/__host__/__forceinline__/__launch_bounds__/__restrict__ (to nothing or
//     inline); __shared__ (static thread_local: one copy per worker OS thread, i.e. per running
//     block; plain static with one worker in the sanitizer build so ASan sees shared arrays).
//   - threadIdx, blockIdx, blockDim, gridDim; dim3, the vector types used by our kernels
//     (int4/uint4/float4/char4/uchar4 with CUDA's alignment).
//   - Each CUDA thread is a fiber (own stack) that yields only at sync points: __syncthreads and
//     the warp-collective operations (__syncwarp, __shfl*_sync, __ballot/__any/__all_sync and the
//     mma.sync emulation in ptx.cuh, which are built on warp_barrier). No host data races within a
//     block; blocks run on CUDAEMU_WORKERS OS threads (default 2).
//   - Schedule order between sync points: forward (thread 0 first), reverse, or seeded random,
//     chosen at run time (cudaemu_set_schedule). A missing barrier shows up in at least one order.
//   - Errors with file:line instead of hangs: deadlock (no thread can run), divergent
//     __syncthreads (threads of a block waiting at different call sites), a warp collective whose
//     lanes disagree on the mask or site, a shuffle reading a lane outside the mask, unknown
//     kernel / argument signature mismatch. Exited threads count as arrived at __syncthreads.
//   - Atomics (atomicAdd/Sub/Min/Max/Exch/CAS on 32-bit ints, atomicAdd on float), the float
//     intrinsics with explicit rounding (__fmul_rn, __fadd_rn, __fsub_rn, __fdiv_rn, __frcp_rn),
//     __float2int_rn, __float_as_int, __int_as_float, __ldg, rintf (IEEE, round half to even), __trap.
//
// What it cannot tell you: speed; launch limits (registers, shared memory size: ptxas -v says);
// the GPU memory model (it is not a race detector: fibers never interleave between sync points,
// and different blocks share no shared memory); garbage in uninitialised shared memory (stale
// values of an earlier block, or zero); FMA contraction and fast-math approximations; whether
// the PTX emulations in ptx.cuh match the hardware (one real GPU run proves that).
#pragma once

#include <algorithm>
#include <atomic>
#include <cmath>
#include <math.h>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#define CUDAEMU_ASAN 1
#endif

#if !defined(__x86_64__)
#define CUDAEMU_UCONTEXT 1
#endif
#if defined(CUDAEMU_UCONTEXT)
#include <ucontext.h>
#endif

// ---------------------------------------------------------------------------------------------
// CUDA keywords and types.

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline __attribute__((always_inline))
#define __noinline__ __attribute__((noinline))
#define __align__(n) __attribute__((aligned(n)))
#define __launch_bounds__(...)
#define __restrict__ __restrict
#if defined(CUDAEMU_ASAN)
#define __shared__ static
#else
#define __shared__ static thread_local
#endif

struct dim3 {
  unsigned x, y, z;
  constexpr dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};
struct uint3 {
  unsigned x, y, z;
};
struct __attribute__((aligned(16))) int4 {
  int x, y, z, w;
};
struct __attribute__((aligned(16))) uint4 {
  unsigned x, y, z, w;
};
struct __attribute__((aligned(16))) float4 {
  float x, y, z, w;
};
struct __attribute__((aligned(8))) int2 {
  int x, y;
};
struct __attribute__((aligned(8))) uint2 {
  unsigned x, y;
};
struct __attribute__((aligned(4))) char4 {
  signed char x, y, z, w;
};
struct __attribute__((aligned(4))) uchar4 {
  unsigned char x, y, z, w;
};

namespace cudaemu {

constexpr int kWarp = 32;
#if defined(CUDAEMU_ASAN)
constexpr size_t kStack = 256 << 10;  // ASan frames are much larger
#else
constexpr size_t kStack = 64 << 10;
#endif

enum State { kRunnable, kBlockWait, kWarpWait, kDone };

struct Block;

struct Fiber {
  void* sp = nullptr;  // saved stack pointer (asm switch)
#if defined(CUDAEMU_UCONTEXT)
  ucontext_t uc;
#endif
  char* stack = nullptr;
  uint3 tid{0, 0, 0};
  int linear = 0;  // linear thread index in the block
  State state = kRunnable;
  const char* file = "";  // where it waits
  int line = 0;
  unsigned mask = 0;  // warp-wait mask
  Block* block = nullptr;
};

struct Warp {
  unsigned waiting = 0;  // lanes waiting at a warp barrier
  unsigned mask = 0;
  const char* file = "";
  int line = 0;
  unsigned long long slot[kWarp];       // shuffle/vote exchange
  unsigned char scratch[kWarp][64];     // larger per-lane exchange (mma operands)
};

struct Block {
  std::vector<Fiber> fibers;
  std::vector<Warp> warps;
  int nthreads = 0;
  int live = 0;  // threads not exited
  void* sched_sp = nullptr;
#if defined(CUDAEMU_UCONTEXT)
  ucontext_t sched_uc;
#endif
  Fiber* cur = nullptr;
  std::string err;  // first error, set by a fiber or by the scheduler
  void (*body)(void*) = nullptr;
  void* arg = nullptr;
#if defined(CUDAEMU_ASAN)
  const void* sched_stack_bottom = nullptr;
  size_t sched_stack_size = 0;
#endif
};

// Per worker OS thread.
inline thread_local Block* tl_block = nullptr;
inline thread_local uint3 tl_blockIdx{0, 0, 0};
inline thread_local dim3 tl_blockDim{1, 1, 1};
inline thread_local dim3 tl_gridDim{1, 1, 1};

// Schedule: 0 forward, 1 reverse, 2 seeded random.
inline std::atomic<int> g_order{0};
inline std::atomic<unsigned long long> g_seed{1};

inline Fiber* cur() { return tl_block->cur; }

// ---------------------------------------------------------------------------------------------
// Context switch.

#if !defined(CUDAEMU_UCONTEXT)
extern "C" void cudaemu_switch(void** save_sp, void* new_sp);
extern "C" void cudaemu_trampoline();
// Saves the callee-saved registers on the current stack, stores the stack pointer in *save_sp,
// switches to new_sp and pops the other context's registers. A new fiber's stack is prepared by
// start_fiber so that the first switch "returns" into cudaemu_trampoline, which calls
// r13(r12) with an aligned stack.
asm(R"(
    .text
    .globl cudaemu_switch
    .type cudaemu_switch,@function
cudaemu_switch:
    pushq %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    movq %rsp, (%rdi)
    movq %rsi, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    ret
    .size cudaemu_switch, .-cudaemu_switch
    .globl cudaemu_trampoline
    .type cudaemu_trampoline,@function
cudaemu_trampoline:
    movq %r12, %rdi
    callq *%r13
    ud2
    .size cudaemu_trampoline, .-cudaemu_trampoline
)");
#endif

void fiber_main(Fiber* f);

inline void to_fiber(Block* b, Fiber* f) {
  b->cur = f;
#if defined(CUDAEMU_ASAN)
  void* fake = nullptr;
  __sanitizer_start_switch_fiber(&fake, f->stack, kStack);
#endif
#if defined(CUDAEMU_UCONTEXT)
  swapcontext(&b->sched_uc, &f->uc);
#else
  cudaemu_switch(&b->sched_sp, f->sp);
#endif
#if defined(CUDAEMU_ASAN)
  __sanitizer_finish_switch_fiber(fake, nullptr, nullptr);
#endif
  b->cur = nullptr;
}

// to_scheduler is called on a fiber's stack; exiting says the fiber never resumes.
inline void to_scheduler(Fiber* f, bool exiting) {
  Block* b = f->block;
#if defined(CUDAEMU_ASAN)
  void* fake = nullptr;
  __sanitizer_start_switch_fiber(exiting ? nullptr : &fake, b->sched_stack_bottom, b->sched_stack_size);
#else
  (void)exiting;
#endif
#if defined(CUDAEMU_UCONTEXT)
  swapcontext(&f->uc, &b->sched_uc);
#else
  cudaemu_switch(&f->sp, b->sched_sp);
#endif
#if defined(CUDAEMU_ASAN)
  __sanitizer_finish_switch_fiber(fake, &b->sched_stack_bottom, &b->sched_stack_size);
#endif
}

inline void fiber_entry_c(void* p) { fiber_main(static_cast<Fiber*>(p)); }

#if defined(CUDAEMU_UCONTEXT)
inline void uc_entry(unsigned lo, unsigned hi) {
  fiber_main(reinterpret_cast<Fiber*>((uintptr_t(hi) << 32) | uintptr_t(lo)));
}
#endif

inline void start_fiber(Block* b, Fiber* f) {
#if defined(CUDAEMU_UCONTEXT)
  getcontext(&f->uc);
  f->uc.uc_stack.ss_sp = f->stack;
  f->uc.uc_stack.ss_size = kStack;
  f->uc.uc_link = nullptr;
  uintptr_t p = reinterpret_cast<uintptr_t>(f);
  makecontext(&f->uc, (void (*)())uc_entry, 2, unsigned(p), unsigned(p >> 32));
#else
  uintptr_t top = (reinterpret_cast<uintptr_t>(f->stack) + kStack) & ~uintptr_t(15);
  void** sp = reinterpret_cast<void**>(top - 56);  // ≡ 8 mod 16: after 6 pops and ret, rsp = top
  sp[0] = nullptr;                                 // r15
  sp[1] = nullptr;                                 // r14
  sp[2] = reinterpret_cast<void*>(&fiber_entry_c); // r13: function
  sp[3] = f;                                       // r12: argument
  sp[4] = nullptr;                                 // rbx
  sp[5] = nullptr;                                 // rbp
  sp[6] = reinterpret_cast<void*>(&cudaemu_trampoline);
  f->sp = sp;
#endif
  (void)b;
}

inline void fail(Block* b, const std::string& msg) {
  if (b->err.empty()) b->err = msg;
}

inline std::string where(const Fiber& f) {
  char buf[256];
  snprintf(buf, sizeof buf, "thread (%u,%u,%u) of block (%u,%u,%u) at %s:%d", f.tid.x, f.tid.y, f.tid.z,
           tl_blockIdx.x, tl_blockIdx.y, tl_blockIdx.z, f.file, f.line);
  return buf;
}

// An error inside a kernel: record it and park the fiber forever (the block is abandoned).
[[noreturn]] inline void kernel_error(const std::string& msg) {
  Fiber* f = cur();
  fail(f->block, msg);
  f->state = kDone;
  for (;;) to_scheduler(f, false);
}

inline void fiber_main(Fiber* f) {
  Block* b = f->block;
#if defined(CUDAEMU_ASAN)
  __sanitizer_finish_switch_fiber(nullptr, &b->sched_stack_bottom, &b->sched_stack_size);
#endif
  b->body(b->arg);
  f->state = kDone;
  f->file = "exit";
  f->line = 0;
  b->live--;
  to_scheduler(f, true);
  abort();  // never resumed
}

// ---------------------------------------------------------------------------------------------
// Sync points.

inline void syncthreads(const char* file, int line) {
  Fiber* f = cur();
  f->state = kBlockWait;
  f->file = file;
  f->line = line;
  to_scheduler(f, false);
}

// warp_barrier: the lanes in mask (those that exist and have not exited) meet here.
inline void warp_barrier(unsigned mask, const char* file, int line) {
  Fiber* f = cur();
  Block* b = f->block;
  int lane = f->linear % kWarp;
  if (!(mask >> lane & 1u)) {
    char buf[160];
    snprintf(buf, sizeof buf, "warp collective with mask %#x called by lane %d outside it at %s:%d", mask, lane, file, line);
    kernel_error(buf);
  }
  f->state = kWarpWait;
  f->file = file;
  f->line = line;
  f->mask = mask;
  b->warps[f->linear / kWarp].waiting |= 1u << lane;
  to_scheduler(f, false);
}

inline Warp& my_warp() { return cur()->block->warps[cur()->linear / kWarp]; }
inline int lane_id() { return cur()->linear % kWarp; }

// ---------------------------------------------------------------------------------------------
// Scheduler.

struct Rng {
  unsigned long long s;
  unsigned long long next() {
    s ^= s << 13;
    s ^= s >> 7;
    s ^= s << 17;
    return s;
  }
};

// run_block runs one block to completion or error; returns the error ("" if none).
// Stacks is one worker's fiber stacks: malloc'd (never zero-filled), kept in a pool between
// launches so that a launch costs no page faults.
struct Stacks {
  char* p = nullptr;
  size_t size = 0;
  char* data() { return p; }
};
inline std::mutex g_pool_mu;
inline std::vector<Stacks> g_pool;
inline Stacks take_stacks(size_t need) {
  std::lock_guard<std::mutex> l(g_pool_mu);
  for (size_t i = 0; i < g_pool.size(); i++) {
    if (g_pool[i].size >= need) {
      Stacks s = g_pool[i];
      g_pool.erase(g_pool.begin() + long(i));
      return s;
    }
  }
  Stacks s;
  s.p = static_cast<char*>(malloc(need));
  if (!s.p) abort();
  s.size = need;
  return s;
}
inline void give_stacks(Stacks s) {
  std::lock_guard<std::mutex> l(g_pool_mu);
  g_pool.push_back(s);
}

inline std::string run_block(Block* b, Stacks& stacks, Rng& rng) {
  int n = b->nthreads;
  b->fibers.assign(n, Fiber());
  b->warps.assign((n + kWarp - 1) / kWarp, Warp());
  b->live = n;
  b->err.clear();
  dim3 bd = tl_blockDim;
  for (int i = 0; i < n; i++) {
    Fiber& f = b->fibers[i];
    f.stack = stacks.data() + size_t(i) * kStack;
    f.linear = i;
    f.tid = uint3{unsigned(i % bd.x), unsigned(i / bd.x % bd.y), unsigned(i / (bd.x * bd.y))};
    f.block = b;
    start_fiber(b, &f);
  }
  std::vector<int> order(n);
  int ord = g_order.load();
  for (;;) {
    for (int i = 0; i < n; i++) order[i] = ord == 1 ? n - 1 - i : i;
    if (ord == 2) {
      for (int i = n - 1; i > 0; i--) std::swap(order[i], order[rng.next() % (i + 1)]);
    }
    bool ran = false;
    for (int i : order) {
      Fiber& f = b->fibers[i];
      if (f.state != kRunnable) continue;
      ran = true;
      to_fiber(b, &f);
      if (!b->err.empty()) return b->err;
    }
    if (b->live == 0) return "";
    // Release warp barriers whose participants (mask ∩ lanes alive) have all arrived.
    bool released = false;
    for (size_t w = 0; w < b->warps.size(); w++) {
      Warp& wp = b->warps[w];
      if (!wp.waiting) continue;
      unsigned alive = 0, mask = 0;
      const Fiber* first = nullptr;
      for (int l = 0; l < kWarp; l++) {
        int i = int(w) * kWarp + l;
        if (i >= n) break;
        const Fiber& f = b->fibers[i];
        if (f.state != kDone) alive |= 1u << l;
        if (f.state == kWarpWait) {
          if (!first) {
            first = &f;
            mask = f.mask;
          } else if (f.mask != mask || f.line != first->line || strcmp(f.file, first->file) != 0) {
            char buf[96];
            snprintf(buf, sizeof buf, "warp %zu: lanes in different warp collectives (masks %#x, %#x): ", w, mask, f.mask);
            return buf + where(*first) + " vs " + where(f);
          }
        }
      }
      if ((wp.waiting & mask & alive) == (mask & alive) && (wp.waiting & ~mask) == 0) {
        wp.mask = mask;
        for (int l = 0; l < kWarp; l++)
          if (wp.waiting >> l & 1u) b->fibers[w * kWarp + l].state = kRunnable;
        wp.waiting = 0;
        released = true;
      }
    }
    if (released) continue;
    if (ran) continue;
    // Block barrier: everyone alive waiting at the same __syncthreads.
    int waiting = 0;
    const Fiber* first = nullptr;
    for (const Fiber& f : b->fibers) {
      if (f.state != kBlockWait) continue;
      waiting++;
      if (!first) {
        first = &f;
      } else if (f.line != first->line || strcmp(f.file, first->file) != 0) {
        return "divergent __syncthreads: " + where(*first) + " vs " + where(f);
      }
    }
    if (waiting == b->live) {
      for (Fiber& f : b->fibers)
        if (f.state == kBlockWait) f.state = kRunnable;
      continue;
    }
    std::string msg = "deadlock: no thread can proceed;";
    int shown = 0;
    for (const Fiber& f : b->fibers) {
      if (f.state == kDone) continue;
      if (shown++ == 4) {
        msg += " ...";
        break;
      }
      msg += (f.state == kBlockWait ? " __syncthreads: " : " warp collective: ") + where(f) + ";";
    }
    return msg;
  }
}

// Launch state shared by the workers of one launch.
struct Launch {
  dim3 grid, block;
  void (*body)(void*);
  void* arg;
  std::atomic<long long> next{0};
  std::atomic<bool> failed{false};
  std::string err;
  std::atomic_flag err_lock = ATOMIC_FLAG_INIT;
};

inline void worker(Launch* L, int wid) {
  Block b;
  b.body = L->body;
  b.arg = L->arg;
  tl_block = &b;
  tl_blockDim = L->block;
  tl_gridDim = L->grid;
  Rng rng{g_seed.load() * 0x9E3779B97F4A7C15ull + unsigned(wid) + 1};
  long long total = (long long)L->grid.x * L->grid.y * L->grid.z;
  int n = int(L->block.x * L->block.y * L->block.z);
  b.nthreads = n;
  Stacks stacks = take_stacks(size_t(n) * kStack);
  for (;;) {
    long long i = L->next.fetch_add(1);
    if (i >= total || L->failed.load()) break;
    tl_blockIdx = uint3{unsigned(i % L->grid.x), unsigned(i / L->grid.x % L->grid.y),
                        unsigned(i / ((long long)L->grid.x * L->grid.y))};
    std::string e = run_block(&b, stacks, rng);
    if (!e.empty()) {
      while (L->err_lock.test_and_set()) {
      }
      if (!L->failed.exchange(true)) L->err = e;
      L->err_lock.clear();
      break;
    }
  }
#if defined(CUDAEMU_ASAN)
  if (!b.err.empty()) ASAN_UNPOISON_MEMORY_REGION(stacks.data(), stacks.size);  // frames abandoned by an error
#endif
  give_stacks(stacks);
  tl_block = nullptr;
}

inline int workers() {
#if defined(CUDAEMU_ASAN)
  return 1;
#else
  const char* s = getenv("CUDAEMU_WORKERS");
  int w = s ? atoi(s) : 2;
  return w < 1 ? 1 : w;
#endif
}

// launch runs body(arg) as every thread of the grid; returns "" or the first error.
inline std::string launch(dim3 grid, dim3 block, void (*body)(void*), void* arg) {
  long long nt = (long long)block.x * block.y * block.z;
  if (grid.x == 0 || grid.y == 0 || grid.z == 0 || nt == 0) return "empty grid or block";
  if (nt > 1024) return "more than 1024 threads per block";
  if (grid.y > 65535 || grid.z > 65535 || block.z > 64) return "grid or block dimension over the CUDA limit";
  Launch L;
  L.grid = grid;
  L.block = block;
  L.body = body;
  L.arg = arg;
  long long total = (long long)grid.x * grid.y * grid.z;
  int w = int(std::min<long long>(workers(), total));
  if (w == 1) {
    worker(&L, 0);
  } else {
    std::vector<std::thread> ts;
    for (int i = 0; i < w; i++) ts.emplace_back(worker, &L, i);
    for (auto& t : ts) t.join();
  }
  return L.err;
}

// ---------------------------------------------------------------------------------------------
// Warp collectives.

template <class T>
inline unsigned long long to_slot(T v) {
  static_assert(sizeof(T) <= 8, "shuffle of a type wider than 8 bytes");
  unsigned long long s = 0;
  memcpy(&s, &v, sizeof v);
  return s;
}
template <class T>
inline T from_slot(unsigned long long s) {
  T v;
  memcpy(&v, &s, sizeof v);
  return v;
}

template <class T>
inline T shfl_from(const char* file, int line, unsigned mask, T v, int src) {
  Warp& w = my_warp();
  int lane = lane_id();
  w.slot[lane] = to_slot(v);
  warp_barrier(mask, file, line);
  if (src < 0 || src >= kWarp || !(mask >> src & 1u) || !(w.mask >> src & 1u)) {
    char buf[160];
    snprintf(buf, sizeof buf, "shuffle at %s:%d: lane %d reads lane %d outside the mask %#x", file, line, lane, src, mask);
    kernel_error(buf);
  }
  const Fiber& sf = cur()->block->fibers[(cur()->linear / kWarp) * kWarp + src];
  if (sf.state == kDone) {
    char buf[160];
    snprintf(buf, sizeof buf, "shuffle at %s:%d: lane %d reads exited lane %d", file, line, lane, src);
    kernel_error(buf);
  }
  T r = from_slot<T>(w.slot[src]);
  warp_barrier(mask, file, line);
  return r;
}

template <class T>
inline T shfl(const char* file, int line, unsigned mask, T v, int src, int width = kWarp) {
  int lane = lane_id();
  int base = lane & ~(width - 1);
  return shfl_from(file, line, mask, v, base + (src & (width - 1)));
}
template <class T>
inline T shfl_down(const char* file, int line, unsigned mask, T v, unsigned d, int width = kWarp) {
  int lane = lane_id();
  int s = lane + int(d);
  if ((s & ~(width - 1)) != (lane & ~(width - 1)) || s >= kWarp) s = lane;
  return shfl_from(file, line, mask, v, s);
}
template <class T>
inline T shfl_up(const char* file, int line, unsigned mask, T v, unsigned d, int width = kWarp) {
  int lane = lane_id();
  int s = lane - int(d);
  if (s < (lane & ~(width - 1))) s = lane;
  return shfl_from(file, line, mask, v, s);
}
template <class T>
inline T shfl_xor(const char* file, int line, unsigned mask, T v, int m, int width = kWarp) {
  int lane = lane_id();
  int s = lane ^ m;
  if ((s & ~(width - 1)) != (lane & ~(width - 1))) s = lane;
  return shfl_from(file, line, mask, v, s);
}

inline unsigned ballot(const char* file, int line, unsigned mask, int pred) {
  Warp& w = my_warp();
  w.slot[lane_id()] = pred != 0;
  warp_barrier(mask, file, line);
  unsigned r = 0;
  for (int l = 0; l < kWarp; l++)
    if ((w.mask >> l & 1u) && w.slot[l]) r |= 1u << l;
  warp_barrier(mask, file, line);
  return r;
}

}  // namespace cudaemu

#define CUDAEMU_SITE __FILE__, __LINE__
#define threadIdx (cudaemu::cur()->tid)
#define blockIdx (cudaemu::tl_blockIdx)
#define blockDim (cudaemu::tl_blockDim)
#define gridDim (cudaemu::tl_gridDim)
#define warpSize 32
#define __syncthreads() cudaemu::syncthreads(CUDAEMU_SITE)
#define __syncwarp(...) cudaemu::warp_barrier(cudaemu_mask_or_full(__VA_ARGS__), CUDAEMU_SITE)
#define __shfl_sync(m, v, ...) cudaemu::shfl(CUDAEMU_SITE, m, v, __VA_ARGS__)
#define __shfl_down_sync(m, v, ...) cudaemu::shfl_down(CUDAEMU_SITE, m, v, __VA_ARGS__)
#define __shfl_up_sync(m, v, ...) cudaemu::shfl_up(CUDAEMU_SITE, m, v, __VA_ARGS__)
#define __shfl_xor_sync(m, v, ...) cudaemu::shfl_xor(CUDAEMU_SITE, m, v, __VA_ARGS__)
#define __ballot_sync(m, p) cudaemu::ballot(CUDAEMU_SITE, m, p)
#define __any_sync(m, p) (cudaemu::ballot(CUDAEMU_SITE, m, p) != 0)
#define __all_sync(m, p) (cudaemu::ballot(CUDAEMU_SITE, m, p) == ((m) & cudaemu::my_warp().mask))

inline unsigned cudaemu_mask_or_full(unsigned m = 0xffffffffu) { return m; }

// ---------------------------------------------------------------------------------------------
// Math and bit intrinsics (IEEE single precision, round to nearest even; g++ without -ffast-math
// and without -mfma does not contract a*b+c, so these match the _rn intrinsics exactly).

// __trap aborts the kernel; a driver reports it as a launch failure.
[[noreturn]] inline void __trap() { cudaemu::kernel_error("trap: __trap() called"); }

inline float __fmul_rn(float a, float b) { return a * b; }
inline float __fadd_rn(float a, float b) { return a + b; }
inline float __fsub_rn(float a, float b) { return a - b; }
inline float __fdiv_rn(float a, float b) { return a / b; }
inline float __frcp_rn(float a) { return 1.0f / a; }
inline int __float2int_rn(float a) { return int(std::nearbyint(a)); }
inline int __float_as_int(float f) {
  int i;
  memcpy(&i, &f, 4);
  return i;
}
inline unsigned __float_as_uint(float f) {
  unsigned i;
  memcpy(&i, &f, 4);
  return i;
}
inline float __int_as_float(int i) {
  float f;
  memcpy(&f, &i, 4);
  return f;
}
inline float __uint_as_float(unsigned i) {
  float f;
  memcpy(&f, &i, 4);
  return f;
}
template <class T>
inline T __ldg(const T* p) {
  return *p;
}

// Atomics: blocks run concurrently on several OS threads.
#define CUDAEMU_ATOMIC2(name, T, op) \
  inline T name(T* p, T v) { return op(p, v, __ATOMIC_SEQ_CST); }
CUDAEMU_ATOMIC2(atomicAdd, int, __atomic_fetch_add)
CUDAEMU_ATOMIC2(atomicAdd, unsigned, __atomic_fetch_add)
CUDAEMU_ATOMIC2(atomicSub, int, __atomic_fetch_sub)
CUDAEMU_ATOMIC2(atomicExch, int, __atomic_exchange_n)
CUDAEMU_ATOMIC2(atomicExch, unsigned, __atomic_exchange_n)
CUDAEMU_ATOMIC2(atomicAnd, int, __atomic_fetch_and)
CUDAEMU_ATOMIC2(atomicOr, int, __atomic_fetch_or)
#undef CUDAEMU_ATOMIC2
template <class T>
inline T cudaemu_atomic_minmax(T* p, T v, bool isMax) {
  T old = __atomic_load_n(p, __ATOMIC_SEQ_CST);
  while ((isMax ? v > old : v < old) &&
         !__atomic_compare_exchange_n(p, &old, v, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)) {
  }
  return old;
}
inline int atomicMax(int* p, int v) { return cudaemu_atomic_minmax(p, v, true); }
inline int atomicMin(int* p, int v) { return cudaemu_atomic_minmax(p, v, false); }
inline unsigned atomicMax(unsigned* p, unsigned v) { return cudaemu_atomic_minmax(p, v, true); }
inline unsigned atomicMin(unsigned* p, unsigned v) { return cudaemu_atomic_minmax(p, v, false); }
inline int atomicCAS(int* p, int cmp, int v) {
  __atomic_compare_exchange_n(p, &cmp, v, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
  return cmp;
}
inline float atomicAdd(float* p, float v) {
  unsigned* u = reinterpret_cast<unsigned*>(p);
  unsigned old = __atomic_load_n(u, __ATOMIC_SEQ_CST);
  for (;;) {
    unsigned nv = __float_as_uint(__uint_as_float(old) + v);
    if (__atomic_compare_exchange_n(u, &old, nv, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)) return __uint_as_float(old);
  }
}

// driver.cc — a libcuda.so.1 of our own, for tests only: the CUDA driver API implemented on the CPU
// over the kernel emulator (cudaemu.h, registry.h), so that the cuda-tagged binaries (package cuda,
// gpu.New, the -tags cuda test binaries, gpuquant-cuda, scripts/device-check.sh) run end to end
// on a machine without a GPU: `LD_LIBRARY_PATH=build/cudaemu-driver ./gpu.test`. Never shipped;
// `make cudaemu-driver` builds it (README "The CUDA driver on the CPU").
//
// Semantics follow the CUDA Driver API reference where our code can observe them:
//   - cuInit first; a configurable fake card (CUDAEMU_DEVICES, CUDAEMU_CC "9.0", CUDAEMU_SMS,
//     CUDAEMU_MEM bytes with K/M/G suffix, CUDAEMU_NAME); zero devices is CUDA_ERROR_NO_DEVICE.
//   - contexts are current per OS thread; a context call on a thread with none current fails with
//     CUDA_ERROR_INVALID_CONTEXT (a released primary context, CONTEXT_IS_DESTROYED).
//   - asynchronous work is asynchronous: launches, async copies, memsets and event records go to
//     the context's queue and run at the next synchronization (stream/event/context sync, a
//     synchronous copy, cuMemFree, a copy to pageable host memory, which CUDA completes before it
//     returns). So a read-back of pinned memory without its sync sees stale bytes, as on a GPU.
//   - device memory: guard zones around every allocation, fresh bytes 0xCD; copies and memsets
//     outside one live allocation are CUDA_ERROR_INVALID_VALUE; a kernel pointer argument outside
//     every live allocation, or a kernel write into a guard zone, is CUDA_ERROR_ILLEGAL_ADDRESS;
//     kernel faults (that, __trap, the emulator's deadlock/divergence checks: LAUNCH_FAILED) are
//     sticky for the context, as on a GPU, until its primary context is released.
//   - modules: PTX text only; its .version (≤ the header's ISA), .target and every .entry's
//     parameter list are checked against the emulated kernel of that name (count and sizes).
//   - cuLaunchKernel: kernelParams laid out as package cuda lays them out (values back to back,
//     kernelParams[n] = the end of the last value, kernelParams[n+1] = NULL; a real driver reads
//     only the first n entries), so a value of the wrong size or a missing or extra argument is
//     CUDA_ERROR_INVALID_VALUE naming the kernel and parameter; launch limits are checked.
//   - stream capture (all three modes) records kernels, memsets and copies as graph nodes with
//     their parameters by value; replay reads the memory behind the pointers when it runs. A sync
//     of a capturing stream invalidates the capture; in global and thread-local modes so does an
//     allocation or a synchronous copy.
// The details of an error are kept for cudaemu_driver_take_detail (package cuda appends them to
// its errors) and faults are printed to stderr. Every symbol the binaries import that is not
// implemented here is a generated stub (unsupported.cc) returning CUDA_ERROR_NOT_SUPPORTED.
#include <cuda.h>

#include <chrono>
#include <cstdarg>
#include <deque>
#include <map>
#include <memory>
#include <set>

// cudaemu.h redefines CUDA's keywords (__noinline__ among them): the standard headers come first.
#include "../registry.h"
#include "../../../cuda/testdata/testkernels.cu"

struct CUctx_st;
struct CUstream_st;

namespace {

constexpr size_t kGuard = 256;
constexpr unsigned char kGuardByte = 0xA5;
constexpr unsigned char kFreshByte = 0xCD;
constexpr int kMaxPTX = 78;  // the ISA version of the CUDA 11.8 header this file implements

std::mutex g_mu;  // every entry point holds it: the driver is one big critical section

struct Card {
  std::string name;
  int major = 9, minor = 0, sms = 132;
  size_t mem = size_t(80) << 30;
};

bool g_inited = false;
std::vector<Card> g_cards;
thread_local CUctx_st* tl_ctx = nullptr;

// Error details: the message of the most recent failure, by code, for package cuda to append.
CUresult g_detail_code = CUDA_SUCCESS;
std::string g_detail, g_detail_taken;

std::string fmt(const char* f, ...) __attribute__((format(printf, 1, 2)));
std::string fmt(const char* f, ...) {
  char buf[1024];
  va_list ap;
  va_start(ap, f);
  vsnprintf(buf, sizeof buf, f, ap);
  va_end(ap);
  return buf;
}

CUresult fail(CUresult r, const std::string& detail) {
  g_detail_code = r;
  g_detail = detail;
  return r;
}

const std::vector<cudaemu::Kernel>& registry() {
  static const std::vector<cudaemu::Kernel> ks = [] {
    std::vector<cudaemu::Kernel> v = cudaemu::kernels();
    // package cuda's own test kernels (cuda/testdata/testkernels.cu)
    v.push_back(CUDAEMU_KERNEL(gq_test_axpb));
    v.push_back(CUDAEMU_KERNEL(gq_test_pack));
    v.push_back(CUDAEMU_KERNEL(gq_test_trap));
    return v;
  }();
  return ks;
}

struct Alloc {
  unsigned char* raw;  // the C allocation, guards included
  size_t size;         // bytes asked for
};

enum class OpKind { kernel, copy, memset, record };

// Op is one piece of queued or captured work.
struct Op {
  OpKind kind;
  std::string label;  // "graph node 3 (…)" for replayed nodes
  // kernel
  CUfunction fn = nullptr;
  dim3 grid, block;
  std::vector<unsigned char> args;
  // copy, memset
  uintptr_t dst = 0, src = 0;
  size_t n = 0;                      // bytes (copy) or elements (memset)
  std::vector<unsigned char> staged;  // pageable source, copied when the op was queued
  bool dst_dev = false, src_dev = false, dst_pin = false, src_pin = false;
  unsigned value = 0;
  int elem = 1;
  // record
  CUevent ev = nullptr;
};

}  // namespace

struct CUfunc_st {
  CUmodule mod;
  const cudaemu::Kernel* k;
  std::vector<int> sizes;  // parameter sizes, from the PTX (equal to the kernel's)
  int max_threads;         // .maxntid, else 1024
  int static_shared;       // bytes of .shared in the entry
  int max_dynamic;         // CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES
  int regs;                // PTX virtual registers declared (an upper bound of nothing: a report)
};

struct CUmod_st {
  CUctx_st* ctx;
  int ptx_version;
  std::vector<std::unique_ptr<CUfunc_st>> fns;
};

struct CUstream_st {
  CUctx_st* ctx;
  unsigned flags;
  CUstreamCaptureStatus capture = CU_STREAM_CAPTURE_STATUS_NONE;
  CUstreamCaptureMode mode = CU_STREAM_CAPTURE_MODE_GLOBAL;
  std::thread::id capturer;
  CUgraph graph = nullptr;  // the capture's graph
  std::string why;          // what invalidated the capture
};

struct CUevent_st {
  CUctx_st* ctx;
  unsigned flags;
  bool recorded = false, done = false;
  std::chrono::steady_clock::time_point t;
};

struct CUgraphNode_st {
  CUgraph g;
};

struct CUgraph_st {
  CUctx_st* ctx;
  std::vector<Op> ops;
  std::vector<std::unique_ptr<CUgraphNode_st>> nodes;
};

struct CUgraphExec_st {
  CUctx_st* ctx;
  std::vector<Op> ops;
};

struct CUctx_st {
  int dev;
  bool primary;
  int retains = 0;
  bool active = false;
  CUresult sticky = CUDA_SUCCESS;
  std::string sticky_detail;
  std::deque<Op> queue;
  std::map<uintptr_t, Alloc> mem;   // device memory by its address
  std::map<uintptr_t, Alloc> host;  // pinned host memory (cuMemAllocHost)
  size_t used = 0;
  CUstream_st legacy{this, 0};
  std::set<CUstream> streams;
  std::set<CUevent> events;
  std::set<CUmodule> mods;
  std::set<CUgraph> graphs;
  std::set<CUgraphExec> execs;
};

namespace {

std::vector<std::unique_ptr<CUctx_st>> g_primary;  // one per device
std::set<CUctx_st*> g_created;                     // by cuCtxCreate

// --- environment --------------------------------------------------------------------------------

bool parse_size(const char* s, size_t* out) {
  char* end = nullptr;
  double v = strtod(s, &end);
  if (end == s || v <= 0) return false;
  switch (*end) {
    case 'K': case 'k': v *= 1024, end++; break;
    case 'M': case 'm': v *= 1 << 20, end++; break;
    case 'G': case 'g': v *= double(1 << 30), end++; break;
  }
  if (*end == 'i' || *end == 'B') end++;
  if (*end == 'B') end++;
  if (*end != 0) return false;
  *out = size_t(v);
  return true;
}

CUresult read_cards() {
  int n = 1;
  Card c;
  c.name = "cudaemu (emulated NVIDIA H100 80GB HBM3)";
  if (const char* s = getenv("CUDAEMU_DEVICES")) {
    char* end;
    n = int(strtol(s, &end, 10));
    if (*end || n < 0 || n > 16) return fail(CUDA_ERROR_INVALID_VALUE, fmt("CUDAEMU_DEVICES=%s: want 0 to 16", s));
  }
  if (const char* s = getenv("CUDAEMU_CC")) {
    if (sscanf(s, "%d.%d", &c.major, &c.minor) != 2 || c.major < 1 || c.minor < 0)
      return fail(CUDA_ERROR_INVALID_VALUE, fmt("CUDAEMU_CC=%s: want major.minor, e.g. 9.0", s));
  }
  if (const char* s = getenv("CUDAEMU_SMS")) {
    c.sms = atoi(s);
    if (c.sms <= 0) return fail(CUDA_ERROR_INVALID_VALUE, fmt("CUDAEMU_SMS=%s: want a positive count", s));
  }
  if (const char* s = getenv("CUDAEMU_MEM")) {
    if (!parse_size(s, &c.mem)) return fail(CUDA_ERROR_INVALID_VALUE, fmt("CUDAEMU_MEM=%s: want bytes, e.g. 64M", s));
  }
  if (const char* s = getenv("CUDAEMU_NAME")) c.name = s;
  if (const char* s = getenv("CUDAEMU_ORDER")) {
    std::string o = s;
    int ord = o == "forward" ? 0 : o == "reverse" ? 1 : o == "random" ? 2 : -1;
    if (ord < 0) return fail(CUDA_ERROR_INVALID_VALUE, fmt("CUDAEMU_ORDER=%s: want forward, reverse or random", s));
    cudaemu::g_order = ord;
  }
  if (const char* s = getenv("CUDAEMU_SEED")) cudaemu::g_seed = strtoull(s, nullptr, 10);
  g_cards.assign(size_t(n), c);
  for (int i = 0; i < n; i++) {
    g_primary.push_back(std::make_unique<CUctx_st>());
    g_primary.back()->dev = i;
    g_primary.back()->primary = true;
  }
  return CUDA_SUCCESS;
}

// --- checks shared by the entry points ----------------------------------------------------------

#define LOCK std::lock_guard<std::mutex> lock_(g_mu)
#define INIT \
  if (!g_inited) return fail(CUDA_ERROR_NOT_INITIALIZED, "cuInit has not been called")
#define TRY(x)                          \
  do {                                  \
    CUresult r_ = (x);                  \
    if (r_ != CUDA_SUCCESS) return r_;  \
  } while (0)

CUresult check_dev(CUdevice d) {
  if (d < 0 || size_t(d) >= g_cards.size())
    return fail(CUDA_ERROR_INVALID_DEVICE, fmt("device %d of %zu", d, g_cards.size()));
  return CUDA_SUCCESS;
}

// current returns the thread's context, or the error a context call gets without one; a context
// holding a sticky fault returns that fault.
CUresult current(CUctx_st** out, const char* call) {
  INIT;
  CUctx_st* c = tl_ctx;
  if (!c) return fail(CUDA_ERROR_INVALID_CONTEXT, fmt("%s: no context is current on this thread", call));
  if (!c->active) return fail(CUDA_ERROR_CONTEXT_IS_DESTROYED, fmt("%s: the thread's context was released", call));
  if (c->sticky != CUDA_SUCCESS) return fail(c->sticky, fmt("%s: the context has a sticky error: %s", call, c->sticky_detail.c_str()));
  *out = c;
  return CUDA_SUCCESS;
}

bool is_default(CUstream s) { return s == nullptr || s == CU_STREAM_LEGACY || s == CU_STREAM_PER_THREAD; }

CUresult stream_of(CUctx_st* c, CUstream s, CUstream* out, const char* call) {
  if (is_default(s)) {
    *out = &c->legacy;
    return CUDA_SUCCESS;
  }
  if (!c->streams.count(s)) return fail(CUDA_ERROR_INVALID_HANDLE, fmt("%s: stream %p is not a live stream of this context", call, (void*)s));
  *out = s;
  return CUDA_SUCCESS;
}

// find returns the allocation holding [p, p+n) (n = 0: p may be its end), or nullptr.
const Alloc* find(const std::map<uintptr_t, Alloc>& m, uintptr_t p, size_t n, uintptr_t* base) {
  auto it = m.upper_bound(p);
  if (it == m.begin()) return nullptr;
  --it;
  if (p + n > it->first + it->second.size) return nullptr;
  *base = it->first;
  return &it->second;
}

bool in_device(CUctx_st* c, uintptr_t p, size_t n) {
  uintptr_t b;
  return find(c->mem, p, n, &b) != nullptr;
}

bool in_pinned(CUctx_st* c, uintptr_t p, size_t n) {
  uintptr_t b;
  return find(c->host, p, n, &b) != nullptr;
}

// alive reports whether the memory a copy named when it was queued is still allocated (graph nodes
// may outlive it); pageable host memory is the caller's to keep.
bool alive(CUctx_st* c, uintptr_t p, size_t n, bool dev, bool pinned) {
  return dev ? in_device(c, p, n) : !pinned || in_pinned(c, p, n);
}

// poison makes the context's later calls return r: a GPU fault ends the context's usefulness.
void poison(CUctx_st* c, CUresult r, const std::string& why) {
  if (c->sticky != CUDA_SUCCESS) return;
  c->sticky = r;
  c->sticky_detail = why;
  const char* name = "?";
  cuGetErrorName(r, &name);
  fprintf(stderr, "cudaemu driver: %s: %s\n", name, why.c_str());
  fail(r, why);
}

bool guard_intact(const unsigned char* p) {
  for (size_t i = 0; i < kGuard; i++)
    if (p[i] != kGuardByte) return false;
  return true;
}

// --- execution ----------------------------------------------------------------------------------

std::string kernel_label(const Op& op) {
  return fmt("%skernel %s grid (%u,%u,%u) block (%u,%u,%u)", op.label.c_str(), op.fn->k->name, op.grid.x, op.grid.y,
             op.grid.z, op.block.x, op.block.y, op.block.z);
}

void run_kernel(CUctx_st* c, const Op& op) {
  const std::string& sig = op.fn->k->sig;
  std::vector<const Alloc*> touched;
  size_t off = 0;
  for (size_t i = 0; i < sig.size(); off += cudaemu::size_of(sig[i]), i++) {
    if (sig[i] != 'p') continue;
    uintptr_t p;
    memcpy(&p, op.args.data() + off, 8);
    if (p == 0) continue;
    uintptr_t base;
    if (const Alloc* a = find(c->mem, p, 0, &base)) {
      touched.push_back(a);
    } else if (!in_pinned(c, p, 0)) {
      poison(c, CUDA_ERROR_ILLEGAL_ADDRESS,
             fmt("%s: parameter %zu = %#lx is in no live allocation (freed, or never allocated)", kernel_label(op).c_str(), i,
                 (unsigned long)p));
      return;
    }
  }
  std::string e = op.fn->k->run(op.grid, op.block, op.args.data());
  if (!e.empty()) {
    poison(c, CUDA_ERROR_LAUNCH_FAILED, fmt("%s: %s", kernel_label(op).c_str(), e.c_str()));
    return;
  }
  for (const Alloc* a : touched) {
    const unsigned char* before = a->raw;
    const unsigned char* after = a->raw + kGuard + a->size;
    bool lo = guard_intact(before), hi = guard_intact(after);
    if (lo && hi) continue;
    poison(c, CUDA_ERROR_ILLEGAL_ADDRESS,
           fmt("%s wrote %s the allocation at %p (%zu bytes)", kernel_label(op).c_str(),
               !lo ? "before the start of" : "past the end of", (void*)(a->raw + kGuard), a->size));
    memset(a->raw, kGuardByte, kGuard);
    memset(a->raw + kGuard + a->size, kGuardByte, kGuard);
    return;
  }
}

void run(CUctx_st* c, const Op& op) {
  switch (op.kind) {
    case OpKind::kernel:
      run_kernel(c, op);
      break;
    case OpKind::copy:
      if (!alive(c, op.dst, op.n, op.dst_dev, op.dst_pin) || !alive(c, op.src, op.n, op.src_dev, op.src_pin)) {
        poison(c, CUDA_ERROR_ILLEGAL_ADDRESS, fmt("%scopy of %zu bytes %#lx -> %#lx: memory no longer allocated", op.label.c_str(), op.n,
                                                  (unsigned long)op.src, (unsigned long)op.dst));
        break;
      }
      memcpy(reinterpret_cast<void*>(op.dst), op.staged.empty() ? reinterpret_cast<const void*>(op.src) : op.staged.data(), op.n);
      break;
    case OpKind::memset: {
      if (!in_device(c, op.dst, op.n * size_t(op.elem))) {
        poison(c, CUDA_ERROR_ILLEGAL_ADDRESS, fmt("%smemset of %zu bytes at %#lx: memory no longer allocated", op.label.c_str(),
                                                  op.n * size_t(op.elem), (unsigned long)op.dst));
        break;
      }
      unsigned char* d = reinterpret_cast<unsigned char*>(op.dst);
      if (op.elem == 1) {
        memset(d, int(op.value & 0xFF), op.n);
      } else {
        for (size_t i = 0; i < op.n; i++) memcpy(d + i * op.elem, &op.value, size_t(op.elem));
      }
      break;
    }
    case OpKind::record:
      op.ev->done = true;
      op.ev->t = std::chrono::steady_clock::now();
      break;
  }
}

// flush runs the context's queued work in order; after a fault the rest is dropped, as a faulted
// GPU context runs nothing more. Returns the context's sticky error.
CUresult flush(CUctx_st* c) {
  while (!c->queue.empty()) {
    Op op = std::move(c->queue.front());
    c->queue.pop_front();
    if (c->sticky == CUDA_SUCCESS) run(c, op);
  }
  if (c->sticky != CUDA_SUCCESS) return fail(c->sticky, c->sticky_detail);
  return CUDA_SUCCESS;
}

void invalidate(CUstream s, const std::string& why) {
  if (s->capture == CU_STREAM_CAPTURE_STATUS_ACTIVE) {
    s->capture = CU_STREAM_CAPTURE_STATUS_INVALIDATED;
    s->why = why;
  }
}

// unsafe_during_capture applies the capture modes' rule for "potentially unsafe" calls
// (allocation, synchronous copies): refused, and the capture invalidated, while this thread
// captures in thread-local mode or any thread in global mode; allowed in relaxed mode.
CUresult unsafe_during_capture(CUctx_st* c, const char* call) {
  for (CUstream s : c->streams) {
    if (s->capture != CU_STREAM_CAPTURE_STATUS_ACTIVE) continue;
    bool refuse = s->mode == CU_STREAM_CAPTURE_MODE_GLOBAL ||
                  (s->mode == CU_STREAM_CAPTURE_MODE_THREAD_LOCAL && s->capturer == std::this_thread::get_id());
    if (refuse) {
      std::string why = fmt("%s during a stream capture in %s mode", call, s->mode == CU_STREAM_CAPTURE_MODE_GLOBAL ? "global" : "thread-local");
      invalidate(s, why);
      return fail(CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED, why);
    }
  }
  return CUDA_SUCCESS;
}

// submit queues op on stream s, or appends it to the graph s is capturing.
CUresult submit(CUstream s, Op op, const char* call) {
  if (s->capture == CU_STREAM_CAPTURE_STATUS_INVALIDATED)
    return fail(CUDA_ERROR_STREAM_CAPTURE_INVALIDATED, fmt("%s: the stream's capture was invalidated: %s", call, s->why.c_str()));
  if (s->capture == CU_STREAM_CAPTURE_STATUS_ACTIVE) {
    if (op.kind == OpKind::record) return CUDA_SUCCESS;  // an event in a capture orders, it is no node
    s->graph->ops.push_back(std::move(op));
    return CUDA_SUCCESS;
  }
  s->ctx->queue.push_back(std::move(op));
  return CUDA_SUCCESS;
}

// sync_stream is cuStreamSynchronize's rule: refused while s captures (and the capture
// invalidated), else the queue runs.
CUresult sync_stream(CUctx_st* c, CUstream s, const char* call) {
  if (s->capture != CU_STREAM_CAPTURE_STATUS_NONE) {
    std::string why = fmt("%s of a capturing stream", call);
    invalidate(s, why);
    return fail(CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED, why);
  }
  return flush(c);
}

// --- memory -------------------------------------------------------------------------------------

unsigned char* raw_alloc(size_t size) {
  size_t total = (size + 2 * kGuard + 255) / 256 * 256;
  unsigned char* raw = static_cast<unsigned char*>(aligned_alloc(256, total));
  if (!raw) return nullptr;
  memset(raw, kGuardByte, kGuard);
  memset(raw + kGuard, kFreshByte, size);
  memset(raw + kGuard + size, kGuardByte, kGuard);
  return raw;
}

CUresult copy_op(CUstream s, uintptr_t dst, uintptr_t src, size_t n, bool dst_dev, bool src_dev, const char* call) {
  CUctx_st* c = s->ctx;
  if (n == 0) return CUDA_SUCCESS;
  if (dst == 0 || src == 0) return fail(CUDA_ERROR_INVALID_VALUE, fmt("%s: null pointer", call));
  if (dst_dev && !in_device(c, dst, n))
    return fail(CUDA_ERROR_INVALID_VALUE, fmt("%s: destination [%#lx, +%zu) is not inside one live device allocation", call, (unsigned long)dst, n));
  if (src_dev && !in_device(c, src, n))
    return fail(CUDA_ERROR_INVALID_VALUE, fmt("%s: source [%#lx, +%zu) is not inside one live device allocation", call, (unsigned long)src, n));
  bool host_pinned = (!dst_dev && in_pinned(c, dst, n)) || (!src_dev && in_pinned(c, src, n));
  bool pageable = (!dst_dev || !src_dev) && !host_pinned;
  if (pageable && s->capture == CU_STREAM_CAPTURE_STATUS_ACTIVE) {
    std::string why = fmt("%s with pageable host memory during a stream capture", call);
    invalidate(s, why);
    return fail(CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED, why);
  }
  Op op{OpKind::copy};
  op.dst = dst, op.src = src, op.n = n;
  op.dst_dev = dst_dev, op.src_dev = src_dev;
  op.dst_pin = !dst_dev && in_pinned(c, dst, n), op.src_pin = !src_dev && in_pinned(c, src, n);
  if (pageable && !src_dev) {
    // CUDA stages pageable sources before returning: the caller may reuse its buffer at once.
    const unsigned char* p = reinterpret_cast<const unsigned char*>(src);
    op.staged.assign(p, p + n);
  }
  TRY(submit(s, std::move(op), call));
  // A copy into pageable memory has completed when the call returns.
  if (pageable && !dst_dev) return sync_stream(c, s, call);
  return CUDA_SUCCESS;
}

CUresult memset_op(CUstream s, CUdeviceptr dst, unsigned value, int elem, size_t n, const char* call) {
  if (n == 0) return CUDA_SUCCESS;
  if (!in_device(s->ctx, dst, n * size_t(elem)))
    return fail(CUDA_ERROR_INVALID_VALUE, fmt("%s: [%#llx, +%zu) is not inside one live device allocation", call, (unsigned long long)dst, n * size_t(elem)));
  if (elem > 1 && dst % unsigned(elem)) return fail(CUDA_ERROR_INVALID_VALUE, fmt("%s: destination not %d-byte aligned", call, elem));
  Op op{OpKind::memset};
  op.dst = dst, op.value = value, op.elem = elem, op.n = n;
  return submit(s, std::move(op), call);
}

void release_context(CUctx_st* c) {
  c->queue.clear();
  for (auto& kv : c->mem) free(kv.second.raw);
  for (auto& kv : c->host) free(kv.second.raw);
  c->mem.clear();
  c->host.clear();
  c->used = 0;
  for (CUstream s : c->streams) delete s;
  for (CUevent e : c->events) delete e;
  for (CUmodule m : c->mods) delete m;
  for (CUgraph g : c->graphs) delete g;
  for (CUgraphExec e : c->execs) delete e;
  c->streams.clear(), c->events.clear(), c->mods.clear(), c->graphs.clear(), c->execs.clear();
  c->sticky = CUDA_SUCCESS;
  c->sticky_detail.clear();
  c->legacy = CUstream_st{c, 0};
  c->active = false;
}

// --- PTX ----------------------------------------------------------------------------------------

struct PtxEntry {
  std::string name;
  std::vector<int> sizes;
  int maxntid = 0, shared = 0, regs = 0;
};

int type_size(const std::string& t) {
  if (t == ".u8" || t == ".s8" || t == ".b8") return 1;
  if (t == ".u16" || t == ".s16" || t == ".b16" || t == ".f16") return 2;
  if (t == ".u32" || t == ".s32" || t == ".b32" || t == ".f32") return 4;
  if (t == ".u64" || t == ".s64" || t == ".b64" || t == ".f64") return 8;
  return 0;
}

// declared_bytes reads "… .TYPE name[K]" or "… .TYPE name" (one element) from a declaration.
int declared_bytes(const std::string& decl) {
  size_t dot = std::string::npos;
  for (size_t p = decl.find('.'); p != std::string::npos; p = decl.find('.', p + 1)) {
    size_t e = decl.find_first_of(" \t", p);
    if (type_size(decl.substr(p, e - p)) > 0) dot = p;
  }
  if (dot == std::string::npos) return -1;
  size_t e = decl.find_first_of(" \t", dot);
  int t = type_size(decl.substr(dot, e - dot));
  size_t lb = decl.find('[', e);
  return lb == std::string::npos ? t : t * atoi(decl.c_str() + lb + 1);
}

// parse_ptx reads the header and every .entry's parameters, launch bound and shared memory.
CUresult parse_ptx(const std::string& ptx, int* version, int* target, std::vector<PtxEntry>* out, std::string* err) {
  size_t v = ptx.find(".version");
  int maj = 0, min = 0;
  if (v == std::string::npos || sscanf(ptx.c_str() + v, ".version %d.%d", &maj, &min) != 2) {
    *err = "not PTX text: no .version directive (cubins and fatbins are not emulated)";
    return CUDA_ERROR_INVALID_IMAGE;
  }
  *version = maj * 10 + min;
  size_t t = ptx.find(".target");
  if (t == std::string::npos || sscanf(ptx.c_str() + t, ".target sm_%d", target) != 1) {
    *err = "no .target sm_NN directive";
    return CUDA_ERROR_INVALID_PTX;
  }
  for (size_t p = ptx.find(".entry"); p != std::string::npos; p = ptx.find(".entry", p + 1)) {
    PtxEntry e;
    size_t open = ptx.find('(', p), brace = ptx.find('{', p);
    if (brace == std::string::npos) {
      *err = "an .entry without a body";
      return CUDA_ERROR_INVALID_PTX;
    }
    size_t name0 = ptx.find_first_not_of(" \t", p + 6);
    e.name = ptx.substr(name0, ptx.find_first_of(" \t\n(", name0) - name0);
    size_t body = brace;
    if (open != std::string::npos && open < brace) {
      size_t close = ptx.find(')', open);
      std::string params = ptx.substr(open + 1, close - open - 1);
      for (size_t q = params.find(".param"); q != std::string::npos; q = params.find(".param", q + 1)) {
        size_t end = params.find(',', q);
        int n = declared_bytes(params.substr(q, end == std::string::npos ? std::string::npos : end - q));
        if (n <= 0) {
          *err = "entry " + e.name + ": a parameter of unknown type";
          return CUDA_ERROR_INVALID_PTX;
        }
        e.sizes.push_back(n);
      }
      size_t ntid = ptx.find(".maxntid", close);
      if (ntid != std::string::npos && ntid < brace) {
        int x = 1, y = 1, z = 1;
        sscanf(ptx.c_str() + ntid, ".maxntid %d, %d, %d", &x, &y, &z);
        e.maxntid = x * y * z;
      }
    }
    int depth = 0;
    size_t q = body;
    for (; q < ptx.size(); q++) {
      if (ptx[q] == '{') depth++;
      if (ptx[q] == '}' && --depth == 0) break;
    }
    std::string b = ptx.substr(body, q - body);
    for (size_t s = b.find(".shared"); s != std::string::npos; s = b.find(".shared", s + 1)) {
      size_t line0 = b.rfind('\n', s);
      line0 = line0 == std::string::npos ? 0 : line0 + 1;
      if (b.compare(b.find_first_not_of(" \t", line0), 7, ".shared") != 0) continue;  // an ld.shared, not a declaration
      int n = declared_bytes(b.substr(s, b.find(';', s) - s));
      if (n > 0) e.shared += n;
    }
    for (size_t r = b.find(".reg"); r != std::string::npos; r = b.find(".reg", r + 1)) {
      size_t lt = b.find('<', r), semi = b.find(';', r);
      if (lt != std::string::npos && lt < semi) e.regs += atoi(b.c_str() + lt + 1);
    }
    out->push_back(e);
    p = q;
  }
  return CUDA_SUCCESS;
}

std::string sizes_text(const std::vector<int>& s) {
  std::string o;
  for (int n : s) o += (o.empty() ? "" : ",") + std::to_string(n);
  return "(" + o + ")";
}

CUresult load_module(CUmodule* mod, const void* image, std::string* log) {
  CUctx_st* c;
  TRY(current(&c, "cuModuleLoadData"));
  if (!image) return fail(CUDA_ERROR_INVALID_VALUE, "cuModuleLoadData: null image");
  std::string ptx(static_cast<const char*>(image));
  int version = 0, target = 0;
  std::vector<PtxEntry> entries;
  std::string err;
  CUresult r = parse_ptx(ptx, &version, &target, &entries, &err);
  const Card& card = g_cards[size_t(c->dev)];
  if (r == CUDA_SUCCESS && version > kMaxPTX) {
    r = CUDA_ERROR_UNSUPPORTED_PTX_VERSION;
    err = fmt("PTX ISA %d.%d is newer than this driver's %d.%d", version / 10, version % 10, kMaxPTX / 10, kMaxPTX % 10);
  }
  if (r == CUDA_SUCCESS && target > card.major * 10 + card.minor) {
    r = CUDA_ERROR_NO_BINARY_FOR_GPU;
    err = fmt("PTX for sm_%d cannot run on compute capability %d.%d", target, card.major, card.minor);
  }
  auto m = std::make_unique<CUmod_st>();
  m->ctx = c;
  m->ptx_version = version;
  for (const PtxEntry& e : entries) {
    if (r != CUDA_SUCCESS) break;
    const cudaemu::Kernel* k = nullptr;
    for (const auto& x : registry())
      if (e.name == x.name) k = &x;
    if (!k) {
      r = CUDA_ERROR_NOT_FOUND;
      err = "entry " + e.name + " has no emulated kernel (add it to kernels/emu/registry.h)";
      break;
    }
    std::vector<int> want;
    for (char ch : k->sig) want.push_back(int(cudaemu::size_of(ch)));
    if (want != e.sizes) {
      r = CUDA_ERROR_INVALID_PTX;
      err = fmt("entry %s: the PTX's %zu parameters %s differ from the emulated kernel's %zu %s: is the PTX stale (make kernels)?",
                e.name.c_str(), e.sizes.size(), sizes_text(e.sizes).c_str(), want.size(), sizes_text(want).c_str());
      break;
    }
    auto f = std::make_unique<CUfunc_st>();
    f->mod = m.get();
    f->k = k;
    f->sizes = e.sizes;
    f->max_threads = e.maxntid > 0 ? std::min(e.maxntid, 1024) : 1024;
    f->static_shared = e.shared;
    f->max_dynamic = 48 * 1024 - e.shared;
    f->regs = std::min(e.regs, 255);
    m->fns.push_back(std::move(f));
  }
  if (r != CUDA_SUCCESS) {
    *log = err;
    return fail(r, "cuModuleLoadData: " + err);
  }
  *mod = m.release();
  c->mods.insert(*mod);
  return CUDA_SUCCESS;
}

CUresult check_func(CUctx_st* c, CUfunction f, const char* call) {
  if (f)
    for (CUmodule m : c->mods)
      for (auto& x : m->fns)
        if (x.get() == f) return CUDA_SUCCESS;
  return fail(CUDA_ERROR_INVALID_HANDLE, fmt("%s: %p is not a function of a loaded module", call, (void*)f));
}

// pack_args reads kernelParams as package cuda lays them out (see the file comment) and checks
// them against the kernel's parameters.
CUresult pack_args(CUfunction f, void** params, std::vector<unsigned char>* out) {
  const char* name = f->k->name;
  size_t n = f->sizes.size();
  if (!params) {
    if (n == 0) return CUDA_SUCCESS;
    return fail(CUDA_ERROR_INVALID_VALUE, fmt("cuLaunchKernel %s: kernelParams is NULL, the kernel takes %zu parameters", name, n));
  }
  size_t given = 0;
  while (given <= n + 1 && params[given]) given++;  // entries before the NULL: n values + the end
  if (given != n + 1) {
    return fail(CUDA_ERROR_INVALID_VALUE,
                given <= n ? fmt("cuLaunchKernel %s: %zu arguments packed, the kernel takes %zu", name, given == 0 ? 0 : given - 1, n)
                           : fmt("cuLaunchKernel %s: more than the kernel's %zu arguments packed", name, n));
  }
  for (size_t i = 0; i < n; i++) {
    ptrdiff_t got = static_cast<unsigned char*>(params[i + 1]) - static_cast<unsigned char*>(params[i]);
    if (got != f->sizes[i])
      return fail(CUDA_ERROR_INVALID_VALUE,
                  fmt("cuLaunchKernel %s: argument %zu packed as %td bytes, the kernel's parameter %zu is %d bytes", name, i, got, i,
                      f->sizes[i]));
    const unsigned char* v = static_cast<const unsigned char*>(params[i]);
    out->insert(out->end(), v, v + f->sizes[i]);
  }
  return CUDA_SUCCESS;
}

const char* error_name(CUresult r, const char** desc) {
  switch (r) {
#define E(code, text) \
  case code:          \
    *desc = text;     \
    return #code;
    E(CUDA_SUCCESS, "no error")
    E(CUDA_ERROR_INVALID_VALUE, "invalid argument")
    E(CUDA_ERROR_OUT_OF_MEMORY, "out of memory")
    E(CUDA_ERROR_NOT_INITIALIZED, "initialization error")
    E(CUDA_ERROR_DEINITIALIZED, "driver shutting down")
    E(CUDA_ERROR_NO_DEVICE, "no CUDA-capable device is detected")
    E(CUDA_ERROR_INVALID_DEVICE, "invalid device ordinal")
    E(CUDA_ERROR_INVALID_IMAGE, "device kernel image is invalid")
    E(CUDA_ERROR_INVALID_CONTEXT, "invalid device context")
    E(CUDA_ERROR_NO_BINARY_FOR_GPU, "no kernel image is available for execution on the device")
    E(CUDA_ERROR_INVALID_PTX, "a PTX JIT compilation failed")
    E(CUDA_ERROR_UNSUPPORTED_PTX_VERSION, "the provided PTX was compiled with an unsupported toolchain.")
    E(CUDA_ERROR_JIT_COMPILER_NOT_FOUND, "PTX JIT compiler library not found")
    E(CUDA_ERROR_INVALID_HANDLE, "invalid resource handle")
    E(CUDA_ERROR_ILLEGAL_STATE, "the operation cannot be performed in the present state")
    E(CUDA_ERROR_NOT_FOUND, "named symbol not found")
    E(CUDA_ERROR_NOT_READY, "device not ready")
    E(CUDA_ERROR_ILLEGAL_ADDRESS, "an illegal memory access was encountered")
    E(CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES, "too many resources requested for launch")
    E(CUDA_ERROR_LAUNCH_FAILED, "unspecified launch failure")
    E(CUDA_ERROR_CONTEXT_IS_DESTROYED, "context is destroyed")
    E(CUDA_ERROR_NOT_SUPPORTED, "operation not supported")
    E(CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED, "operation not permitted when stream is capturing")
    E(CUDA_ERROR_STREAM_CAPTURE_INVALIDATED, "operation failed due to a previous error during capture")
    E(CUDA_ERROR_STREAM_CAPTURE_WRONG_THREAD, "attempt to terminate a thread-local capture sequence from another thread")
    E(CUDA_ERROR_UNKNOWN, "unknown error")
#undef E
    default:
      *desc = nullptr;
      return nullptr;
  }
}

}  // namespace

// ================================================================================================
// The driver API.

extern "C" {

CUresult cuGetErrorName(CUresult error, const char** pStr) {
  const char* d;
  *pStr = error_name(error, &d);
  return *pStr ? CUDA_SUCCESS : CUDA_ERROR_INVALID_VALUE;
}

CUresult cuGetErrorString(CUresult error, const char** pStr) {
  error_name(error, pStr);
  return *pStr ? CUDA_SUCCESS : CUDA_ERROR_INVALID_VALUE;
}

// cudaemu_driver_take_detail returns the message behind the most recent failure if it failed with
// code (else NULL) and forgets it. Package cuda appends it to its errors where this driver runs.
const char* cudaemu_driver_take_detail(int code) {
  LOCK;
  if (g_detail_code != CUresult(code) || g_detail.empty()) return nullptr;
  g_detail_taken = g_detail;
  g_detail.clear();
  g_detail_code = CUDA_SUCCESS;
  return g_detail_taken.c_str();
}

CUresult cuInit(unsigned int Flags) {
  LOCK;
  if (Flags != 0) return fail(CUDA_ERROR_INVALID_VALUE, "cuInit: flags must be 0");
  if (!g_inited) {
    TRY(read_cards());
    g_inited = true;
  }
  if (g_cards.empty()) return fail(CUDA_ERROR_NO_DEVICE, "CUDAEMU_DEVICES=0");
  return CUDA_SUCCESS;
}

CUresult cuDriverGetVersion(int* v) {
  if (!v) return CUDA_ERROR_INVALID_VALUE;
  *v = CUDA_VERSION;
  return CUDA_SUCCESS;
}

CUresult cuDeviceGetCount(int* count) {
  LOCK;
  INIT;
  *count = int(g_cards.size());
  return CUDA_SUCCESS;
}

CUresult cuDeviceGet(CUdevice* device, int ordinal) {
  LOCK;
  INIT;
  TRY(check_dev(ordinal));
  *device = ordinal;
  return CUDA_SUCCESS;
}

CUresult cuDeviceGetName(char* name, int len, CUdevice dev) {
  LOCK;
  INIT;
  TRY(check_dev(dev));
  if (!name || len <= 0) return fail(CUDA_ERROR_INVALID_VALUE, "cuDeviceGetName: no buffer");
  snprintf(name, size_t(len), "%s", g_cards[size_t(dev)].name.c_str());
  return CUDA_SUCCESS;
}

CUresult cuDeviceTotalMem(size_t* bytes, CUdevice dev) {
  LOCK;
  INIT;
  TRY(check_dev(dev));
  *bytes = g_cards[size_t(dev)].mem;
  return CUDA_SUCCESS;
}

CUresult cuDeviceGetAttribute(int* pi, CUdevice_attribute attrib, CUdevice dev) {
  LOCK;
  INIT;
  TRY(check_dev(dev));
  const Card& c = g_cards[size_t(dev)];
  switch (attrib) {
    case CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR: *pi = c.major; break;
    case CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR: *pi = c.minor; break;
    case CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT: *pi = c.sms; break;
    case CU_DEVICE_ATTRIBUTE_MAX_THREADS_PER_BLOCK: *pi = 1024; break;
    case CU_DEVICE_ATTRIBUTE_MAX_BLOCK_DIM_X: case CU_DEVICE_ATTRIBUTE_MAX_BLOCK_DIM_Y: *pi = 1024; break;
    case CU_DEVICE_ATTRIBUTE_MAX_BLOCK_DIM_Z: *pi = 64; break;
    case CU_DEVICE_ATTRIBUTE_MAX_GRID_DIM_X: *pi = 0x7fffffff; break;
    case CU_DEVICE_ATTRIBUTE_MAX_GRID_DIM_Y: case CU_DEVICE_ATTRIBUTE_MAX_GRID_DIM_Z: *pi = 65535; break;
    case CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK: *pi = 48 * 1024; break;
    case CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN: *pi = 227 * 1024; break;
    case CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_MULTIPROCESSOR: *pi = 228 * 1024; break;
    case CU_DEVICE_ATTRIBUTE_WARP_SIZE: *pi = 32; break;
    case CU_DEVICE_ATTRIBUTE_MAX_REGISTERS_PER_BLOCK: *pi = 65536; break;
    case CU_DEVICE_ATTRIBUTE_MAX_THREADS_PER_MULTIPROCESSOR: *pi = 2048; break;
    case CU_DEVICE_ATTRIBUTE_CLOCK_RATE: *pi = 1980000; break;         // kHz, H100 SXM boost
    case CU_DEVICE_ATTRIBUTE_MEMORY_CLOCK_RATE: *pi = 2619000; break;  // kHz
    case CU_DEVICE_ATTRIBUTE_GLOBAL_MEMORY_BUS_WIDTH: *pi = 5120; break;
    case CU_DEVICE_ATTRIBUTE_L2_CACHE_SIZE: *pi = 50 << 20; break;
    case CU_DEVICE_ATTRIBUTE_UNIFIED_ADDRESSING: case CU_DEVICE_ATTRIBUTE_CONCURRENT_KERNELS: *pi = 1; break;
    default:
      if (attrib <= 0 || attrib >= CU_DEVICE_ATTRIBUTE_MAX)
        return fail(CUDA_ERROR_INVALID_VALUE, fmt("cuDeviceGetAttribute: attribute %d", int(attrib)));
      *pi = 0;
  }
  return CUDA_SUCCESS;
}

// --- contexts -----------------------------------------------------------------------------------

CUresult cuDevicePrimaryCtxRetain(CUcontext* pctx, CUdevice dev) {
  LOCK;
  INIT;
  TRY(check_dev(dev));
  CUctx_st* c = g_primary[size_t(dev)].get();
  c->retains++;
  c->active = true;
  *pctx = c;
  return CUDA_SUCCESS;
}

CUresult cuDevicePrimaryCtxRelease(CUdevice dev) {
  LOCK;
  INIT;
  TRY(check_dev(dev));
  CUctx_st* c = g_primary[size_t(dev)].get();
  if (c->retains == 0) return fail(CUDA_ERROR_INVALID_CONTEXT, fmt("cuDevicePrimaryCtxRelease: device %d's primary context is not retained", dev));
  if (--c->retains == 0) {
    flush(c);
    release_context(c);  // as the driver does when the last retain goes: memory, modules, streams
  }
  return CUDA_SUCCESS;
}

CUresult cuCtxCreate(CUcontext* pctx, unsigned int flags, CUdevice dev) {
  LOCK;
  INIT;
  TRY(check_dev(dev));
  (void)flags;
  CUctx_st* c = new CUctx_st();
  c->dev = dev;
  c->primary = false;
  c->active = true;
  c->retains = 1;
  g_created.insert(c);
  tl_ctx = c;
  *pctx = c;
  return CUDA_SUCCESS;
}

CUresult cuCtxDestroy(CUcontext ctx) {
  LOCK;
  INIT;
  if (!g_created.count(ctx)) return fail(CUDA_ERROR_INVALID_CONTEXT, "cuCtxDestroy: not a context made by cuCtxCreate");
  flush(ctx);
  release_context(ctx);
  g_created.erase(ctx);
  if (tl_ctx == ctx) tl_ctx = nullptr;
  delete ctx;
  return CUDA_SUCCESS;
}

CUresult cuCtxSetCurrent(CUcontext ctx) {
  LOCK;
  INIT;
  if (ctx) {
    bool known = g_created.count(ctx) > 0;
    for (auto& p : g_primary) known = known || p.get() == ctx;
    if (!known) return fail(CUDA_ERROR_INVALID_CONTEXT, "cuCtxSetCurrent: not a context of this driver");
    if (!ctx->active) return fail(CUDA_ERROR_CONTEXT_IS_DESTROYED, "cuCtxSetCurrent: the context was released");
  }
  tl_ctx = ctx;
  return CUDA_SUCCESS;
}

CUresult cuCtxGetCurrent(CUcontext* pctx) {
  LOCK;
  INIT;
  *pctx = tl_ctx;
  return CUDA_SUCCESS;
}

CUresult cuCtxGetDevice(CUdevice* device) {
  LOCK;
  CUctx_st* c;
  TRY(current(&c, "cuCtxGetDevice"));
  *device = c->dev;
  return CUDA_SUCCESS;
}

CUresult cuCtxSynchronize(void) {
  LOCK;
  CUctx_st* c;
  TRY(current(&c, "cuCtxSynchronize"));
  for (CUstream s : c->streams)
    if (s->capture != CU_STREAM_CAPTURE_STATUS_NONE) return sync_stream(c, s, "cuCtxSynchronize");
  return flush(c);
}

// --- memory -------------------------------------------------------------------------------------

CUresult cuMemGetInfo(size_t* free_, size_t* total) {
  LOCK;
  CUctx_st* c;
  TRY(current(&c, "cuMemGetInfo"));
  size_t mem = g_cards[size_t(c->dev)].mem;
  *total = mem;
  *free_ = mem - std::min(mem, c->used);
  return CUDA_SUCCESS;
}

CUresult cuMemAlloc(CUdeviceptr* dptr, size_t bytesize) {
  LOCK;
  CUctx_st* c;
  TRY(current(&c, "cuMemAlloc"));
  if (bytesize == 0) return fail(CUDA_ERROR_INVALID_VALUE, "cuMemAlloc: 0 bytes");
  TRY(unsafe_during_capture(c, "cuMemAlloc"));
  size_t rounded = (bytesize + 255) / 256 * 256;
  size_t mem = g_cards[size_t(c->dev)].mem;
  if (c->used + rounded > mem)
    return fail(CUDA_ERROR_OUT_OF_MEMORY, fmt("cuMemAlloc: %zu bytes asked, %zu of %zu free (CUDAEMU_MEM)", bytesize, mem - c->used, mem));
  unsigned char* raw = raw_alloc(bytesize);
  if (!raw) return fail(CUDA_ERROR_OUT_OF_MEMORY, fmt("cuMemAlloc: the host has no %zu bytes to emulate them", bytesize));
  uintptr_t p = uintptr_t(raw + kGuard);
  c->mem[p] = Alloc{raw, bytesize};
  c->used += rounded;
  *dptr = p;
  return CUDA_SUCCESS;
}

CUresult cuMemFree(CUdeviceptr dptr) {
  LOCK;
  CUctx_st* c;
  TRY(current(&c, "cuMemFree"));
  auto it = c->mem.find(dptr);
  if (it == c->mem.end())
    return fail(CUDA_ERROR_INVALID_VALUE, fmt("cuMemFree(%#llx): not a live allocation (double free?)", (unsigned long long)dptr));
  TRY(flush(c));  // cuMemFree waits for the work that may use the memory
  c->used -= (it->second.size + 255) / 256 * 256;
  free(it->second.raw);
  c->mem.erase(it);
  return CUDA_SUCCESS;
}

CUresult cuMemAllocHost(void** pp, size_t bytesize) {
  LOCK;
  CUctx_st* c;
  TRY(current(&c, "cuMemAllocHost"));
  if (bytesize == 0) return fail(CUDA_ERROR_INVALID_VALUE, "cuMemAllocHost: 0 bytes");
  TRY(unsafe_during_capture(c, "cuMemAllocHost"));
  unsigned char* raw = raw_alloc(bytesize);
  if (!raw) return fail(CUDA_ERROR_OUT_OF_MEMORY, fmt("cuMemAllocHost: %zu bytes", bytesize));
  c->host[uintptr_t(raw + kGuard)] = Alloc{raw, bytesize};
  *pp = raw + kGuard;
  return CUDA_SUCCESS;
}

CUresult cuMemFreeHost(void* p) {
  LOCK;
  CUctx_st* c;
  TRY(current(&c, "cuMemFreeHost"));
  auto it = c->host.find(uintptr_t(p));
  if (it == c->host.end()) return fail(CUDA_ERROR_INVALID_VALUE, fmt("cuMemFreeHost(%p): not pinned memory of this context", p));
  TRY(flush(c));
  free(it->second.raw);
  c->host.erase(it);
  return CUDA_SUCCESS;
}

#define ASYNC_COPY(name, fn, DST, SRC, ddev, sdev)                                            \
  CUresult fn {                                                                           \
    LOCK;                                                                                 \
    CUctx_st* c;                                                                          \
    TRY(current(&c, name));                                                                \
    CUstream s;                                                                           \
    TRY(stream_of(c, hStream, &s, name));                                                  \
    return copy_op(s, uintptr_t(DST), uintptr_t(SRC), ByteCount, ddev, sdev, name);        \
  }
#define SYNC_COPY(name, fn, DST, SRC, ddev, sdev)                                             \
  CUresult fn {                                                                           \
    LOCK;                                                                                 \
    CUctx_st* c;                                                                          \
    TRY(current(&c, name));                                                                \
    TRY(unsafe_during_capture(c, name));                                                   \
    TRY(copy_op(&c->legacy, uintptr_t(DST), uintptr_t(SRC), ByteCount, ddev, sdev, name)); \
    return flush(c);                                                                      \
  }

ASYNC_COPY("cuMemcpyHtoDAsync", cuMemcpyHtoDAsync(CUdeviceptr dstDevice, const void* srcHost, size_t ByteCount, CUstream hStream), dstDevice, srcHost, true, false)
ASYNC_COPY("cuMemcpyDtoHAsync", cuMemcpyDtoHAsync(void* dstHost, CUdeviceptr srcDevice, size_t ByteCount, CUstream hStream), dstHost, srcDevice, false, true)
ASYNC_COPY("cuMemcpyDtoDAsync", cuMemcpyDtoDAsync(CUdeviceptr dstDevice, CUdeviceptr srcDevice, size_t ByteCount, CUstream hStream), dstDevice, srcDevice, true, true)
SYNC_COPY("cuMemcpyHtoD", cuMemcpyHtoD(CUdeviceptr dstDevice, const void* srcHost, size_t ByteCount), dstDevice, srcHost, true, false)
SYNC_COPY("cuMemcpyDtoH", cuMemcpyDtoH(void* dstHost, CUdeviceptr srcDevice, size_t ByteCount), dstHost, srcDevice, false, true)
SYNC_COPY("cuMemcpyDtoD", cuMemcpyDtoD(CUdeviceptr dstDevice, CUdeviceptr srcDevice, size_t ByteCount), dstDevice, srcDevice, true, true)

namespace {
CUresult memset_call(CUstream hStream, bool sync, CUdeviceptr dst, unsigned value, int elem, size_t n, const char* call) {
  CUctx_st* c;
  TRY(current(&c, call));
  CUstream s;
  TRY(stream_of(c, hStream, &s, call));
  if (sync) TRY(unsafe_during_capture(c, call));
  TRY(memset_op(s, dst, value, elem, n, call));
  return sync ? flush(c) : CUDA_SUCCESS;
}
}  // namespace

CUresult cuMemsetD8(CUdeviceptr dstDevice, unsigned char uc, size_t N) {
  LOCK;
  return memset_call(nullptr, true, dstDevice, uc, 1, N, "cuMemsetD8");
}
CUresult cuMemsetD16(CUdeviceptr dstDevice, unsigned short us, size_t N) {
  LOCK;
  return memset_call(nullptr, true, dstDevice, us, 2, N, "cuMemsetD16");
}
CUresult cuMemsetD32(CUdeviceptr dstDevice, unsigned int ui, size_t N) {
  LOCK;
  return memset_call(nullptr, true, dstDevice, ui, 4, N, "cuMemsetD32");
}
CUresult cuMemsetD8Async(CUdeviceptr dstDevice, unsigned char uc, size_t N, CUstream hStream) {
  LOCK;
  return memset_call(hStream, false, dstDevice, uc, 1, N, "cuMemsetD8Async");
}
CUresult cuMemsetD16Async(CUdeviceptr dstDevice, unsigned short us, size_t N, CUstream hStream) {
  LOCK;
  return memset_call(hStream, false, dstDevice, us, 2, N, "cuMemsetD16Async");
}
CUresult cuMemsetD32Async(CUdeviceptr dstDevice, unsigned int ui, size_t N, CUstream hStream) {
  LOCK;
  return memset_call(hStream, false, dstDevice, ui, 4, N, "cuMemsetD32Async");
}

// --- modules and functions ----------------------------------------------------------------------

CUresult cuModuleLoadDataEx(CUmodule* module, const void* image, unsigned int numOptions, CUjit_option* options, void** optionValues) {
  LOCK;
  char* errlog = nullptr;
  size_t errlog_size = 0;
  for (unsigned i = 0; i < numOptions; i++) {
    if (options[i] == CU_JIT_ERROR_LOG_BUFFER) errlog = static_cast<char*>(optionValues[i]);
    if (options[i] == CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES) errlog_size = size_t(uintptr_t(optionValues[i]));
  }
  std::string log;
  CUresult r = load_module(module, image, &log);
  if (errlog && errlog_size > 0) snprintf(errlog, errlog_size, "%s", log.c_str());
  return r;
}

CUresult cuModuleLoadData(CUmodule* module, const void* image) {
  LOCK;
  std::string log;
  return load_module(module, image, &log);
}

CUresult cuModuleUnload(CUmodule hmod) {
  LOCK;
  CUctx_st* c;
  TRY(current(&c, "cuModuleUnload"));
  if (!c->mods.count(hmod)) return fail(CUDA_ERROR_INVALID_HANDLE, "cuModuleUnload: not a loaded module");
  TRY(flush(c));
  c->mods.erase(hmod);
  delete hmod;
  return CUDA_SUCCESS;
}

CUresult cuModuleGetFunction(CUfunction* hfunc, CUmodule hmod, const char* name) {
  LOCK;
  CUctx_st* c;
  TRY(current(&c, "cuModuleGetFunction"));
  if (!c->mods.count(hmod)) return fail(CUDA_ERROR_INVALID_HANDLE, "cuModuleGetFunction: not a loaded module");
  for (auto& f : hmod->fns)
    if (strcmp(f->k->name, name) == 0) {
      *hfunc = f.get();
      return CUDA_SUCCESS;
    }
  return fail(CUDA_ERROR_NOT_FOUND, fmt("cuModuleGetFunction: no entry %s in the module", name));
}

CUresult cuFuncGetAttribute(int* pi, CUfunction_attribute attrib, CUfunction f) {
  LOCK;
  CUctx_st* c;
  TRY(current(&c, "cuFuncGetAttribute"));
  TRY(check_func(c, f, "cuFuncGetAttribute"));
  const Card& card = g_cards[size_t(c->dev)];
  switch (attrib) {
    case CU_FUNC_ATTRIBUTE_MAX_THREADS_PER_BLOCK: *pi = f->max_threads; break;
    case CU_FUNC_ATTRIBUTE_SHARED_SIZE_BYTES: *pi = f->static_shared; break;
    case CU_FUNC_ATTRIBUTE_CONST_SIZE_BYTES: *pi = 0; break;
    case CU_FUNC_ATTRIBUTE_LOCAL_SIZE_BYTES: *pi = 0; break;
    case CU_FUNC_ATTRIBUTE_NUM_REGS: *pi = f->regs; break;
    case CU_FUNC_ATTRIBUTE_PTX_VERSION: *pi = f->mod->ptx_version; break;
    case CU_FUNC_ATTRIBUTE_BINARY_VERSION: *pi = card.major * 10 + card.minor; break;
    case CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES: *pi = f->max_dynamic; break;
    default: return fail(CUDA_ERROR_INVALID_VALUE, fmt("cuFuncGetAttribute: attribute %d is not emulated", int(attrib)));
  }
  return CUDA_SUCCESS;
}

CUresult cuFuncSetAttribute(CUfunction f, CUfunction_attribute attrib, int value) {
  LOCK;
  CUctx_st* c;
  TRY(current(&c, "cuFuncSetAttribute"));
  TRY(check_func(c, f, "cuFuncSetAttribute"));
  if (attrib == CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES) {
    if (value < 0 || value + f->static_shared > 227 * 1024)
      return fail(CUDA_ERROR_INVALID_VALUE, fmt("cuFuncSetAttribute %s: %d bytes of dynamic shared memory (+%d static) is over the 227 KiB a block may have",
                                                f->k->name, value, f->static_shared));
    f->max_dynamic = value;
    return CUDA_SUCCESS;
  }
  if (attrib == CU_FUNC_ATTRIBUTE_PREFERRED_SHARED_MEMORY_CARVEOUT) return CUDA_SUCCESS;
  return fail(CUDA_ERROR_INVALID_VALUE, fmt("cuFuncSetAttribute: attribute %d is not emulated", int(attrib)));
}

CUresult cuFuncSetCacheConfig(CUfunction f, CUfunc_cache config) {
  LOCK;
  CUctx_st* c;
  TRY(current(&c, "cuFuncSetCacheConfig"));
  (void)config;
  return check_func(c, f, "cuFuncSetCacheConfig");
}

CUresult cuLaunchKernel(CUfunction f, unsigned int gx, unsigned int gy, unsigned int gz, unsigned int bx, unsigned int by,
                        unsigned int bz, unsigned int sharedMemBytes, CUstream hStream, void** kernelParams, void** extra) {
  LOCK;
  CUctx_st* c;
  TRY(current(&c, "cuLaunchKernel"));
  TRY(check_func(c, f, "cuLaunchKernel"));
  CUstream s;
  TRY(stream_of(c, hStream, &s, "cuLaunchKernel"));
  const char* name = f->k->name;
  if (extra) return fail(CUDA_ERROR_NOT_SUPPORTED, fmt("cuLaunchKernel %s: the extra parameter buffer is not emulated", name));
  unsigned long long threads = (unsigned long long)bx * by * bz;
  if (gx == 0 || gy == 0 || gz == 0 || threads == 0 || gx > 0x7fffffffu || gy > 65535 || gz > 65535 || bx > 1024 || by > 1024 || bz > 64)
    return fail(CUDA_ERROR_INVALID_VALUE, fmt("cuLaunchKernel %s: grid (%u,%u,%u) block (%u,%u,%u) outside the device's limits", name, gx, gy, gz, bx, by, bz));
  if (threads > (unsigned long long)f->max_threads)
    return fail(threads > 1024 ? CUDA_ERROR_INVALID_VALUE : CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES,
                fmt("cuLaunchKernel %s: %llu threads per block, the kernel allows %d", name, threads, f->max_threads));
  if (int(sharedMemBytes) > f->max_dynamic)
    return fail(CUDA_ERROR_INVALID_VALUE, fmt("cuLaunchKernel %s: %u bytes of dynamic shared memory, the kernel allows %d (cuFuncSetAttribute)", name, sharedMemBytes, f->max_dynamic));
  if (sharedMemBytes > 0)
    return fail(CUDA_ERROR_NOT_SUPPORTED, fmt("cuLaunchKernel %s: dynamic shared memory is not emulated (static __shared__ arrays are)", name));
  Op op{OpKind::kernel};
  op.fn = f;
  op.grid = dim3(gx, gy, gz);
  op.block = dim3(bx, by, bz);
  TRY(pack_args(f, kernelParams, &op.args));
  return submit(s, std::move(op), "cuLaunchKernel");
}

// --- streams and events -------------------------------------------------------------------------

CUresult cuStreamCreate(CUstream* phStream, unsigned int Flags) {
  LOCK;
  CUctx_st* c;
  TRY(current(&c, "cuStreamCreate"));
  CUstream s = new CUstream_st{c, Flags};
  c->streams.insert(s);
  *phStream = s;
  return CUDA_SUCCESS;
}

CUresult cuStreamCreateWithPriority(CUstream* phStream, unsigned int flags, int priority) {
  (void)priority;
  return cuStreamCreate(phStream, flags);
}

CUresult cuStreamDestroy(CUstream hStream) {
  LOCK;
  CUctx_st* c;
  TRY(current(&c, "cuStreamDestroy"));
  if (!c->streams.count(hStream)) return fail(CUDA_ERROR_INVALID_HANDLE, "cuStreamDestroy: not a live stream");
  if (hStream->capture != CU_STREAM_CAPTURE_STATUS_NONE) return fail(CUDA_ERROR_ILLEGAL_STATE, "cuStreamDestroy: the stream is capturing");
  flush(c);
  c->streams.erase(hStream);
  delete hStream;
  return CUDA_SUCCESS;
}

CUresult cuStreamSynchronize(CUstream hStream) {
  LOCK;
  CUctx_st* c;
  TRY(current(&c, "cuStreamSynchronize"));
  CUstream s;
  TRY(stream_of(c, hStream, &s, "cuStreamSynchronize"));
  return sync_stream(c, s, "cuStreamSynchronize");
}

CUresult cuStreamQuery(CUstream hStream) {
  LOCK;
  CUctx_st* c;
  TRY(current(&c, "cuStreamQuery"));
  CUstream s;
  TRY(stream_of(c, hStream, &s, "cuStreamQuery"));
  return sync_stream(c, s, "cuStreamQuery");
}

CUresult cuStreamGetFlags(CUstream hStream, unsigned int* flags) {
  LOCK;
  CUctx_st* c;
  TRY(current(&c, "cuStreamGetFlags"));
  CUstream s;
  TRY(stream_of(c, hStream, &s, "cuStreamGetFlags"));
  *flags = s->flags;
  return CUDA_SUCCESS;
}

CUresult cuStreamWaitEvent(CUstream hStream, CUevent hEvent, unsigned int Flags) {
  LOCK;
  CUctx_st* c;
  TRY(current(&c, "cuStreamWaitEvent"));
  CUstream s;
  TRY(stream_of(c, hStream, &s, "cuStreamWaitEvent"));
  (void)Flags;
  if (!c->events.count(hEvent)) return fail(CUDA_ERROR_INVALID_HANDLE, "cuStreamWaitEvent: not a live event");
  return CUDA_SUCCESS;  // one queue for the context runs everything in submission order already
}

CUresult cuEventCreate(CUevent* phEvent, unsigned int Flags) {
  LOCK;
  CUctx_st* c;
  TRY(current(&c, "cuEventCreate"));
  CUevent e = new CUevent_st{c, Flags};
  c->events.insert(e);
  *phEvent = e;
  return CUDA_SUCCESS;
}

CUresult cuEventDestroy(CUevent hEvent) {
  LOCK;
  CUctx_st* c;
  TRY(current(&c, "cuEventDestroy"));
  if (!c->events.count(hEvent)) return fail(CUDA_ERROR_INVALID_HANDLE, "cuEventDestroy: not a live event");
  flush(c);  // a queued record must not outlive its event
  c->events.erase(hEvent);
  delete hEvent;
  return CUDA_SUCCESS;
}

CUresult cuEventRecord(CUevent hEvent, CUstream hStream) {
  LOCK;
  CUctx_st* c;
  TRY(current(&c, "cuEventRecord"));
  CUstream s;
  TRY(stream_of(c, hStream, &s, "cuEventRecord"));
  if (!c->events.count(hEvent)) return fail(CUDA_ERROR_INVALID_HANDLE, "cuEventRecord: not a live event");
  if (s->capture == CU_STREAM_CAPTURE_STATUS_NONE) {
    hEvent->recorded = true;
    hEvent->done = false;
  }
  Op op{OpKind::record};
  op.ev = hEvent;
  return submit(s, std::move(op), "cuEventRecord");
}

CUresult cuEventSynchronize(CUevent hEvent) {
  LOCK;
  CUctx_st* c;
  TRY(current(&c, "cuEventSynchronize"));
  if (!c->events.count(hEvent)) return fail(CUDA_ERROR_INVALID_HANDLE, "cuEventSynchronize: not a live event");
  return flush(c);
}

CUresult cuEventQuery(CUevent hEvent) {
  LOCK;
  CUctx_st* c;
  TRY(current(&c, "cuEventQuery"));
  if (!c->events.count(hEvent)) return fail(CUDA_ERROR_INVALID_HANDLE, "cuEventQuery: not a live event");
  return flush(c);
}

CUresult cuEventElapsedTime(float* pMilliseconds, CUevent hStart, CUevent hEnd) {
  LOCK;
  CUctx_st* c;
  TRY(current(&c, "cuEventElapsedTime"));
  for (CUevent e : {hStart, hEnd}) {
    if (!c->events.count(e)) return fail(CUDA_ERROR_INVALID_HANDLE, "cuEventElapsedTime: not a live event");
    if (!e->recorded) return fail(CUDA_ERROR_INVALID_HANDLE, "cuEventElapsedTime: an event was never recorded");
    if (e->flags & CU_EVENT_DISABLE_TIMING) return fail(CUDA_ERROR_INVALID_HANDLE, "cuEventElapsedTime: an event was made with CU_EVENT_DISABLE_TIMING");
    if (!e->done) return fail(CUDA_ERROR_NOT_READY, "cuEventElapsedTime: an event has not completed (synchronize first)");
  }
  *pMilliseconds = std::chrono::duration<float, std::milli>(hEnd->t - hStart->t).count();
  return CUDA_SUCCESS;
}

// --- graphs -------------------------------------------------------------------------------------

CUresult cuStreamBeginCapture(CUstream hStream, CUstreamCaptureMode mode) {
  LOCK;
  CUctx_st* c;
  TRY(current(&c, "cuStreamBeginCapture"));
  if (is_default(hStream)) return fail(CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED, "cuStreamBeginCapture: the legacy default stream cannot be captured");
  CUstream s;
  TRY(stream_of(c, hStream, &s, "cuStreamBeginCapture"));
  if (s->capture != CU_STREAM_CAPTURE_STATUS_NONE) return fail(CUDA_ERROR_ILLEGAL_STATE, "cuStreamBeginCapture: the stream is already capturing");
  s->capture = CU_STREAM_CAPTURE_STATUS_ACTIVE;
  s->mode = mode;
  s->capturer = std::this_thread::get_id();
  s->graph = new CUgraph_st{c};
  s->why.clear();
  return CUDA_SUCCESS;
}

CUresult cuStreamEndCapture(CUstream hStream, CUgraph* phGraph) {
  LOCK;
  CUctx_st* c;
  TRY(current(&c, "cuStreamEndCapture"));
  CUstream s;
  TRY(stream_of(c, hStream, &s, "cuStreamEndCapture"));
  *phGraph = nullptr;
  if (s->capture == CU_STREAM_CAPTURE_STATUS_NONE) return fail(CUDA_ERROR_ILLEGAL_STATE, "cuStreamEndCapture: the stream is not capturing");
  if (s->mode != CU_STREAM_CAPTURE_MODE_RELAXED && s->capturer != std::this_thread::get_id())
    return fail(CUDA_ERROR_STREAM_CAPTURE_WRONG_THREAD, "cuStreamEndCapture: called from another thread than cuStreamBeginCapture");
  CUgraph g = s->graph;
  bool invalid = s->capture == CU_STREAM_CAPTURE_STATUS_INVALIDATED;
  s->capture = CU_STREAM_CAPTURE_STATUS_NONE;
  s->graph = nullptr;
  if (invalid) {
    delete g;
    return fail(CUDA_ERROR_STREAM_CAPTURE_INVALIDATED, "cuStreamEndCapture: the capture was invalidated: " + s->why);
  }
  for (size_t i = 0; i < g->ops.size(); i++) g->nodes.push_back(std::make_unique<CUgraphNode_st>(CUgraphNode_st{g}));
  c->graphs.insert(g);
  *phGraph = g;
  return CUDA_SUCCESS;
}

CUresult cuStreamIsCapturing(CUstream hStream, CUstreamCaptureStatus* captureStatus) {
  LOCK;
  CUctx_st* c;
  TRY(current(&c, "cuStreamIsCapturing"));
  CUstream s;
  TRY(stream_of(c, hStream, &s, "cuStreamIsCapturing"));
  *captureStatus = s->capture;
  return CUDA_SUCCESS;
}

CUresult cuGraphCreate(CUgraph* phGraph, unsigned int flags) {
  LOCK;
  CUctx_st* c;
  TRY(current(&c, "cuGraphCreate"));
  if (flags != 0) return fail(CUDA_ERROR_INVALID_VALUE, "cuGraphCreate: flags must be 0");
  CUgraph g = new CUgraph_st{c};
  c->graphs.insert(g);
  *phGraph = g;
  return CUDA_SUCCESS;
}

CUresult cuGraphGetNodes(CUgraph hGraph, CUgraphNode* nodes, size_t* numNodes) {
  LOCK;
  CUctx_st* c;
  TRY(current(&c, "cuGraphGetNodes"));
  if (!c->graphs.count(hGraph)) return fail(CUDA_ERROR_INVALID_VALUE, "cuGraphGetNodes: not a live graph");
  if (nodes) {
    size_t n = std::min(*numNodes, hGraph->nodes.size());
    for (size_t i = 0; i < n; i++) nodes[i] = hGraph->nodes[i].get();
    for (size_t i = n; i < *numNodes; i++) nodes[i] = nullptr;
  }
  *numNodes = hGraph->nodes.size();
  return CUDA_SUCCESS;
}

CUresult cuGraphInstantiateWithFlags(CUgraphExec* phGraphExec, CUgraph hGraph, unsigned long long flags) {
  LOCK;
  CUctx_st* c;
  TRY(current(&c, "cuGraphInstantiateWithFlags"));
  if (!c->graphs.count(hGraph)) return fail(CUDA_ERROR_INVALID_VALUE, "cuGraphInstantiateWithFlags: not a live graph");
  (void)flags;
  CUgraphExec e = new CUgraphExec_st{c, hGraph->ops};
  for (size_t i = 0; i < e->ops.size(); i++) e->ops[i].label = fmt("graph node %zu of %zu: ", i, e->ops.size());
  c->execs.insert(e);
  *phGraphExec = e;
  return CUDA_SUCCESS;
}

CUresult cuGraphLaunch(CUgraphExec hGraphExec, CUstream hStream) {
  LOCK;
  CUctx_st* c;
  TRY(current(&c, "cuGraphLaunch"));
  if (!c->execs.count(hGraphExec)) return fail(CUDA_ERROR_INVALID_VALUE, "cuGraphLaunch: not a live executable graph");
  CUstream s;
  TRY(stream_of(c, hStream, &s, "cuGraphLaunch"));
  if (s->capture != CU_STREAM_CAPTURE_STATUS_NONE) return fail(CUDA_ERROR_NOT_SUPPORTED, "cuGraphLaunch into a capturing stream is not emulated");
  c->queue.insert(c->queue.end(), hGraphExec->ops.begin(), hGraphExec->ops.end());
  return CUDA_SUCCESS;
}

CUresult cuGraphExecDestroy(CUgraphExec hGraphExec) {
  LOCK;
  CUctx_st* c;
  TRY(current(&c, "cuGraphExecDestroy"));
  if (!c->execs.erase(hGraphExec)) return fail(CUDA_ERROR_INVALID_VALUE, "cuGraphExecDestroy: not a live executable graph");
  delete hGraphExec;
  return CUDA_SUCCESS;
}

CUresult cuGraphDestroy(CUgraph hGraph) {
  LOCK;
  CUctx_st* c;
  TRY(current(&c, "cuGraphDestroy"));
  if (!c->graphs.erase(hGraph)) return fail(CUDA_ERROR_INVALID_VALUE, "cuGraphDestroy: not a live graph");
  delete hGraph;
  return CUDA_SUCCESS;
}

// cudaemu_unsupported is what the generated stubs call: CUDA_ERROR_NOT_SUPPORTED, and the
// symbol's name printed the first time, so a gap in this driver names itself.
CUresult cudaemu_unsupported(const char* name) {
  LOCK;
  static std::set<std::string> said;
  if (said.insert(name).second) fprintf(stderr, "cudaemu driver: %s is not emulated (CUDA_ERROR_NOT_SUPPORTED)\n", name);
  return fail(CUDA_ERROR_NOT_SUPPORTED, std::string(name) + " is not emulated");
}

}  // extern "C"

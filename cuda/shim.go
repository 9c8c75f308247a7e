//go:build cuda

package cuda

// This is the only file of package cuda with cgo. It fills the gaps of gorgonia.org/cu v0.9.6,
// on the same driver context (the primary context that cu made current on this OS thread):
//   - cuLaunchKernel with our own params array (cu copies every parameter as 8 bytes and mallocs
//     per call);
//   - module loading with the JIT error log, and raw CUfunction handles;
//   - pinned host memory (cuMemAllocHost);
//   - stream capture and CUDA graphs (cu can build graphs but never instantiate or launch them);
//   - cublasGemmEx with int8 inputs and int32 output (cu/blas has none), through dlopen, so the
//     binary does not depend on the toolkit's libcublas.so.<major> being present where it runs;
//   - NVTX ranges through the header-only nvtx3 (a no-op unless a profiler injects itself).
//
// Handles cross this file as uintptr; CUresult comes back as Result.

/*
#define _GNU_SOURCE // RTLD_DEFAULT
#cgo LDFLAGS: -lcuda -ldl
#cgo linux LDFLAGS: -L/usr/lib/x86_64-linux-gnu/stubs -L/usr/local/cuda/lib64/stubs -L/usr/local/cuda/lib64
#cgo linux CFLAGS: -I/usr/local/cuda/include

#include <cuda.h>
#include <dlfcn.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <nvtx3/nvToolsExt.h>

static CUresult gq_module_load(uintptr_t *mod, const void *image, char *errlog, size_t errlog_size) {
	CUjit_option opts[2] = {CU_JIT_ERROR_LOG_BUFFER, CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES};
	void *vals[2] = {errlog, (void *)(uintptr_t)errlog_size};
	CUmodule m = 0;
	CUresult r = cuModuleLoadDataEx(&m, image, 2, opts, vals);
	*mod = (uintptr_t)m;
	return r;
}

static CUresult gq_module_unload(uintptr_t mod) { return cuModuleUnload((CUmodule)mod); }

static CUresult gq_module_function(uintptr_t *fn, uintptr_t mod, const char *name) {
	CUfunction f = 0;
	CUresult r = cuModuleGetFunction(&f, (CUmodule)mod, name);
	*fn = (uintptr_t)f;
	return r;
}

// gq_driver_detail is the explanation behind the driver's latest failure with code, where the
// driver is our emulation (kernels/emu/driver: cudaemu_driver_take_detail); NULL on NVIDIA's.
typedef const char *(*gq_detail_t)(int);
static const char *gq_driver_detail(int code) {
	static int looked;
	static gq_detail_t fn;
	if (!looked) {
		looked = 1;
		fn = (gq_detail_t)dlsym(RTLD_DEFAULT, "cudaemu_driver_take_detail");
	}
	return fn ? fn(code) : NULL;
}

static CUresult gq_launch(uintptr_t fn, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by,
		unsigned bz, unsigned shared, uintptr_t stream, void **params) {
	return cuLaunchKernel((CUfunction)fn, gx, gy, gz, bx, by, bz, shared, (CUstream)stream, params, NULL);
}

static CUresult gq_func_attr(int *v, int attr, uintptr_t fn) {
	return cuFuncGetAttribute(v, (CUfunction_attribute)attr, (CUfunction)fn);
}

static CUresult gq_func_set_attr(uintptr_t fn, int attr, int v) {
	return cuFuncSetAttribute((CUfunction)fn, (CUfunction_attribute)attr, v);
}

static CUresult gq_mem_alloc_host(void **p, size_t n) { return cuMemAllocHost(p, n); }
static CUresult gq_mem_free_host(void *p) { return cuMemFreeHost(p); }

static CUresult gq_begin_capture(uintptr_t stream) {
	// Relaxed: goroutines move between OS threads, so thread-local or global capture modes
	// would reject driver calls that are harmless here (e.g. cuMemAlloc from the pool).
	return cuStreamBeginCapture((CUstream)stream, CU_STREAM_CAPTURE_MODE_RELAXED);
}

static CUresult gq_end_capture(uintptr_t stream, uintptr_t *graph) {
	CUgraph g = 0;
	CUresult r = cuStreamEndCapture((CUstream)stream, &g);
	*graph = (uintptr_t)g;
	return r;
}

static CUresult gq_capturing(uintptr_t stream, int *capturing) {
	CUstreamCaptureStatus s = CU_STREAM_CAPTURE_STATUS_NONE;
	CUresult r = cuStreamIsCapturing((CUstream)stream, &s);
	*capturing = s != CU_STREAM_CAPTURE_STATUS_NONE;
	return r;
}

static CUresult gq_graph_instantiate(uintptr_t *exec, uintptr_t graph) {
	CUgraphExec e = 0;
	CUresult r = cuGraphInstantiateWithFlags(&e, (CUgraph)graph, 0);
	*exec = (uintptr_t)e;
	return r;
}

static CUresult gq_graph_nodes(uintptr_t graph, size_t *n) { return cuGraphGetNodes((CUgraph)graph, NULL, n); }
static CUresult gq_graph_launch(uintptr_t exec, uintptr_t stream) { return cuGraphLaunch((CUgraphExec)exec, (CUstream)stream); }
static CUresult gq_graph_exec_destroy(uintptr_t exec) { return cuGraphExecDestroy((CUgraphExec)exec); }
static CUresult gq_graph_destroy(uintptr_t graph) { return cuGraphDestroy((CUgraph)graph); }

static void gq_result_strings(CUresult r, const char **name, const char **desc) {
	*name = NULL;
	*desc = NULL;
	cuGetErrorName(r, name);
	cuGetErrorString(r, desc);
}

// cuBLAS, opened at run time. The v2 entry points and the enum values used below are the same in
// CUDA 11, 12 and 13 (library_types.h: CUDA_R_8I = 3, CUDA_R_32I = 10; cublas_api.h:
// CUBLAS_COMPUTE_32I = 72, CUBLAS_GEMM_DEFAULT = -1, CUBLAS_OP_N = 0, CUBLAS_OP_T = 1).
typedef int (*gq_cublasCreate_t)(void **);
typedef int (*gq_cublasDestroy_t)(void *);
typedef int (*gq_cublasSetStream_t)(void *, void *);
typedef int (*gq_cublasGemmEx_t)(void *, int, int, int, int, int, const void *, const void *, int, int,
		const void *, int, int, const void *, void *, int, int, int, int);

static void *gq_cublas_lib;
static gq_cublasCreate_t gq_cublasCreate;
static gq_cublasDestroy_t gq_cublasDestroy;
static gq_cublasSetStream_t gq_cublasSetStream;
static gq_cublasGemmEx_t gq_cublasGemmEx;

// gq_cublas_open returns NULL on success, else the dlerror text.
static const char *gq_cublas_open(const char *path) {
	if (gq_cublas_lib) return NULL;
	void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (!h) return dlerror();
	gq_cublasCreate = (gq_cublasCreate_t)dlsym(h, "cublasCreate_v2");
	gq_cublasDestroy = (gq_cublasDestroy_t)dlsym(h, "cublasDestroy_v2");
	gq_cublasSetStream = (gq_cublasSetStream_t)dlsym(h, "cublasSetStream_v2");
	gq_cublasGemmEx = (gq_cublasGemmEx_t)dlsym(h, "cublasGemmEx");
	if (!gq_cublasCreate || !gq_cublasDestroy || !gq_cublasSetStream || !gq_cublasGemmEx) {
		dlclose(h);
		return "cublasCreate_v2, cublasDestroy_v2, cublasSetStream_v2 or cublasGemmEx missing";
	}
	gq_cublas_lib = h;
	return NULL;
}

static int gq_cublas_create(uintptr_t *h) {
	void *p = NULL;
	int s = gq_cublasCreate(&p);
	*h = (uintptr_t)p;
	return s;
}
static int gq_cublas_destroy(uintptr_t h) { return gq_cublasDestroy((void *)h); }
static int gq_cublas_set_stream(uintptr_t h, uintptr_t stream) { return gq_cublasSetStream((void *)h, (void *)stream); }

// out (T, OC) int32 row-major = x (T, C) int8 row-major · w (OC, C) int8 row-major, transposed.
// Column-major view: out^T (OC×T) = op_T(w as C×OC) · op_N(x as C×T): the TN layout that the
// int8 tensor-core path of cuBLAS supports (C must be a multiple of 4).
static int gq_gemm_i8(uintptr_t h, uintptr_t out, uintptr_t x, uintptr_t w, int T, int C, int OC) {
	int32_t alpha = 1, beta = 0;
	return gq_cublasGemmEx((void *)h, 1, 0, OC, T, C, &alpha, (const void *)w, 3, C, (const void *)x, 3, C,
			&beta, (void *)out, 10, OC, 72, -1);
}

static void gq_nvtx_push(const char *name) { nvtxRangePushA(name); }
static void gq_nvtx_pop(void) { nvtxRangePop(); }
*/
import "C"

import (
	"encoding/binary"
	"errors"
	"fmt"
	"unsafe"
)

// Result is a CUresult from a driver call made by this package's own cgo (calls made through
// gorgonia.org/cu return its error type; codeOf reads both).
type Result int

// CUresult values this package reacts to.
const (
	resOK                  = Result(C.CUDA_SUCCESS)
	resInvalidValue        = Result(C.CUDA_ERROR_INVALID_VALUE)
	resOutOfMemory         = Result(C.CUDA_ERROR_OUT_OF_MEMORY)
	resNoBinaryForGPU      = Result(C.CUDA_ERROR_NO_BINARY_FOR_GPU)
	resInvalidPTX          = Result(C.CUDA_ERROR_INVALID_PTX)
	resUnsupportedPTX      = Result(C.CUDA_ERROR_UNSUPPORTED_PTX_VERSION)
	resInvalidImage        = Result(C.CUDA_ERROR_INVALID_IMAGE)
	resJITNotFound         = Result(C.CUDA_ERROR_JIT_COMPILER_NOT_FOUND)
	resNotFound            = Result(C.CUDA_ERROR_NOT_FOUND)
	resLaunchOutOfRes      = Result(C.CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES)
	resStreamCaptureUnsupp = Result(C.CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED)
)

// Error names the CUresult the way the driver does, e.g.
// "CUDA_ERROR_OUT_OF_MEMORY (2): out of memory".
func (r Result) Error() string {
	var name, desc *C.char
	C.gq_result_strings(C.CUresult(r), &name, &desc)
	n, d := "CUDA_ERROR_UNKNOWN_CODE", "unrecognized error code"
	if name != nil {
		n = C.GoString(name)
	}
	if desc != nil {
		d = C.GoString(desc)
	}
	return fmt.Sprintf("%s (%d): %s", n, int(r), d)
}

func check(r C.CUresult) error {
	if r == C.CUDA_SUCCESS {
		return nil
	}
	return withDetail(Result(r))
}

// detailed is a driver error with the explanation the emulated driver gives (tests without a GPU).
type detailed struct {
	Result
	detail string
}

func (e detailed) Error() string { return e.Result.Error() + " [emulated driver: " + e.detail + "]" }
func (e detailed) Unwrap() error { return e.Result }

// withDetail adds the driver's explanation of r, when it has one (only the emulated driver does).
func withDetail(r Result) error {
	if d := C.gq_driver_detail(C.int(r)); d != nil {
		return detailed{r, C.GoString(d)}
	}
	return r
}

func moduleLoad(image []byte) (mod uintptr, jitLog string, err error) {
	// The driver wants a NUL-terminated PTX text; C memory, so nothing moves under it.
	img := C.malloc(C.size_t(len(image) + 1))
	defer C.free(img)
	buf := unsafe.Slice((*byte)(img), len(image)+1)
	copy(buf, image)
	buf[len(image)] = 0
	const logSize = 16 << 10
	errlog := (*C.char)(C.calloc(logSize, 1))
	defer C.free(unsafe.Pointer(errlog))
	var m C.uintptr_t
	err = check(C.gq_module_load(&m, img, errlog, logSize))
	return uintptr(m), C.GoString(errlog), err
}

func moduleUnload(mod uintptr) error { return check(C.gq_module_unload(C.uintptr_t(mod))) }

func moduleFunction(mod uintptr, name string) (uintptr, error) {
	cname := C.CString(name)
	defer C.free(unsafe.Pointer(cname))
	var fn C.uintptr_t
	err := check(C.gq_module_function(&fn, C.uintptr_t(mod), cname))
	return uintptr(fn), err
}

// launchParams is the kernel parameter block, in C memory so that the pointer array handed to
// cuLaunchKernel holds no Go pointers; one per device, guarded by its mutex, reused by every launch.
// The values lie back to back, each with its own size; ptrs[i] points at value i, ptrs[n] at the
// end of the last value and ptrs[n+1] is NULL. The driver reads exactly each parameter's size
// through ptrs[i] and ignores what follows; the emulated driver (kernels/emu/driver) also checks
// the sizes and the count from the pointers, so a value packed with the wrong size fails there.
type launchParams struct {
	vals *[maxArgs*8 + 8]byte
	ptrs *[maxArgs + 2]unsafe.Pointer
}

// maxArgs bounds the number of kernel parameters (our kernels take far fewer; the driver's limit is
// 4 KiB of parameters).
const maxArgs = 64

func newLaunchParams() launchParams {
	mem := C.calloc(1, C.size_t(unsafe.Sizeof([maxArgs*8 + 8]byte{})+unsafe.Sizeof([maxArgs + 2]unsafe.Pointer{})))
	return launchParams{
		vals: (*[maxArgs*8 + 8]byte)(mem),
		ptrs: (*[maxArgs + 2]unsafe.Pointer)(unsafe.Add(mem, maxArgs*8+8)),
	}
}

// set packs the arguments: each value's size bytes, little-endian, as the kernel's parameters are.
func (p launchParams) set(vals []uint64, sizes []uint8) {
	off := 0
	for i, v := range vals {
		p.ptrs[i] = unsafe.Pointer(&p.vals[off])
		if sizes[i] == 4 {
			binary.LittleEndian.PutUint32(p.vals[off:], uint32(v))
		} else {
			binary.LittleEndian.PutUint64(p.vals[off:], v)
		}
		off += int(sizes[i])
	}
	p.ptrs[len(vals)] = unsafe.Pointer(&p.vals[off])
	p.ptrs[len(vals)+1] = nil
}

func (p launchParams) free() { C.free(unsafe.Pointer(p.vals)) }

func launch(fn uintptr, g, b [3]uint32, shared uint32, stream uintptr, p launchParams) error {
	return check(C.gq_launch(C.uintptr_t(fn), C.uint(g[0]), C.uint(g[1]), C.uint(g[2]),
		C.uint(b[0]), C.uint(b[1]), C.uint(b[2]), C.uint(shared), C.uintptr_t(stream),
		(*unsafe.Pointer)(unsafe.Pointer(p.ptrs))))
}

// Function attributes used by FuncInfo and SetMaxDynamicShared.
const (
	attrMaxThreads       = int(C.CU_FUNC_ATTRIBUTE_MAX_THREADS_PER_BLOCK)
	attrSharedBytes      = int(C.CU_FUNC_ATTRIBUTE_SHARED_SIZE_BYTES)
	attrLocalBytes       = int(C.CU_FUNC_ATTRIBUTE_LOCAL_SIZE_BYTES)
	attrNumRegs          = int(C.CU_FUNC_ATTRIBUTE_NUM_REGS)
	attrPTXVersion       = int(C.CU_FUNC_ATTRIBUTE_PTX_VERSION)
	attrBinaryVersion    = int(C.CU_FUNC_ATTRIBUTE_BINARY_VERSION)
	attrMaxDynamicShared = int(C.CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES)
)

func funcAttr(fn uintptr, attr int) (int, error) {
	var v C.int
	err := check(C.gq_func_attr(&v, C.int(attr), C.uintptr_t(fn)))
	return int(v), err
}

func funcSetAttr(fn uintptr, attr, v int) error {
	return check(C.gq_func_set_attr(C.uintptr_t(fn), C.int(attr), C.int(v)))
}

func memAllocHost(n int) (unsafe.Pointer, error) {
	var p unsafe.Pointer
	err := check(C.gq_mem_alloc_host(&p, C.size_t(n)))
	return p, err
}

func memFreeHost(p unsafe.Pointer) error { return check(C.gq_mem_free_host(p)) }

func beginCapture(stream uintptr) error { return check(C.gq_begin_capture(C.uintptr_t(stream))) }

func endCapture(stream uintptr) (uintptr, error) {
	var g C.uintptr_t
	err := check(C.gq_end_capture(C.uintptr_t(stream), &g))
	return uintptr(g), err
}

func isCapturing(stream uintptr) (bool, error) {
	var c C.int
	err := check(C.gq_capturing(C.uintptr_t(stream), &c))
	return c != 0, err
}

func graphInstantiate(graph uintptr) (uintptr, error) {
	var e C.uintptr_t
	err := check(C.gq_graph_instantiate(&e, C.uintptr_t(graph)))
	return uintptr(e), err
}

func graphNodes(graph uintptr) (int, error) {
	var n C.size_t
	err := check(C.gq_graph_nodes(C.uintptr_t(graph), &n))
	return int(n), err
}

func graphLaunch(exec, stream uintptr) error {
	return check(C.gq_graph_launch(C.uintptr_t(exec), C.uintptr_t(stream)))
}

func graphExecDestroy(exec uintptr) error { return check(C.gq_graph_exec_destroy(C.uintptr_t(exec))) }
func graphDestroy(graph uintptr) error    { return check(C.gq_graph_destroy(C.uintptr_t(graph))) }

// cublasStatus is a cublasStatus_t.
type cublasStatus int

func (s cublasStatus) Error() string {
	names := map[int]string{1: "CUBLAS_STATUS_NOT_INITIALIZED", 3: "CUBLAS_STATUS_ALLOC_FAILED",
		7: "CUBLAS_STATUS_INVALID_VALUE", 8: "CUBLAS_STATUS_ARCH_MISMATCH", 11: "CUBLAS_STATUS_MAPPING_ERROR",
		13: "CUBLAS_STATUS_EXECUTION_FAILED", 14: "CUBLAS_STATUS_INTERNAL_ERROR",
		15: "CUBLAS_STATUS_NOT_SUPPORTED", 16: "CUBLAS_STATUS_LICENSE_ERROR"}
	if n, ok := names[int(s)]; ok {
		return fmt.Sprintf("%s (%d)", n, int(s))
	}
	return fmt.Sprintf("cublasStatus %d", int(s))
}

func cublasCheck(s C.int) error {
	if s == 0 {
		return nil
	}
	return cublasStatus(s)
}

func cublasOpen(path string) error {
	cpath := C.CString(path)
	defer C.free(unsafe.Pointer(cpath))
	if msg := C.gq_cublas_open(cpath); msg != nil {
		return errors.New(C.GoString(msg))
	}
	return nil
}

func cublasCreate() (uintptr, error) {
	var h C.uintptr_t
	err := cublasCheck(C.gq_cublas_create(&h))
	return uintptr(h), err
}

func cublasDestroy(h uintptr) error { return cublasCheck(C.gq_cublas_destroy(C.uintptr_t(h))) }

func cublasSetStream(h, stream uintptr) error {
	return cublasCheck(C.gq_cublas_set_stream(C.uintptr_t(h), C.uintptr_t(stream)))
}

func cublasGemmI8(h, out, x, w uintptr, T, C_, OC int) error {
	return cublasCheck(C.gq_gemm_i8(C.uintptr_t(h), C.uintptr_t(out), C.uintptr_t(x), C.uintptr_t(w),
		C.int(T), C.int(C_), C.int(OC)))
}

// nvtxPush and nvtxPop cross cgo; callers skip them unless a profiler is attached (nvtx.go).
func nvtxPush(name string) {
	cname := C.CString(name)
	C.gq_nvtx_push(cname)
	C.free(unsafe.Pointer(cname))
}

func nvtxPop() { C.gq_nvtx_pop() }

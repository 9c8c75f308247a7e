//go:build cuda

package cuda

import "os"

// nvtxOn is whether NVTX calls cross cgo at all. The nvtx3 header-only library is itself a no-op
// until a tool injects itself, which Nsight Systems and Nsight Compute do by setting
// NVTX_INJECTION64_PATH; without it we skip even the cgo call, so ranges cost a branch.
// GPUQUANT_NVTX=1 forces the calls (for a tool that injects another way).
var nvtxOn = os.Getenv("NVTX_INJECTION64_PATH") != "" || os.Getenv("GPUQUANT_NVTX") == "1"

// PushRange opens a named range on the profiler's timeline (nsys, ncu --nvtx); PopRange closes
// the innermost one of this OS thread. Both do nothing when no profiler is attached.
func PushRange(name string) {
	if nvtxOn {
		nvtxPush(name)
	}
}

// PopRange closes the range opened by the latest PushRange.
func PopRange() {
	if nvtxOn {
		nvtxPop()
	}
}

// Range opens a named range and returns the func that closes it: defer cuda.Range("forward")().
func Range(name string) func() {
	PushRange(name)
	return PopRange
}

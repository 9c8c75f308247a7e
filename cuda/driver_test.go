//go:build cuda

package cuda

// Planted faults: each test makes one mistake our Go code could make and requires that it fails
// loudly. They need the emulated driver (kernels/emu/driver, `make test-cuda-emu`), which checks
// what a GPU does not (argument sizes, freed memory, guard zones) and runs asynchronous work only
// at a synchronization; on a real GPU they skip. A fault spoils the context, so those run in a
// child process, as TestLaunchFailureNamesKernel does.

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"unsafe"

	"gorgonia.org/cu"

	"github.com/gpuquant/gpuquant/kernels"
)

func emulated(d *Device) bool { return strings.HasPrefix(d.Info().Name, "cudaemu") }

func needEmulated(t *testing.T, d *Device) {
	t.Helper()
	if !emulated(d) {
		t.Skip("the check belongs to the emulated driver; a GPU does not make it")
	}
}

// inChild runs body in a child process (env GPUQUANT_CUDA_CHILD = the test's name) and returns its
// output; in the child it runs body and returns "".
func inChild(t *testing.T, body func(t *testing.T, d *Device)) string {
	t.Helper()
	if os.Getenv("GPUQUANT_CUDA_CHILD") == t.Name() {
		d, err := Open(0)
		if err != nil {
			t.Fatal(err)
		}
		defer d.Close() // fails with the fault: the context is spoiled, which is the point
		needEmulated(t, d)
		if err := d.LoadModule("cudatest", testPTX); err != nil {
			t.Fatal(err)
		}
		body(t, d)
		return ""
	}
	cmd := exec.Command(os.Args[0], "-test.run=^"+t.Name()+"$", "-test.v")
	cmd.Env = append(os.Environ(), "GPUQUANT_CUDA_CHILD="+t.Name())
	out, _ := cmd.CombinedOutput()
	t.Logf("child:\n%s", out)
	if strings.Contains(string(out), "--- SKIP") {
		t.Skip("skipped in the child")
	}
	return string(out)
}

func wantAll(t *testing.T, out string, parts ...string) {
	t.Helper()
	for _, p := range parts {
		if !strings.Contains(out, p) {
			t.Errorf("want %q in the output", p)
		}
	}
}

func TestPlantedWrongArgumentSize(t *testing.T) {
	d := openWithTestKernels(t)
	needEmulated(t, d)
	out := alloc(t, d, 6*8)
	one := kernels.Dim3{X: 1}
	// gq_test_pack(int64*, int32, uint32, int64, float, uint64, int32): an int32 where the kernel
	// takes an int64 (argument 3), then the last argument missing.
	err := d.Launch("gq_test_pack", one, one, 0, out, int32(-5), uint32(1), int32(-1), float32(1), uint64(2), int32(3))
	if !errors.Is(err, ErrLaunch) || !strings.Contains(err.Error(), "argument 3 packed as 4 bytes, the kernel's parameter 3 is 8 bytes") {
		t.Errorf("int32 for an int64 parameter: %v", err)
	}
	err = d.Launch("gq_test_pack", one, one, 0, out, int32(-5), uint32(1), int64(-1), float32(1), uint64(2))
	if !errors.Is(err, ErrLaunch) || !strings.Contains(err.Error(), "6 arguments packed, the kernel takes 7") {
		t.Errorf("a missing argument: %v", err)
	}
	err = d.Launch("gq_test_pack", one, one, 0, out, int32(-5), uint32(1), int64(-1), float32(1), uint64(2), int32(3), int32(4))
	if !errors.Is(err, ErrLaunch) || !strings.Contains(err.Error(), "more than the kernel's 7 arguments") {
		t.Errorf("an extra argument: %v", err)
	}
	// The device is still usable: launch-time refusals are no faults.
	if err := d.Launch("gq_test_pack", one, one, 0, out, int32(-5), uint32(1), int64(-1), float32(1), uint64(2), int32(3)); err != nil {
		t.Fatal(err)
	}
	if err := d.Sync(); err != nil {
		t.Fatal(err)
	}
}

func TestPlantedReadBackWithoutSync(t *testing.T) {
	d := open(t)
	needEmulated(t, d)
	const n = 4096
	p := alloc(t, d, n)
	h, err := d.AllocHost(n)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Free()
	for i := range h.Bytes() {
		h.Bytes()[i] = 0x11
	}
	if err := d.Memset(p, 0x22, n); err != nil {
		t.Fatal(err)
	}
	// What CopyFromDevice does for pinned memory, without the sync it relies on.
	if err := d.enter(); err != nil {
		t.Fatal(err)
	}
	err = cu.MemcpyDtoHAsync(unsafe.Pointer(&h.Bytes()[0]), cu.DevicePtr(p), n, d.stream)
	d.leave()
	if err != nil {
		t.Fatal(err)
	}
	if b := h.Bytes()[n-1]; b != 0x11 {
		t.Errorf("before the sync the pinned buffer already holds %#x: a missing sync would go unnoticed", b)
	}
	if err := d.Sync(); err != nil {
		t.Fatal(err)
	}
	if b := h.Bytes()[n-1]; b != 0x22 {
		t.Errorf("after the sync the pinned buffer holds %#x, want 0x22", b)
	}
}

func TestPlantedUseAfterFree(t *testing.T) {
	out := inChild(t, func(t *testing.T, d *Device) {
		n := 1000
		x, y := alloc(t, d, 4*n), alloc(t, d, 4*n)
		gone, err := d.Alloc(4 * n)
		if err != nil {
			t.Fatal(err)
		}
		d.Free(gone)
		if err := d.Trim(); err != nil { // the pool caches freed blocks; Trim hands them back
			t.Fatal(err)
		}
		fmt.Println("LAUNCH:", d.Launch("gq_test_axpb", kernels.Dim3{X: 4}, kernels.Dim3{X: 256}, 0, gone, x, float32(1), float32(0), int32(n)))
		fmt.Println("SYNC:", d.Sync())
		fmt.Println("AFTER:", d.CopyToDevice(y, make([]byte, 4*n)))
	})
	if out == "" {
		return
	}
	wantAll(t, out, "LAUNCH: <nil>", "SYNC: cuda: sync", "CUDA_ERROR_ILLEGAL_ADDRESS", "kernel gq_test_axpb", "in no live allocation",
		"AFTER: cuda: copy", "sticky error")
}

func TestPlantedOutOfBoundsWrite(t *testing.T) {
	out := inChild(t, func(t *testing.T, d *Device) {
		n := 1024 // 4 KiB: the pool's block is exactly the buffer, so the guard zone follows it
		x, y := alloc(t, d, 4*(n+8)), alloc(t, d, 4*n)
		fmt.Println("LAUNCH:", d.Launch("gq_test_axpb", kernels.Dim3{X: 5}, kernels.Dim3{X: 256}, 0, y, x, float32(1), float32(0), int32(n+8)))
		fmt.Println("SYNC:", d.Sync())
	})
	if out == "" {
		return
	}
	wantAll(t, out, "LAUNCH: <nil>", "SYNC: cuda: sync", "CUDA_ERROR_ILLEGAL_ADDRESS", "kernel gq_test_axpb", "wrote past the end of the allocation")
}

func TestPlantedGraphBufferMoved(t *testing.T) {
	out := inChild(t, func(t *testing.T, d *Device) {
		n := 1000
		x := alloc(t, d, 4*n)
		y, err := d.Alloc(4 * n)
		if err != nil {
			t.Fatal(err)
		}
		g, err := d.Capture(func() error {
			return d.Launch("gq_test_axpb", kernels.Dim3{X: 4}, kernels.Dim3{X: 256}, 0, y, x, float32(2), float32(1), int32(n))
		})
		if err != nil {
			t.Fatal(err)
		}
		defer g.Close()
		fmt.Println("REPLAY:", g.Launch(), d.Sync())
		d.Free(y) // the buffer moves (a longer context, a bigger batch) and the graph is not recorded again
		if err := d.Trim(); err != nil {
			t.Fatal(err)
		}
		fmt.Println("LAUNCH:", g.Launch())
		fmt.Println("SYNC:", d.Sync())
	})
	if out == "" {
		return
	}
	wantAll(t, out, "REPLAY: <nil> <nil>", "LAUNCH: <nil>", "SYNC: cuda: sync", "CUDA_ERROR_ILLEGAL_ADDRESS",
		"graph node 0 of 1: kernel gq_test_axpb", "in no live allocation", "most recent launch: graph of 1 nodes")
}

// TestNoCurrentContext: a driver call on an OS thread where no context is current fails, so a
// missing LockOSThread or cuCtxSetCurrent in this package cannot pass unnoticed.
func TestNoCurrentContext(t *testing.T) {
	open(t)
	done := make(chan error)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		if err := cu.SetCurrentContext(cu.CUContext{}); err != nil {
			done <- err
			return
		}
		_, err := cu.MemAlloc(64)
		done <- err
	}()
	err := <-done
	if c, ok := codeOf(err); !ok || c != Result(201) { // CUDA_ERROR_INVALID_CONTEXT
		t.Errorf("cuMemAlloc with no current context: %v, want CUDA_ERROR_INVALID_CONTEXT", drv(err))
	}
}

// TestCaptureRules: in the relaxed capture mode we use, an allocation during a capture is
// allowed, and a synchronization of the capturing stream is refused and invalidates the capture
// (package cuda refuses it before the driver does; here the driver is asked directly).
func TestCaptureRules(t *testing.T) {
	d := openWithTestKernels(t)
	var inside error
	g, err := d.Capture(func() error {
		p, err := d.Alloc(1 << 20)
		if err != nil {
			return fmt.Errorf("Alloc while capturing (relaxed mode): %w", err)
		}
		d.Free(p)
		if err := d.enter(); err != nil {
			return err
		}
		inside = drv(d.stream.Synchronize())
		d.leave()
		return nil
	})
	if g != nil {
		g.Close()
	}
	if !isCode(inside, Result(900)) { // CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED
		t.Errorf("cuStreamSynchronize of the capturing stream: %v, want CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED", inside)
	}
	if !isCode(err, Result(901)) || !strings.Contains(err.Error(), "end capture") { // CUDA_ERROR_STREAM_CAPTURE_INVALIDATED
		t.Errorf("end of the invalidated capture: %v, want CUDA_ERROR_STREAM_CAPTURE_INVALIDATED", err)
	}
	if err := d.Sync(); err != nil { // an invalidated capture is no fault: the device goes on
		t.Fatal(err)
	}
}

//go:build cudaemu

package emu

// The emulator itself: every kernel the Go launchers know is compiled in with the same signature,
// mistyped launches are refused, and deliberately broken kernels (broken.cu, never in the PTX)
// are caught by the checks the real kernels pass, so that a pass means something. The kernels'
// comparisons with their CPU twins live in kernels/kerneltest (tags cudaemu and cuda: the same
// test bodies run here on this emulator and on a GPU); this package reuses its W8A8 check.

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/gpuquant/gpuquant/kernels"
	kt "github.com/gpuquant/gpuquant/kernels/kerneltest"
	"github.com/gpuquant/gpuquant/quantize"
)

var passed, failed atomic.Int64

func TestMain(m *testing.M) {
	if err := CheckFresh("."); err != nil {
		fmt.Println(err)
		fmt.Println("cudaemu harness: 0 passed, 1 failed (a source Go does not track)")
		os.Exit(1)
	}
	code := m.Run()
	fmt.Printf("cudaemu harness: %d passed, %d failed (broken kernels caught, sanitizer; sanitized=%v)\n",
		passed.Load(), failed.Load(), Sanitized())
	if failed.Load() > 0 && code == 0 {
		code = 1
	}
	os.Exit(code)
}

// schedules are the three thread orders (kernels/kerneltest runs every case in each).
var schedules = []struct {
	s    Schedule
	seed uint64
}{{Forward, 0}, {Reverse, 0}, {Random, 12345}}

// ---------------------------------------------------------------------------------------------
// The harness itself.

// Every kernel the Go launchers know is compiled into the emulator with the same signature.
func TestSignatures(t *testing.T) {
	emu := Kernels()
	for _, name := range kernels.Names {
		if emu[name] != kernels.Signatures[name] {
			t.Errorf("%s: Go signature %q, compiled kernel %q", name, kernels.Signatures[name], emu[name])
		}
	}
	for name := range emu {
		if _, ok := kernels.Signatures[name]; !ok && !strings.HasPrefix(name, "broken_") {
			t.Errorf("kernel %s has no Go launcher entry", name)
		}
	}
	if len(kernels.Signatures) != len(kernels.Names) {
		t.Errorf("Names and Signatures disagree")
	}
	d := New()
	defer d.Close()
	p, _ := d.Alloc(64)
	err := d.Launch(kernels.KDequant, kernels.Dim3{X: 1, Y: 1, Z: 1}, kernels.Dim3{X: 32, Y: 1, Z: 1}, 0, p, p, p, p, int32(1), int64(1), int32(8))
	if err == nil || !strings.Contains(err.Error(), "do not match") {
		t.Fatalf("a mistyped argument was not caught: %v", err)
	}
}

// TestBrokenKernelsAreCaught runs deliberately wrong kernels (broken.cu) and requires the checks
// of kernels/kerneltest (its W8A8 check, the guard zones) to fail for each, so that a pass of the
// real kernels means something.
func TestBrokenKernelsAreCaught(t *testing.T) {
	count := func(name string, ok bool) {
		if ok {
			passed.Add(1)
		} else {
			failed.Add(1)
			t.Errorf("%s: the bug was not caught", name)
		}
	}

	// A missing __syncthreads: per-order outcome; caught in at least one order (forward).
	x := kt.Randn(rand.New(rand.NewPCG(3, 3)), 16*1000, 1)
	var caughtIn []string
	for _, sc := range schedules {
		d := New()
		d.SetSchedule(sc.s, sc.seed)
		T, C := 16, 1000
		xp := kt.Upload(t, d, kt.F32Bytes(x))
		qa, inv := kt.Output(t, d, T*C), kt.Output(t, d, 4*T)
		if err := d.Launch("broken_quant_act_rows_nosync", kernels.Dim3{X: T, Y: 1, Z: 1}, kernels.Dim3{X: 256, Y: 1, Z: 1}, 0,
			qa, inv, kernels.Ptr(0), xp, int32(T), int32(C), int32(C)); err != nil {
			t.Fatal(err)
		}
		_, wantInv := kt.ActsRef(x, T, C)
		gotInv := kt.BytesF32(kt.Download(t, d, inv, 4*T))
		for i := range wantInv {
			if gotInv[i] != wantInv[i] {
				caughtIn = append(caughtIn, sc.s.String())
				break
			}
		}
		d.Close()
	}
	t.Logf("missing __syncthreads: wrong results in %v", caughtIn)
	count("missing __syncthreads", len(caughtIn) > 0 && caughtIn[0] == "forward")

	// Swapped mma fragment registers: the output comparison fails.
	s := kt.LinSetups([]kt.LinCase{{T: 16, C: 64, OC: 16}}, []quantize.Granularity{{Kind: quantize.PerChannel}})[0]
	ref := kt.CPULinear(t, quantize.KernelW8A8, s)
	ok := t.Run("swapped-fragments", func(t *testing.T) {
		d := New()
		defer d.Close()
		ft := &fakeT{T: t}
		func() {
			defer func() { _ = recover() }()
			kt.RunW8A8(ft, d, s, ref, "broken_gemm_w8a8_swapfrag")
		}()
		if !ft.failed {
			t.Fatal("swapped A fragments gave the right result")
		}
		t.Logf("caught: %s", ft.msg)
	})
	count("swapped mma fragments", ok)

	// Off-by-one write: the guard check fails (in the ASan build ASan itself stops the process,
	// so the case is skipped there).
	if !Sanitized() {
		d := New()
		n := 100
		codes := kt.Upload(t, d, bytes.Repeat([]byte{3}, n))
		scales := kt.Upload(t, d, kt.F32Bytes([]float32{2}))
		out := kt.Output(t, d, 4*n)
		if err := d.Launch("broken_dequant_offbyone", kernels.Dim3{X: 1, Y: 1, Z: 1}, kernels.Dim3{X: 256, Y: 1, Z: 1}, 0,
			out, codes, scales, kernels.Ptr(0), int64(n), int64(n), int32(8)); err != nil {
			t.Fatal(err)
		}
		err := d.CheckGuards()
		t.Logf("off-by-one: %v", err)
		count("off-by-one write", err != nil)
		d.Close()
	}

	// Deadlock and divergent barrier: the launch fails with file:line.
	for _, k := range []struct{ name, want string }{
		{"broken_deadlock", "deadlock"},
		{"broken_divergent_barrier", "divergent __syncthreads"},
	} {
		d := New()
		out := kt.Output(t, d, 4*64)
		err := d.Launch(k.name, kernels.Dim3{X: 1, Y: 1, Z: 1}, kernels.Dim3{X: 64, Y: 1, Z: 1}, 0, out)
		t.Logf("%s: %v", k.name, err)
		count(k.name, err != nil && strings.Contains(err.Error(), k.want) && strings.Contains(err.Error(), "broken.cu:"))
		d.Close()
	}
}

// fakeT records a Fatalf instead of failing the enclosing test (for the broken-kernel checks).
type fakeT struct {
	*testing.T
	failed bool
	msg    string
}

func (f *fakeT) Fatalf(format string, args ...any) {
	f.failed, f.msg = true, fmt.Sprintf(format, args...)
	panic(f)
}

func (f *fakeT) Fatal(args ...any) { f.Fatalf("%s", fmt.Sprint(args...)) }

// TestSanitizerCatchesOutOfBounds (sanitizer build only) runs an off-by-one global write and an
// out-of-bounds __shared__ write in a child process and requires ASan to stop it.
func TestSanitizerCatchesOutOfBounds(t *testing.T) {
	if !Sanitized() {
		t.Skip("needs the sanitizer build (make test-emu-asan)")
	}
	if k := os.Getenv("GQ_ASAN_CHILD"); k != "" {
		d := New()
		out := kt.Output(t, d, 4*100)
		p := kernels.Ptr(0)
		if k == "broken_dequant_offbyone" {
			codes := kt.Upload(t, d, bytes.Repeat([]byte{3}, 100))
			scales := kt.Upload(t, d, kt.F32Bytes([]float32{2}))
			_ = d.Launch(k, kernels.Dim3{X: 1, Y: 1, Z: 1}, kernels.Dim3{X: 256, Y: 1, Z: 1}, 0, out, codes, scales, p, int64(100), int64(100), int32(8))
		} else {
			_ = d.Launch(k, kernels.Dim3{X: 1, Y: 1, Z: 1}, kernels.Dim3{X: 64, Y: 1, Z: 1}, 0, out)
		}
		t.Fatal("not stopped by the sanitizer")
	}
	// UBSan's bounds check sees the __shared__ array's index first; ASan the global guard zone.
	// (Without llvm-symbolizer ASan's stack has no file names, so only the report kind is checked.)
	for k, want := range map[string]string{
		"broken_dequant_offbyone": "AddressSanitizer: use-after-poison",
		"broken_shared_oob":       "broken.cu:78:21: runtime error: index 64 out of bounds",
	} {
		cmd := exec.Command(os.Args[0], "-test.run=^TestSanitizerCatchesOutOfBounds$", "-test.count=1")
		cmd.Env = append(os.Environ(), "GQ_ASAN_CHILD="+k)
		out, err := cmd.CombinedOutput()
		caught := err != nil && strings.Contains(string(out), want)
		if caught {
			passed.Add(1)
			t.Logf("%s: stopped with %q", k, want)
		} else {
			failed.Add(1)
			t.Errorf("%s: not caught by ASan (err %v):\n%s", k, err, out)
		}
	}
}

//go:build cuda

package cuda

// These tests need a GPU: gorgonia.org/cu exits the test binary in its init where there is none.
// They run on a lent GPU machine through scripts/device-check.sh (make device-bundle).

import (
	_ "embed"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"strings"
	"testing"
	"unsafe"

	"github.com/gpuquant/gpuquant/kernels"
)

// testPTX is testdata/testkernels.cu compiled with nvcc -arch=compute_80 -ptx.
//
//go:embed testdata/testkernels.ptx
var testPTX []byte

func open(t testing.TB) *Device {
	t.Helper()
	d, err := Open(0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := d.Close(); err != nil {
			t.Error(err)
		}
	})
	return d
}

func openWithTestKernels(t testing.TB) *Device {
	t.Helper()
	d := open(t)
	if err := d.LoadModule("cudatest", testPTX); err != nil {
		t.Fatal(err)
	}
	return d
}

func alloc(t testing.TB, d *Device, n int) kernels.Ptr {
	t.Helper()
	p, err := d.Alloc(n)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Free(p) })
	return p
}

func randBytes(r *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func f32bytes(x []float32) []byte {
	return unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(x))), 4*len(x))
}

func TestOpenInfo(t *testing.T) {
	d := open(t)
	i := d.Info()
	free, total, err := d.MemInfo()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%s, driver %s, %s free of %s", i, i.DriverString(), fmtBytes(free), fmtBytes(total))
	if i.Major < 8 || i.SMs <= 0 || i.TotalMem <= 0 || free <= 0 || free > total || i.Driver <= 0 {
		t.Errorf("implausible device info %+v (free %d, total %d)", i, free, total)
	}
}

func TestBadDeviceIndex(t *testing.T) {
	d, err := Open(99)
	if err == nil {
		d.Close()
		t.Fatal("Open(99) succeeded")
	}
	msg := err.Error()
	t.Log(msg)
	if !errors.Is(err, ErrNoDevice) || !strings.Contains(msg, "cuda:99") || !strings.Contains(msg, "this machine has") {
		t.Errorf("Open(99): want ErrNoDevice naming cuda:99 and the device count, got %q", msg)
	}
}

func TestPoolAccounting(t *testing.T) {
	d := open(t)
	s0 := d.Stats()
	if s0 != (Stats{}) {
		t.Fatalf("fresh device stats %+v, want zero", s0)
	}
	a, err := d.Alloc(1000)
	if err != nil {
		t.Fatal(err)
	}
	s := d.Stats()
	if s.InUse != 1024 || s.Requested != 1000 || s.Live != 1 || s.Peak != 1024 || s.Cached != 0 || s.Allocs != 1 {
		t.Errorf("after Alloc(1000): %+v", s)
	}
	d.Free(a)
	s = d.Stats()
	if s.InUse != 0 || s.Requested != 0 || s.Live != 0 || s.Cached != 1024 || s.Peak != 1024 || s.Frees != 1 {
		t.Errorf("after Free: %+v", s)
	}
	b, err := d.Alloc(600) // same 1024-byte class: the cached block comes back
	if err != nil {
		t.Fatal(err)
	}
	s = d.Stats()
	if b != a || s.Reused != 1 || s.Cached != 0 || s.InUse != 1024 || s.Requested != 600 {
		t.Errorf("Alloc(600) after Free: ptr %#x (freed %#x), %+v", b, a, s)
	}
	big, err := d.Alloc(3<<20 + 1)
	if err != nil {
		t.Fatal(err)
	}
	s = d.Stats()
	if want := int64(1024 + 4<<20); s.InUse != want || s.Peak != want || s.Reserved() != want {
		t.Errorf("after Alloc(3 MiB + 1): %+v, want InUse = Peak = %d", s, want)
	}
	d.Free(big)
	d.Free(b)
	d.ResetPeak()
	if err := d.Trim(); err != nil {
		t.Fatal(err)
	}
	s = d.Stats()
	if s.InUse != 0 || s.Cached != 0 || s.Peak != 0 || s.Live != 0 {
		t.Errorf("after Free, ResetPeak, Trim: %+v", s)
	}
	func() {
		defer func() {
			if r := recover(); r == nil || !strings.Contains(fmt.Sprint(r), "double free") {
				t.Errorf("double Free: recover() = %v, want a panic naming a double free", r)
			}
		}()
		d.Free(b)
	}()
	for _, n := range []int64{0, 1, 511, 512, 513, 1 << 20, 1<<20 + 1, 17 << 20, 1<<30 + 5} {
		if bs := blockSize(n); bs < n || bs%512 != 0 || (n > 1<<20 && float64(bs) > 1.125*float64(n)+float64(2<<20)) {
			t.Errorf("blockSize(%d) = %d", n, bs)
		}
	}
}

func TestOutOfMemory(t *testing.T) {
	d := open(t)
	free, _, err := d.MemInfo()
	if err != nil {
		t.Fatal(err)
	}
	ask := int(free + 4<<30)
	p, err := d.Alloc(ask)
	if err == nil {
		d.Free(p)
		t.Fatalf("Alloc(%d) with %d free succeeded", ask, free)
	}
	msg := err.Error()
	t.Log(msg)
	if !errors.Is(err, ErrOutOfMemory) || !strings.Contains(msg, "free of") || !strings.Contains(msg, fmtBytes(int64(ask))) {
		t.Errorf("want ErrOutOfMemory naming the request and the free memory, got %q", msg)
	}
	if s := d.Stats(); s.InUse != 0 || s.Live != 0 {
		t.Errorf("failed Alloc changed the accounting: %+v", s)
	}
	q := alloc(t, d, 1<<20) // the device still works
	if err := d.Memset(q, 7, 1<<20); err != nil {
		t.Fatal(err)
	}
	if err := d.Sync(); err != nil {
		t.Fatal(err)
	}
}

func TestCopyRoundTrip(t *testing.T) {
	d := open(t)
	r := rand.New(rand.NewPCG(1, 2))
	for _, n := range []int{1, 31, 33, 4097, pinnedMin - 1, pinnedMin, 2*stagingChunk + 12345, 9*stagingChunk + 1} {
		p := alloc(t, d, n+64)
		if err := d.Memset(p, 0xAB, n+64); err != nil { // poison, guard bytes after n included
			t.Fatal(err)
		}
		src := randBytes(r, n)
		if err := d.CopyToDevice(p, src); err != nil {
			t.Fatal(err)
		}
		got := make([]byte, n+64)
		for i := range got {
			got[i] = 0x5A
		}
		if err := d.CopyFromDevice(got, p); err != nil {
			t.Fatal(err)
		}
		for i := 0; i < n; i++ {
			if got[i] != src[i] {
				t.Fatalf("n=%d: byte %d: got %#x, want %#x", n, i, got[i], src[i])
			}
		}
		for i := n; i < n+64; i++ {
			if got[i] != 0xAB {
				t.Fatalf("n=%d: guard byte %d overwritten: %#x", n, i, got[i])
			}
		}
		// Device to device, into a second buffer.
		q := alloc(t, d, n)
		if err := d.CopyDevice(q, p, n); err != nil {
			t.Fatal(err)
		}
		back := make([]byte, n)
		if err := d.CopyFromDevice(back, q); err != nil {
			t.Fatal(err)
		}
		if string(back) != string(src) {
			t.Fatalf("n=%d: device-to-device copy differs", n)
		}
	}
}

func TestPinnedRoundTrip(t *testing.T) {
	d := open(t)
	r := rand.New(rand.NewPCG(3, 4))
	n := 3*stagingChunk + 7
	in, err := d.AllocHost(n)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Free()
	out, err := d.AllocHost(n)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Free()
	copy(in.Bytes(), randBytes(r, n))
	for i := range out.Bytes() {
		out.Bytes()[i] = 0x5A
	}
	p := alloc(t, d, n)
	if err := d.CopyToDevice(p, in.Bytes()); err != nil {
		t.Fatal(err)
	}
	if err := d.CopyFromDevice(out.Bytes(), p); err != nil {
		t.Fatal(err)
	}
	if string(in.Bytes()) != string(out.Bytes()) {
		t.Fatal("pinned round trip differs")
	}
	// A slice inside a HostBuffer takes the pinned path too.
	if err := d.CopyFromDevice(out.Bytes()[5:1005], p+5); err != nil {
		t.Fatal(err)
	}
}

func TestLaunchAxpb(t *testing.T) {
	d := openWithTestKernels(t)
	r := rand.New(rand.NewPCG(5, 6))
	for _, n := range []int{1, 31, 1000 + 7, 1 << 20} {
		x := make([]float32, n)
		for i := range x {
			x[i] = float32(r.NormFloat64())
		}
		xp, yp := alloc(t, d, 4*n), alloc(t, d, 4*n)
		if err := d.CopyToDevice(xp, f32bytes(x)); err != nil {
			t.Fatal(err)
		}
		if err := d.Memset(yp, 0xFF, 4*n); err != nil { // NaN poison
			t.Fatal(err)
		}
		a, b := float32(1.75), float32(-0.5)
		const block = 128
		if err := d.Launch("gq_test_axpb", kernels.Dim3{X: (n + block - 1) / block}, kernels.Dim3{X: block}, 0, yp, xp, a, b, int32(n)); err != nil {
			t.Fatal(err)
		}
		y := make([]float32, n)
		if err := d.CopyFromDevice(f32bytes(y), yp); err != nil {
			t.Fatal(err)
		}
		for i := range y {
			want := float32(math.FMA(float64(a), float64(x[i]), float64(b)))
			if !(math.Abs(float64(y[i]-want)) <= 1e-6*math.Abs(float64(want))+1e-7) {
				t.Fatalf("n=%d: y[%d] = %v, want %v (x %v)", n, i, y[i], want, x[i])
			}
		}
	}
}

func TestLaunchPacksEachArgumentWithItsSize(t *testing.T) {
	d := openWithTestKernels(t)
	out := alloc(t, d, 6*8)
	i32, u32, i64, f32, u64, tail := int32(-5), uint32(0xFFFFFFF0), int64(-1)<<40, float32(1.5), uint64(1)<<63+7, int32(42)
	if err := d.Launch("gq_test_pack", kernels.Dim3{X: 1}, kernels.Dim3{X: 1}, 0, out, i32, u32, i64, f32, u64, tail); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 6*8)
	if err := d.CopyFromDevice(buf, out); err != nil {
		t.Fatal(err)
	}
	want := []int64{int64(i32), int64(u32), i64, int64(math.Float32bits(f32)), int64(u64), int64(tail)}
	for i, w := range want {
		if got := int64(binary.LittleEndian.Uint64(buf[8*i:])); got != w {
			t.Errorf("argument %d: kernel saw %#x, want %#x", i+1, got, w)
		}
	}
}

func TestLaunchErrors(t *testing.T) {
	d := openWithTestKernels(t)
	out := alloc(t, d, 64)
	err := d.Launch("gq_test_pack", kernels.Dim3{X: 1}, kernels.Dim3{X: 1}, 0, out, 3, uint32(0), int64(0), float32(0), uint64(0), int32(0))
	if err == nil || !strings.Contains(err.Error(), "argument 1 is a int") {
		t.Errorf("untyped int argument: %v", err)
	}
	err = d.Launch("no_such_kernel", kernels.Dim3{X: 1}, kernels.Dim3{X: 1}, 0)
	if !errors.Is(err, ErrNoKernel) || !strings.Contains(err.Error(), "no_such_kernel") {
		t.Errorf("unknown kernel: %v", err)
	}
	err = d.Launch("gq_test_axpb", kernels.Dim3{X: 1}, kernels.Dim3{X: 4096}, 0, out, out, float32(1), float32(0), int32(1))
	if !errors.Is(err, ErrLaunch) || !strings.Contains(err.Error(), "gq_test_axpb grid [1 1 1] block [4096 1 1]") {
		t.Errorf("block of 4096 threads: %v", err)
	}
	t.Log(err)
	err = d.LoadModule("broken", []byte(".version 99.9\n.target sm_80\n.address_size 64\n"))
	if !errors.Is(err, ErrNoKernelImage) || !strings.Contains(err.Error(), "make kernels") {
		t.Errorf("bad PTX: %v", err)
	}
	t.Log(err)
	fi, err := d.Func("gq_test_axpb")
	if err != nil || fi.Regs <= 0 || fi.MaxThreads <= 0 {
		t.Errorf("Func: %+v, %v", fi, err)
	}
	t.Logf("gq_test_axpb: %+v", fi)
}

// TestLaunchFailureNamesKernel runs a trapping kernel in a child process (a trap spoils the CUDA
// context for the rest of the process) and checks that the error names the kernel and its launch.
func TestLaunchFailureNamesKernel(t *testing.T) {
	if os.Getenv("GPUQUANT_CUDA_TRAP_CHILD") == "1" {
		d := openWithTestKernels(t)
		if err := d.Launch("gq_test_trap", kernels.Dim3{X: 2}, kernels.Dim3{X: 32}, 0); err != nil {
			fmt.Println("LAUNCH:", err)
			return
		}
		fmt.Println("SYNC:", d.Sync())
		return
	}
	if testing.Short() {
		t.Skip("-short")
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestLaunchFailureNamesKernel$", "-test.v")
	cmd.Env = append(os.Environ(), "GPUQUANT_CUDA_TRAP_CHILD=1")
	out, _ := cmd.CombinedOutput()
	t.Logf("child:\n%s", out)
	if !strings.Contains(string(out), "SYNC: cuda: sync") || !strings.Contains(string(out), "gq_test_trap grid [2 1 1] block [32 1 1]") {
		t.Errorf("want the sync error to name gq_test_trap with its grid and block")
	}
}

func TestEventsTiming(t *testing.T) {
	d := open(t)
	const n = 256 << 20
	a, b := alloc(t, d, n), alloc(t, d, n)
	if err := d.Memset(a, 1, n); err != nil {
		t.Fatal(err)
	}
	if err := d.CopyDevice(b, a, n); err != nil { // warm-up
		t.Fatal(err)
	}
	dt, err := d.Time(func() error { return d.CopyDevice(b, a, n) })
	if err != nil {
		t.Fatal(err)
	}
	if dt <= 0 || dt.Seconds() > 5 {
		t.Fatalf("256 MiB device copy took %v", dt)
	}
	t.Logf("device-to-device copy of %s: %v, %.0f GB/s (read + write)", fmtBytes(n), dt, 2*n/dt.Seconds()/1e9)
	start, err := d.NewEvent()
	if err != nil {
		t.Fatal(err)
	}
	defer start.Close()
	end, err := d.NewEvent()
	if err != nil {
		t.Fatal(err)
	}
	defer end.Close()
	if err := start.Record(); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 4; i++ {
		if err := d.CopyDevice(b, a, n); err != nil {
			t.Fatal(err)
		}
	}
	if err := end.Record(); err != nil {
		t.Fatal(err)
	}
	dt4, err := Elapsed(start, end)
	if err != nil {
		t.Fatal(err)
	}
	if dt4 < 2*dt {
		t.Errorf("4 copies took %v, one took %v", dt4, dt)
	}
}

func TestGraphCaptureReplay(t *testing.T) {
	d := openWithTestKernels(t)
	r := rand.New(rand.NewPCG(7, 8))
	n := 4099
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(r.NormFloat64())
	}
	xp, tp, yp := alloc(t, d, 4*n), alloc(t, d, 4*n), alloc(t, d, 4*n)
	if err := d.Memset(yp, 0xFF, 4*n); err != nil {
		t.Fatal(err)
	}
	if err := d.Sync(); err != nil {
		t.Fatal(err)
	}
	g, err := d.Capture(func() error {
		if err := d.CopyToDevice(xp, f32bytes(x)); !errors.Is(err, ErrCapturing) {
			return fmt.Errorf("CopyToDevice while capturing: %v, want ErrCapturing", err)
		}
		if err := d.Sync(); !errors.Is(err, ErrCapturing) {
			return fmt.Errorf("Sync while capturing: %v, want ErrCapturing", err)
		}
		if err := d.CopyDevice(tp, xp, 4*n); err != nil {
			return err
		}
		return d.Launch("gq_test_axpb", kernels.Dim3{X: (n + 255) / 256}, kernels.Dim3{X: 256}, 0, yp, tp, float32(2), float32(1), int32(n))
	})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	if g.Nodes != 2 {
		t.Errorf("graph has %d nodes, want 2 (copy, kernel)", g.Nodes)
	}
	for rep := 0; rep < 3; rep++ {
		for i := range x {
			x[i] = float32(r.NormFloat64())
		}
		if err := d.CopyToDevice(xp, f32bytes(x)); err != nil {
			t.Fatal(err)
		}
		if err := g.Launch(); err != nil {
			t.Fatal(err)
		}
		y := make([]float32, n)
		if err := d.CopyFromDevice(f32bytes(y), yp); err != nil {
			t.Fatal(err)
		}
		for i := range y {
			if want := float32(math.FMA(2, float64(x[i]), 1)); math.Abs(float64(y[i]-want)) > 1e-6*math.Abs(float64(want))+1e-7 {
				t.Fatalf("replay %d: y[%d] = %v, want %v", rep, i, y[i], want)
			}
		}
	}
}

func TestGemmI8(t *testing.T) {
	d := open(t)
	r := rand.New(rand.NewPCG(9, 10))
	for _, s := range []struct{ T, C, OC int }{{1, 768, 2304}, {33, 64, 48}, {128, 1600, 6400}} {
		x, w := randBytes(r, s.T*s.C), randBytes(r, s.OC*s.C)
		xp, wp, yp := alloc(t, d, len(x)), alloc(t, d, len(w)), alloc(t, d, 4*s.T*s.OC)
		if err := d.CopyToDevice(xp, x); err != nil {
			t.Fatal(err)
		}
		if err := d.CopyToDevice(wp, w); err != nil {
			t.Fatal(err)
		}
		if err := d.Memset(yp, 0xAB, 4*s.T*s.OC); err != nil {
			t.Fatal(err)
		}
		if err := d.GemmI8(yp, xp, wp, s.T, s.C, s.OC); err != nil {
			if errors.Is(err, ErrNoCUBLAS) {
				t.Skip(err)
			}
			t.Fatal(err)
		}
		got := make([]byte, 4*s.T*s.OC)
		if err := d.CopyFromDevice(got, yp); err != nil {
			t.Fatal(err)
		}
		for i := 0; i < s.T; i++ {
			for o := 0; o < s.OC; o++ {
				var want int32
				for c := 0; c < s.C; c++ {
					want += int32(int8(x[i*s.C+c])) * int32(int8(w[o*s.C+c]))
				}
				if g := int32(binary.LittleEndian.Uint32(got[4*(i*s.OC+o):])); g != want {
					t.Fatalf("T=%d C=%d OC=%d: out[%d, %d] = %d, want %d", s.T, s.C, s.OC, i, o, g, want)
				}
			}
		}
	}
}

func TestNVTXAndClose(t *testing.T) {
	Range("cuda test range")()
	d, err := Open(0)
	if err != nil {
		t.Fatal(err)
	}
	p, err := d.Alloc(4096)
	if err != nil {
		t.Fatal(err)
	}
	_ = p
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if err := d.Close(); err != nil {
		t.Fatal("second Close:", err)
	}
	if _, err := d.Alloc(8); !errors.Is(err, ErrClosed) {
		t.Errorf("Alloc after Close: %v, want ErrClosed", err)
	}
}

func BenchmarkLaunch(b *testing.B) {
	d := openWithTestKernels(b)
	y := alloc(b, d, 4*256)
	b.ReportAllocs()
	a, c, n := float32(1), float32(0), int32(256)
	for b.Loop() {
		if err := d.Launch("gq_test_axpb", kernels.Dim3{X: 1}, kernels.Dim3{X: 256}, 0, y, y, a, c, n); err != nil {
			b.Fatal(err)
		}
	}
	if err := d.Sync(); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkGraph100 replays 100 tiny kernels captured in one graph (compare 100 × BenchmarkLaunch).
func BenchmarkGraph100(b *testing.B) {
	d := openWithTestKernels(b)
	y := alloc(b, d, 4*256)
	g, err := d.Capture(func() error {
		for i := 0; i < 100; i++ {
			if err := d.Launch("gq_test_axpb", kernels.Dim3{X: 1}, kernels.Dim3{X: 256}, 0, y, y, float32(1), float32(0), int32(256)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	defer g.Close()
	for b.Loop() {
		if err := g.Launch(); err != nil {
			b.Fatal(err)
		}
		if err := d.Sync(); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkCopy(b *testing.B) {
	const n = 64 << 20
	for _, dir := range []string{"H2D", "D2H"} {
		for _, mem := range []string{"pageable", "pinned"} {
			b.Run(dir+"/"+mem, func(b *testing.B) {
				d := open(b)
				p := alloc(b, d, n)
				host := make([]byte, n)
				if mem == "pinned" {
					h, err := d.AllocHost(n)
					if err != nil {
						b.Fatal(err)
					}
					defer h.Free()
					host = h.Bytes()
				}
				b.SetBytes(n)
				for b.Loop() {
					var err error
					if dir == "H2D" {
						err = d.CopyToDevice(p, host)
						if err == nil {
							err = d.Sync()
						}
					} else {
						err = d.CopyFromDevice(host, p)
					}
					if err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// BenchmarkGemmI8 is the cuBLAS int8 baseline: 4096³ and the GPT-2 124M MLP up-projection at T=1024.
func BenchmarkGemmI8(b *testing.B) {
	for _, s := range []struct{ T, C, OC int }{{4096, 4096, 4096}, {1024, 768, 3072}} {
		b.Run(fmt.Sprintf("T%d_C%d_OC%d", s.T, s.C, s.OC), func(b *testing.B) {
			d := open(b)
			r := rand.New(rand.NewPCG(11, 12))
			xp, wp, yp := alloc(b, d, s.T*s.C), alloc(b, d, s.OC*s.C), alloc(b, d, 4*s.T*s.OC)
			if err := d.CopyToDevice(xp, randBytes(r, s.T*s.C)); err != nil {
				b.Fatal(err)
			}
			if err := d.CopyToDevice(wp, randBytes(r, s.OC*s.C)); err != nil {
				b.Fatal(err)
			}
			if err := d.GemmI8(yp, xp, wp, s.T, s.C, s.OC); err != nil { // warm-up, handle creation
				if errors.Is(err, ErrNoCUBLAS) {
					b.Skip(err)
				}
				b.Fatal(err)
			}
			const reps = 20
			var best float64
			for b.Loop() {
				dt, err := d.Time(func() error {
					for i := 0; i < reps; i++ {
						if err := d.GemmI8(yp, xp, wp, s.T, s.C, s.OC); err != nil {
							return err
						}
					}
					return nil
				})
				if err != nil {
					b.Fatal(err)
				}
				if tops := 2 * float64(s.T) * float64(s.C) * float64(s.OC) * reps / dt.Seconds() / 1e12; tops > best {
					best = tops
				}
			}
			b.ReportMetric(best, "TOPS")
		})
	}
}

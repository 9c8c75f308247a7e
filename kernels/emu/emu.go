//go:build cudaemu

package emu

/*
#cgo CXXFLAGS: -std=c++17 -O2 -DCUDAEMU -Wall -Wno-unknown-pragmas
#cgo LDFLAGS: -lstdc++ -lpthread
#include <stdlib.h>
#include "emu.h"
*/
import "C"

import (
	"encoding/binary"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"unsafe"

	"github.com/gpuquant/gpuquant/kernels"
)

// Schedule is the order in which the emulator runs a block's threads between sync points.
type Schedule int

// Schedules.
const (
	Forward Schedule = iota // thread 0 first
	Reverse                 // the last thread first
	Random                  // a seeded shuffle at every step
)

func (s Schedule) String() string { return [...]string{"forward", "reverse", "random"}[s] }

// Guard is the number of bytes before and after every allocation filled with GuardByte (and
// poisoned for ASan in the sanitizer build); CheckGuards reports any that changed.
const (
	Guard     = 256
	GuardByte = 0xA5
	freshByte = 0xCD // new allocations hold this, never zeros
)

type alloc struct {
	base uintptr // start of the C allocation (guard included)
	size int     // bytes the caller asked for
}

// Device implements kernels.Device on host memory.
type Device struct {
	mu     sync.Mutex
	allocs map[kernels.Ptr]alloc
}

var _ kernels.Device = (*Device)(nil)

// New returns an emulated device with the forward schedule.
func New() *Device {
	C.cudaemu_set_schedule(0, 1)
	return &Device{allocs: map[kernels.Ptr]alloc{}}
}

// SetSchedule chooses the thread order of later launches (process-wide).
func (d *Device) SetSchedule(s Schedule, seed uint64) {
	C.cudaemu_set_schedule(C.int(s), C.ulonglong(seed))
}

// Sanitized reports whether the emulator was built with -fsanitize=address (make test-emu-asan).
func Sanitized() bool { return C.cudaemu_sanitized() != 0 }

// goHashed are the extensions of the files in a cgo package's folder whose contents Go's build
// cache hashes (C and C++ sources and headers: go/build's CFiles, CXXFiles and HFiles).
var goHashed = map[string]bool{".c": true, ".cc": true, ".cpp": true, ".cxx": true, ".h": true, ".hh": true, ".hpp": true, ".hxx": true}

var quotedInclude = regexp.MustCompile(`(?m)^[ \t]*#[ \t]*include[ \t]*"([^"]+)"`)

// CheckFresh reports an error when a file the emulator includes is invisible to Go's build cache,
// which would let a test run an emulator compiled from older kernels. Go hashes only the C/C++
// sources and headers of this folder (dir, the kernels/emu folder), so every other file emu.cc
// includes, directly or not (kernels/*.cu, *.cuh, broken.cu), has a committed twin here: NAME.h,
// a symlink to it. With the twins, editing a kernel rebuilds the emulator on the next `go test`.
func CheckFresh(dir string) error {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	seen := map[string]bool{}
	var missing []string
	var walk func(path string) error
	walk = func(path string) error {
		if seen[path] {
			return nil
		}
		seen[path] = true
		if filepath.Dir(path) != abs || !goHashed[filepath.Ext(path)] {
			twin := filepath.Join(abs, filepath.Base(path)+".h")
			ft, err1 := os.Stat(path)
			tt, err2 := os.Stat(twin)
			if err1 != nil || err2 != nil || !os.SameFile(ft, tt) {
				rel, _ := filepath.Rel(abs, path)
				missing = append(missing, fmt.Sprintf("ln -s %s kernels/emu/%s.h", rel, filepath.Base(path)))
			}
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, m := range quotedInclude.FindAllSubmatch(b, -1) {
			if err := walk(filepath.Join(filepath.Dir(path), string(m[1]))); err != nil {
				return fmt.Errorf("emu: %s includes %q: %w", filepath.Base(path), m[1], err)
			}
		}
		return nil
	}
	for _, f := range []string{"emu.h", "emu.cc"} {
		if err := walk(filepath.Join(abs, f)); err != nil {
			return err
		}
	}
	if len(missing) > 0 {
		sort.Strings(missing)
		return fmt.Errorf("emu: Go's build cache does not see %d file(s) the emulator includes, so a test could run a stale emulator; add (and commit) the twins it hashes: %s",
			len(missing), strings.Join(missing, "; "))
	}
	return nil
}

// Kernels returns the emulator's kernel names and argument signatures (one letter per argument:
// p pointer, i int32, u uint32, l int64, f float32).
func Kernels() map[string]string {
	m := map[string]string{}
	for i := range int(C.cudaemu_kernel_count()) {
		m[C.GoString(C.cudaemu_kernel_name(C.int(i)))] = C.GoString(C.cudaemu_kernel_sig(C.int(i)))
	}
	return m
}

// Alloc returns bytes of host memory, 256-byte aligned like cudaMalloc, filled with 0xCD, between
// two guard zones.
func (d *Device) Alloc(bytes int) (kernels.Ptr, error) {
	if bytes <= 0 {
		return 0, fmt.Errorf("emu: alloc of %d bytes", bytes)
	}
	base := uintptr(C.cudaemu_alloc(C.size_t(bytes + 2*Guard)))
	if base == 0 {
		return 0, fmt.Errorf("emu: out of memory allocating %d bytes", bytes)
	}
	C.cudaemu_fill(C.uintptr_t(base), GuardByte, C.size_t(Guard))
	C.cudaemu_fill(C.uintptr_t(base+Guard), freshByte, C.size_t(bytes))
	C.cudaemu_fill(C.uintptr_t(base+Guard+uintptr(bytes)), GuardByte, C.size_t(Guard))
	C.cudaemu_poison(C.uintptr_t(base), Guard, 1)
	C.cudaemu_poison(C.uintptr_t(base+Guard+uintptr(bytes)), Guard, 1)
	p := kernels.Ptr(base + Guard)
	d.mu.Lock()
	d.allocs[p] = alloc{base, bytes}
	d.mu.Unlock()
	return p, nil
}

// Free releases p (no-op for 0 or unknown pointers).
func (d *Device) Free(p kernels.Ptr) {
	d.mu.Lock()
	a, ok := d.allocs[p]
	delete(d.allocs, p)
	d.mu.Unlock()
	if !ok {
		return
	}
	C.cudaemu_poison(C.uintptr_t(a.base), C.size_t(a.size+2*Guard), 0)
	C.cudaemu_free(C.uintptr_t(a.base))
}

// find returns the allocation holding [p, p+n).
func (d *Device) find(p kernels.Ptr, n int) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	for q, a := range d.allocs {
		if p >= q && uintptr(p)+uintptr(n) <= uintptr(q)+uintptr(a.size) {
			return nil
		}
	}
	return fmt.Errorf("emu: [%#x, +%d) is not inside one allocation", uintptr(p), n)
}

// CopyToDevice copies src to dst.
func (d *Device) CopyToDevice(dst kernels.Ptr, src []byte) error {
	if len(src) == 0 {
		return nil
	}
	if err := d.find(dst, len(src)); err != nil {
		return err
	}
	C.cudaemu_copy(C.uintptr_t(dst), C.uintptr_t(uintptr(unsafe.Pointer(&src[0]))), C.size_t(len(src)))
	return nil
}

// CopyFromDevice copies len(dst) bytes from src.
func (d *Device) CopyFromDevice(dst []byte, src kernels.Ptr) error {
	if len(dst) == 0 {
		return nil
	}
	if err := d.find(src, len(dst)); err != nil {
		return err
	}
	C.cudaemu_copy(C.uintptr_t(uintptr(unsafe.Pointer(&dst[0]))), C.uintptr_t(src), C.size_t(len(dst)))
	return nil
}

// Launch runs the kernel to completion (launches are synchronous). Errors: unknown kernel,
// argument kinds that differ from the kernel's parameters, and what the shim detects (deadlock,
// divergent __syncthreads, bad warp collectives), with file:line.
func (d *Device) Launch(name string, grid, block kernels.Dim3, shared int, args ...any) error {
	sig := make([]byte, 0, len(args))
	buf := make([]byte, 0, 8*len(args))
	for i, a := range args {
		switch v := a.(type) {
		case int32:
			sig, buf = append(sig, 'i'), binary.LittleEndian.AppendUint32(buf, uint32(v))
		case uint32:
			sig, buf = append(sig, 'u'), binary.LittleEndian.AppendUint32(buf, v)
		case int64:
			sig, buf = append(sig, 'l'), binary.LittleEndian.AppendUint64(buf, uint64(v))
		case float32:
			sig, buf = append(sig, 'f'), binary.LittleEndian.AppendUint32(buf, math.Float32bits(v))
		case kernels.Ptr:
			sig, buf = append(sig, 'p'), binary.LittleEndian.AppendUint64(buf, uint64(v))
		default:
			return fmt.Errorf("emu: launch %s: argument %d has type %T (want int32, uint32, int64, float32 or kernels.Ptr)", name, i, a)
		}
	}
	// Dim3{X: n} leaves Y and Z zero: read them as 1, as the cuda package does.
	for _, v := range []*int{&grid.Y, &grid.Z, &block.Y, &block.Z} {
		if *v == 0 {
			*v = 1
		}
	}
	for _, v := range []int{grid.X, grid.Y, grid.Z, block.X, block.Y, block.Z} {
		if v < 0 || v > math.MaxUint32 {
			return fmt.Errorf("emu: launch %s: bad grid %v or block %v", name, grid, block)
		}
	}
	cname := C.CString(name)
	defer C.free(unsafe.Pointer(cname))
	csig := C.CString(string(sig))
	defer C.free(unsafe.Pointer(csig))
	var pbuf *C.uchar
	if len(buf) > 0 {
		pbuf = (*C.uchar)(unsafe.Pointer(&buf[0]))
	}
	e := C.cudaemu_launch(cname, C.uint(grid.X), C.uint(grid.Y), C.uint(grid.Z), C.uint(block.X), C.uint(block.Y),
		C.uint(block.Z), C.int(shared), csig, pbuf, C.size_t(len(buf)))
	if e != nil {
		msg := C.GoString(e)
		C.free(unsafe.Pointer(e))
		return fmt.Errorf("emu: launch %s: %s", name, msg)
	}
	return nil
}

// Sync returns at once: launches complete before Launch returns.
func (d *Device) Sync() error { return nil }

// CheckGuards reports every allocation whose guard bytes were overwritten (in the sanitizer build
// the guards are poisoned and ASan reports the access itself).
func (d *Device) CheckGuards() error {
	if Sanitized() {
		return nil
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	var bad []string
	for p, a := range d.allocs {
		if C.cudaemu_guard_ok(C.uintptr_t(a.base), GuardByte, Guard) == 0 {
			bad = append(bad, fmt.Sprintf("before %#x (%d bytes)", uintptr(p), a.size))
		}
		if C.cudaemu_guard_ok(C.uintptr_t(a.base+Guard+uintptr(a.size)), GuardByte, Guard) == 0 {
			bad = append(bad, fmt.Sprintf("after %#x (%d bytes)", uintptr(p), a.size))
		}
	}
	if len(bad) == 0 {
		return nil
	}
	sort.Strings(bad)
	return fmt.Errorf("emu: guard bytes overwritten %v", bad)
}

// Close frees every allocation.
func (d *Device) Close() {
	d.mu.Lock()
	ps := make([]kernels.Ptr, 0, len(d.allocs))
	for p := range d.allocs {
		ps = append(ps, p)
	}
	d.mu.Unlock()
	for _, p := range ps {
		d.Free(p)
	}
}

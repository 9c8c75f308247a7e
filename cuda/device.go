//go:build cuda

package cuda

import (
	"fmt"
	"runtime"
	"sync"
	"unsafe"

	"gorgonia.org/cu"

	_ "github.com/gpuquant/gpuquant/cuda/initcheck" // our message, before gorgonia.org/cu's init exits
	"github.com/gpuquant/gpuquant/kernels"
)

// Info describes an opened device.
type Info struct {
	Index        int
	Name         string
	Major, Minor int   // compute capability
	SMs          int   // multiprocessors
	TotalMem     int64 // bytes
	Driver       int   // CUDA version of the driver, e.g. 13000 for 13.0
}

// String reads like "cuda:0 (NVIDIA H100 80GB HBM3, compute capability 9.0, 132 SMs, 79.6 GiB)".
func (i Info) String() string {
	return fmt.Sprintf("cuda:%d (%s, compute capability %d.%d, %d SMs, %s)", i.Index, i.Name, i.Major, i.Minor, i.SMs, fmtBytes(i.TotalMem))
}

// DriverString is the driver's CUDA version, e.g. "CUDA 13.0".
func (i Info) DriverString() string {
	return fmt.Sprintf("CUDA %d.%d", i.Driver/1000, i.Driver%1000/10)
}

// Device is an opened CUDA device: the device's primary context, one stream, a pool of device
// memory and the loaded kernels. It implements kernels.Device. All its work goes to its stream, in
// order; On gives a view of the same device that works on another stream. A Device is safe for use
// by several goroutines (calls are serialised), but the order of their work is theirs to arrange.
type Device struct {
	st     *state
	stream cu.Stream
	sh     uintptr // the raw CUstream of stream
}

var _ kernels.Device = (*Device)(nil)

// state is what the views of one device share; mu guards all of it and every driver call.
type state struct {
	mu      sync.Mutex
	closed  bool
	info    Info
	dev     cu.Device
	ctx     cu.CUContext
	main    cu.Stream
	pool    pool
	staging staging
	params  launchParams
	mods    []loadedModule
	fns     map[string]uintptr // CUfunction by kernel name
	last    lastLaunch         // the most recent launch, named when a later sync fails
	capture uintptr            // the stream being captured into a graph, 0 if none
	streams []cu.Stream        // made by NewStream, destroyed by Close
	blas    uintptr            // cublasHandle_t, made on first use
	hosts   []*HostBuffer      // pinned buffers handed out, freed by Close
}

type lastLaunch struct {
	name        string
	grid, block [3]uint32
}

// Open opens device cuda:index: checks that it exists and has compute capability 8.0 or newer,
// retains its primary context, makes a stream and loads the modules given to RegisterModule.
func Open(index int) (*Device, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	n, err := cu.NumDevices()
	if err != nil {
		return nil, fmt.Errorf("cuda: count devices: %w", drv(err))
	}
	if index < 0 || index >= n {
		have := "no CUDA device"
		switch {
		case n == 1:
			have = "1 CUDA device (cuda:0)"
		case n > 1:
			have = fmt.Sprintf("%d CUDA devices (cuda:0 … cuda:%d)", n, n-1)
		}
		return nil, fmt.Errorf("cuda: device cuda:%d: %w: this machine has %s", index, ErrNoDevice, have)
	}
	dev, err := cu.GetDevice(index)
	if err != nil {
		return nil, fmt.Errorf("cuda: get device cuda:%d: %w", index, drv(err))
	}
	info := Info{Index: index, Driver: cu.Version()}
	if info.Name, err = dev.Name(); err != nil {
		return nil, fmt.Errorf("cuda: name of cuda:%d: %w", index, drv(err))
	}
	for _, a := range []struct {
		attr cu.DeviceAttribute
		dst  *int
	}{{cu.ComputeCapabilityMajor, &info.Major}, {cu.ComputeCapabilityMinor, &info.Minor}, {cu.MultiprocessorCount, &info.SMs}} {
		if *a.dst, err = dev.Attribute(a.attr); err != nil {
			return nil, fmt.Errorf("cuda: attributes of cuda:%d: %w", index, drv(err))
		}
	}
	if info.TotalMem, err = dev.TotalMem(); err != nil {
		return nil, fmt.Errorf("cuda: memory of cuda:%d: %w", index, drv(err))
	}
	if info.Major < 8 {
		return nil, fmt.Errorf("cuda: %s: %w; use a GPU of the Ampere generation or newer (A100, A10, RTX 30xx, L4, H100 …), or the CPU backend (--device cpu)", info, ErrComputeCapability)
	}
	ctx, err := dev.RetainPrimaryCtx()
	if err != nil {
		return nil, fmt.Errorf("cuda: context on %s: %w", info, drv(err))
	}
	if err := cu.SetCurrentContext(ctx); err != nil {
		dev.ReleasePrimaryCtx()
		return nil, fmt.Errorf("cuda: context on %s: %w", info, drv(err))
	}
	stream, err := cu.MakeStream(cu.NonBlocking)
	if err != nil {
		dev.ReleasePrimaryCtx()
		return nil, fmt.Errorf("cuda: stream on %s: %w", info, drv(err))
	}
	st := &state{info: info, dev: dev, ctx: ctx, main: stream, pool: newPool(), params: newLaunchParams(), fns: map[string]uintptr{}}
	d := &Device{st: st, stream: stream, sh: rawStream(stream)}
	if err := d.loadRegistered(); err != nil {
		d.Close()
		return nil, err
	}
	return d, nil
}

func rawStream(s cu.Stream) uintptr { return uintptr(unsafe.Pointer(s.C())) }

// enter locks the device, pins the goroutine to its OS thread and makes the device's context
// current there (a CUDA context is per thread; goroutines move between threads).
func (d *Device) enter() error {
	d.st.mu.Lock()
	if d.st.closed {
		d.st.mu.Unlock()
		return fmt.Errorf("cuda: cuda:%d: %w", d.st.info.Index, ErrClosed)
	}
	runtime.LockOSThread()
	if err := cu.SetCurrentContext(d.st.ctx); err != nil {
		runtime.UnlockOSThread()
		d.st.mu.Unlock()
		return fmt.Errorf("cuda: set context of %s: %w", d.st.info, drv(err))
	}
	return nil
}

func (d *Device) leave() {
	runtime.UnlockOSThread()
	d.st.mu.Unlock()
}

// Info describes the device.
func (d *Device) Info() Info { return d.st.info }

// MemInfo returns the device's free and total memory as the driver sees it (all processes).
func (d *Device) MemInfo() (free, total int64, err error) {
	if err := d.enter(); err != nil {
		return 0, 0, err
	}
	defer d.leave()
	free, total, err = cu.MemInfo()
	return free, total, drv(err)
}

// Sync waits for all work queued on the device's stream. A kernel's faults (illegal address,
// trap) surface here; the error names the most recent launch.
func (d *Device) Sync() error {
	if err := d.enter(); err != nil {
		return err
	}
	defer d.leave()
	return d.syncLocked("sync")
}

func (d *Device) syncLocked(op string) error {
	if d.st.capture != 0 && d.st.capture == d.sh {
		return fmt.Errorf("cuda: %s on %s: %w", op, d.st.info, ErrCapturing)
	}
	if err := d.stream.Synchronize(); err != nil {
		err = drv(err)
		if l := d.st.last; l.name != "" {
			return fmt.Errorf("cuda: %s on %s: %w (most recent launch: %s grid %v block %v; kernel faults surface at the next sync: run under compute-sanitizer to find the access)", op, d.st.info, err, l.name, l.grid, l.block)
		}
		return fmt.Errorf("cuda: %s on %s: %w", op, d.st.info, err)
	}
	return nil
}

// Stream is an extra stream of a device, made by NewStream; On(s) gives a Device that works on it.
type Stream struct {
	d *Device
	s cu.Stream
}

// NewStream makes a non-blocking stream on the device.
func (d *Device) NewStream() (*Stream, error) {
	if err := d.enter(); err != nil {
		return nil, err
	}
	defer d.leave()
	s, err := cu.MakeStream(cu.NonBlocking)
	if err != nil {
		return nil, fmt.Errorf("cuda: stream on %s: %w", d.st.info, drv(err))
	}
	d.st.streams = append(d.st.streams, s)
	return &Stream{d: d, s: s}, nil
}

// On returns a view of the device whose work (launches, copies, events, graphs) goes to stream s.
// It shares memory, modules and statistics with d; closing either closes the device.
func (d *Device) On(s *Stream) *Device { return &Device{st: d.st, stream: s.s, sh: rawStream(s.s)} }

// Handle is the raw CUstream, for code that calls the driver itself.
func (s *Stream) Handle() uintptr { return rawStream(s.s) }

// Sync waits for the work queued on s.
func (s *Stream) Sync() error { return s.d.On(s).Sync() }

// Close releases the device: frees every allocation, pinned buffer, module and stream it made, and
// its hold on the primary context. Pointers from Alloc are invalid afterwards.
func (d *Device) Close() error {
	st := d.st
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.closed {
		return nil
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var first error
	keep := func(err error) {
		if err != nil && first == nil {
			first = err
		}
	}
	keep(drv(cu.SetCurrentContext(st.ctx)))
	keep(drv(st.main.Synchronize()))
	if st.blas != 0 {
		keep(cublasDestroy(st.blas))
	}
	keep(st.pool.release())
	keep(st.staging.release())
	for _, h := range st.hosts {
		if h.p != nil {
			keep(memFreeHost(h.p))
			h.p = nil
		}
	}
	for _, m := range st.mods {
		keep(moduleUnload(m.handle))
	}
	for i := range st.streams {
		keep(drv(st.streams[i].Destroy()))
	}
	keep(drv(st.main.Destroy()))
	st.params.free()
	keep(drv(st.dev.ReleasePrimaryCtx()))
	st.closed = true
	if first != nil {
		return fmt.Errorf("cuda: close %s: %w", st.info, first)
	}
	return nil
}

func fmtBytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.2f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

//go:build cuda

package cuda

import (
	"fmt"
	"unsafe"

	"gorgonia.org/cu"

	"github.com/gpuquant/gpuquant/kernels"
)

// Stats is the device memory accounting of one Device, in bytes and counts. Block sizes are the
// requested sizes rounded up to the pool's size classes, so InUse is what the device really lost.
type Stats struct {
	InUse     int64 // bytes of blocks handed out by Alloc and not yet freed
	Requested int64 // bytes asked for by those live allocations (InUse minus rounding)
	Peak      int64 // the most InUse has been since Open or ResetPeak
	Cached    int64 // bytes of freed blocks kept for reuse (held from the driver, not in use)
	Live      int   // live allocations
	Allocs    int64 // Alloc calls that succeeded
	Reused    int64 // of those, served from the cache without cuMemAlloc
	Frees     int64 // Free calls
}

// Reserved is all device memory the pool holds from the driver: InUse + Cached.
func (s Stats) Reserved() int64 { return s.InUse + s.Cached }

// pool keeps freed blocks by size class and hands them out again; it releases them to the driver
// when an allocation fails (and on Trim, Close).
type pool struct {
	free  map[int64][]cu.DevicePtr // cached blocks by block size
	live  map[kernels.Ptr]block
	stats Stats
}

type block struct{ size, requested int64 }

func newPool() pool {
	return pool{free: map[int64][]cu.DevicePtr{}, live: map[kernels.Ptr]block{}}
}

// blockSize rounds a request up to its size class: 512 B steps up to 1 MiB, then steps of an
// eighth of the request's power of two (at most 12.5% waste), at least 2 MiB apart.
func blockSize(n int64) int64 {
	if n <= 0 {
		n = 1
	}
	if n <= 1<<20 {
		return (n + 511) &^ 511
	}
	step := int64(1) << 21
	for p := int64(1) << 24; p < n; p <<= 1 {
		step = p >> 3
	}
	return (n + step - 1) / step * step
}

// Alloc returns device memory of at least bytes bytes (256-byte aligned, contents undefined),
// from the pool's cache when it holds a block of the same size class, else from cuMemAlloc. When
// the driver is out of memory the cache is released and the allocation tried once more; if that
// fails too the error says how much was asked for and how much the device has free.
func (d *Device) Alloc(bytes int) (kernels.Ptr, error) {
	if bytes < 0 {
		return 0, fmt.Errorf("cuda: alloc %d bytes: negative size", bytes)
	}
	size := blockSize(int64(bytes))
	if err := d.enter(); err != nil {
		return 0, err
	}
	defer d.leave()
	p := &d.st.pool
	var ptr cu.DevicePtr
	if list := p.free[size]; len(list) > 0 {
		ptr = list[len(list)-1]
		p.free[size] = list[:len(list)-1]
		p.stats.Cached -= size
		p.stats.Reused++
	} else {
		var err error
		ptr, err = cu.MemAlloc(size)
		if err != nil && isCode(err, resOutOfMemory) && p.stats.Cached > 0 {
			if err := p.trim(); err != nil {
				return 0, fmt.Errorf("cuda: alloc %s on %s: release cache: %w", fmtBytes(int64(bytes)), d.st.info, err)
			}
			ptr, err = cu.MemAlloc(size)
		}
		if err != nil {
			return 0, d.allocError(int64(bytes), size, drv(err))
		}
	}
	p.live[kernels.Ptr(ptr)] = block{size: size, requested: int64(bytes)}
	p.stats.InUse += size
	p.stats.Requested += int64(bytes)
	p.stats.Live++
	p.stats.Allocs++
	if p.stats.InUse > p.stats.Peak {
		p.stats.Peak = p.stats.InUse
	}
	return kernels.Ptr(ptr), nil
}

func (d *Device) allocError(bytes, size int64, err error) error {
	if !isCode(err, resOutOfMemory) {
		return fmt.Errorf("cuda: alloc %s on %s: %w", fmtBytes(bytes), d.st.info, err)
	}
	s := d.st.pool.stats
	free, total, ierr := cu.MemInfo()
	have := "free memory unknown: " + fmt.Sprint(drv(ierr))
	if ierr == nil {
		have = fmt.Sprintf("%s free of %s", fmtBytes(free), fmtBytes(total))
	}
	return fmt.Errorf("cuda: alloc %s (block %s) on %s: %w: %s; this process holds %s in %d live allocations (peak %s): %w",
		fmtBytes(bytes), fmtBytes(size), d.st.info, ErrOutOfMemory, have, fmtBytes(s.InUse), s.Live, fmtBytes(s.Peak), err)
}

// Free returns p, which Alloc returned, to the pool. Freeing 0 does nothing; freeing anything else
// that is not a live allocation of this device is a bug in the caller (a double free would hand one
// block out twice), so it panics. Free does not wait for queued work: a later Alloc that reuses the
// block queues its work on the same stream, after the work that used it. Memory used on a
// stream from NewStream must be synchronised before it is freed.
func (d *Device) Free(ptr kernels.Ptr) {
	if ptr == 0 {
		return
	}
	if err := d.enter(); err != nil {
		return // closed: Close freed everything
	}
	defer d.leave()
	p := &d.st.pool
	b, ok := p.live[ptr]
	if !ok {
		panic(fmt.Sprintf("cuda: Free(%#x) on %s: not a live allocation of this device (double free?)", uintptr(ptr), d.st.info))
	}
	delete(p.live, ptr)
	p.free[b.size] = append(p.free[b.size], cu.DevicePtr(ptr))
	p.stats.InUse -= b.size
	p.stats.Requested -= b.requested
	p.stats.Cached += b.size
	p.stats.Live--
	p.stats.Frees++
}

// Stats returns the device memory accounting.
func (d *Device) Stats() Stats {
	d.st.mu.Lock()
	defer d.st.mu.Unlock()
	return d.st.pool.stats
}

// ResetPeak sets Stats().Peak to the memory in use now.
func (d *Device) ResetPeak() {
	d.st.mu.Lock()
	defer d.st.mu.Unlock()
	d.st.pool.stats.Peak = d.st.pool.stats.InUse
}

// Trim waits for the stream and gives every cached (freed) block back to the driver.
func (d *Device) Trim() error {
	if err := d.enter(); err != nil {
		return err
	}
	defer d.leave()
	if err := d.syncLocked("trim"); err != nil {
		return err
	}
	return d.st.pool.trim()
}

func (p *pool) trim() error {
	var first error
	for size, list := range p.free {
		for _, ptr := range list {
			if err := cu.MemFree(ptr); err != nil && first == nil {
				first = drv(err)
			}
			p.stats.Cached -= size
		}
		delete(p.free, size)
	}
	return first
}

// release frees every block, cached or live (Close).
func (p *pool) release() error {
	err := p.trim()
	for ptr, b := range p.live {
		if e := cu.MemFree(cu.DevicePtr(ptr)); e != nil && err == nil {
			err = drv(e)
		}
		delete(p.live, ptr)
		p.stats.InUse -= b.size
		p.stats.Requested -= b.requested
		p.stats.Live--
	}
	return err
}

// Copies of at least pinnedMin bytes go through two pinned staging buffers of stagingChunk bytes,
// so that copying a chunk between Go memory and pinned memory overlaps the DMA of the previous one.
const (
	pinnedMin    = 1 << 20
	stagingChunk = 4 << 20
)

type staging struct {
	buf [2]unsafe.Pointer // pinned, stagingChunk bytes each, made on first use
	ev  [2]cu.Event       // ev[i] completes when the last DMA from or to buf[i] has
	rec [2]bool           // whether ev[i] was recorded
}

func (s *staging) init() error {
	if s.buf[0] != nil {
		return nil
	}
	for i := range s.buf {
		p, err := memAllocHost(stagingChunk)
		if err != nil {
			return fmt.Errorf("pinned staging buffer: %w", err)
		}
		s.buf[i] = p
		if s.ev[i], err = cu.MakeEvent(cu.DisableTiming); err != nil {
			return fmt.Errorf("staging event: %w", drv(err))
		}
	}
	return nil
}

func (s *staging) wait(i int) error {
	if !s.rec[i] {
		return nil
	}
	s.rec[i] = false
	return drv(s.ev[i].Synchronize())
}

func (s *staging) release() error {
	var first error
	for i := range s.buf {
		if s.buf[i] != nil {
			if err := memFreeHost(s.buf[i]); err != nil && first == nil {
				first = err
			}
			s.buf[i] = nil
			if err := cu.DestroyEvent(&s.ev[i]); err != nil && first == nil {
				first = drv(err)
			}
		}
	}
	return first
}

// CopyToDevice copies src to device memory at dst and returns when src may be reused (the copy
// itself may still be in flight on the stream, ordered before later work). Large copies go
// through pinned staging buffers; src in a HostBuffer is copied straight from there.
func (d *Device) CopyToDevice(dst kernels.Ptr, src []byte) error {
	if len(src) == 0 {
		return nil
	}
	if err := d.enter(); err != nil {
		return err
	}
	defer d.leave()
	if err := d.copyCheck("copy to device", dst); err != nil {
		return err
	}
	n := len(src)
	wrap := func(err error) error {
		return fmt.Errorf("cuda: copy %s to device %#x on %s: %w", fmtBytes(int64(n)), uintptr(dst), d.st.info, drv(err))
	}
	if n < pinnedMin || d.pinned(src) {
		if err := cu.MemcpyHtoDAsync(cu.DevicePtr(dst), unsafe.Pointer(&src[0]), int64(n), d.stream); err != nil {
			return wrap(err)
		}
		if d.pinned(src) { // the DMA reads src after we return: wait for it
			return d.syncLocked("copy to device")
		}
		return nil // pageable memory: the driver has staged it before returning
	}
	s := &d.st.staging
	if err := s.init(); err != nil {
		return wrap(err)
	}
	for off, i := 0, 0; off < n; off, i = off+stagingChunk, i^1 {
		m := min(stagingChunk, n-off)
		if err := s.wait(i); err != nil {
			return wrap(err)
		}
		copy(unsafe.Slice((*byte)(s.buf[i]), m), src[off:off+m])
		if err := cu.MemcpyHtoDAsync(cu.DevicePtr(dst)+cu.DevicePtr(off), s.buf[i], int64(m), d.stream); err != nil {
			return wrap(err)
		}
		if err := s.ev[i].Record(d.stream); err != nil {
			return wrap(err)
		}
		s.rec[i] = true
	}
	return nil
}

// CopyFromDevice copies len(dst) bytes from device memory at src into dst, after all work queued
// before it on the stream, and returns when dst holds them.
func (d *Device) CopyFromDevice(dst []byte, src kernels.Ptr) error {
	if len(dst) == 0 {
		return nil
	}
	if err := d.enter(); err != nil {
		return err
	}
	defer d.leave()
	if err := d.copyCheck("copy from device", src); err != nil {
		return err
	}
	n := len(dst)
	wrap := func(err error) error {
		return fmt.Errorf("cuda: copy %s from device %#x on %s: %w", fmtBytes(int64(n)), uintptr(src), d.st.info, drv(err))
	}
	if n < pinnedMin || d.pinned(dst) {
		if err := cu.MemcpyDtoHAsync(unsafe.Pointer(&dst[0]), cu.DevicePtr(src), int64(n), d.stream); err != nil {
			return wrap(err)
		}
		return d.syncLocked("copy from device")
	}
	s := &d.st.staging
	if err := s.init(); err != nil {
		return wrap(err)
	}
	// Queue chunk k+1's DMA before copying chunk k out of its buffer.
	queue := func(k int) error {
		i, off := k&1, k*stagingChunk
		if err := s.wait(i); err != nil {
			return err
		}
		m := min(stagingChunk, n-off)
		if err := cu.MemcpyDtoHAsync(s.buf[i], cu.DevicePtr(src)+cu.DevicePtr(off), int64(m), d.stream); err != nil {
			return err
		}
		if err := s.ev[i].Record(d.stream); err != nil {
			return err
		}
		s.rec[i] = true
		return nil
	}
	chunks := (n + stagingChunk - 1) / stagingChunk
	if err := queue(0); err != nil {
		return wrap(err)
	}
	for k := 0; k < chunks; k++ {
		if k+1 < chunks {
			if err := queue(k + 1); err != nil {
				return wrap(err)
			}
		}
		i, off := k&1, k*stagingChunk
		if err := s.wait(i); err != nil {
			if serr := d.syncLocked("copy from device"); serr != nil {
				return serr // names the most recent launch
			}
			return wrap(err)
		}
		m := min(stagingChunk, n-off)
		copy(dst[off:off+m], unsafe.Slice((*byte)(s.buf[i]), m))
	}
	return nil
}

func (d *Device) copyCheck(op string, p kernels.Ptr) error {
	if p == 0 {
		return fmt.Errorf("cuda: %s on %s: nil device pointer", op, d.st.info)
	}
	if d.st.capture != 0 && d.st.capture == d.sh {
		return fmt.Errorf("cuda: %s on %s: %w (capture only launches, CopyDevice and Memset)", op, d.st.info, ErrCapturing)
	}
	return nil
}

// CopyDevice queues a copy of n bytes from device memory src to dst on the stream (it can be
// captured into a graph).
func (d *Device) CopyDevice(dst, src kernels.Ptr, n int) error {
	if n == 0 {
		return nil
	}
	if err := d.enter(); err != nil {
		return err
	}
	defer d.leave()
	if err := cu.MemcpyDtoDAsync(cu.DevicePtr(dst), cu.DevicePtr(src), int64(n), d.stream); err != nil {
		return fmt.Errorf("cuda: copy %s device %#x → %#x on %s: %w", fmtBytes(int64(n)), uintptr(src), uintptr(dst), d.st.info, drv(err))
	}
	return nil
}

// Memset queues setting n bytes at dst to b on the stream (it can be captured into a graph).
func (d *Device) Memset(dst kernels.Ptr, b byte, n int) error {
	if n == 0 {
		return nil
	}
	if err := d.enter(); err != nil {
		return err
	}
	defer d.leave()
	if err := cu.MemsetD8Async(cu.DevicePtr(dst), b, int64(n), d.stream); err != nil {
		return fmt.Errorf("cuda: memset %s at %#x on %s: %w", fmtBytes(int64(n)), uintptr(dst), d.st.info, drv(err))
	}
	return nil
}

// HostBuffer is pinned (page-locked) host memory from cuMemAllocHost: copies between it and the
// device run at full DMA speed with no staging. Free it with Free, or Close the device.
type HostBuffer struct {
	d *Device
	p unsafe.Pointer
	n int
}

// AllocHost returns n bytes of pinned host memory.
func (d *Device) AllocHost(n int) (*HostBuffer, error) {
	if n <= 0 {
		return nil, fmt.Errorf("cuda: alloc %d bytes of pinned host memory: size must be positive", n)
	}
	if err := d.enter(); err != nil {
		return nil, err
	}
	defer d.leave()
	p, err := memAllocHost(n)
	if err != nil {
		return nil, fmt.Errorf("cuda: alloc %s of pinned host memory for %s: %w", fmtBytes(int64(n)), d.st.info, err)
	}
	h := &HostBuffer{d: d, p: p, n: n}
	d.st.hosts = append(d.st.hosts, h)
	return h, nil
}

// Bytes is the buffer's memory; it is valid until Free or the device's Close.
func (h *HostBuffer) Bytes() []byte {
	if h.p == nil {
		return nil
	}
	return unsafe.Slice((*byte)(h.p), h.n)
}

// Free returns the buffer to the driver.
func (h *HostBuffer) Free() error {
	d := h.d
	if err := d.enter(); err != nil {
		return nil // closed: Close freed it
	}
	defer d.leave()
	if h.p == nil {
		return nil
	}
	for i, x := range d.st.hosts {
		if x == h {
			d.st.hosts = append(d.st.hosts[:i], d.st.hosts[i+1:]...)
			break
		}
	}
	err := memFreeHost(h.p)
	h.p = nil
	if err != nil {
		return fmt.Errorf("cuda: free pinned host memory on %s: %w", d.st.info, err)
	}
	return nil
}

// pinned reports whether b lies inside one of the device's HostBuffers.
func (d *Device) pinned(b []byte) bool {
	if len(d.st.hosts) == 0 {
		return false
	}
	lo := uintptr(unsafe.Pointer(&b[0]))
	hi := lo + uintptr(len(b))
	for _, h := range d.st.hosts {
		base := uintptr(h.p)
		if lo >= base && hi <= base+uintptr(h.n) {
			return true
		}
	}
	return false
}

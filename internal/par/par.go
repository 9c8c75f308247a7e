// Package par holds gpuquant's parallel loops over index ranges: For, one contiguous share per
// core on a long-lived worker pool, for the many short calls of a decode step (package cpu), and
// Pieces, fixed-size pieces handed out dynamically, for long uneven jobs (quantizing, converting
// weights for upload).
package par

import (
	"runtime"
	"sync"
	"sync/atomic"
)

// For splits [0, n) into one contiguous range per core (fewer when n/grain is small) and runs fn
// over them, the caller taking the last. The other shares run on the pool's workers, or on plain
// goroutines when the pool is busy (a concurrent call) or the call is nested (For inside a share).
func For(n, grain int, fn func(lo, hi int)) {
	workers := min(runtime.GOMAXPROCS(0), (n+grain-1)/grain)
	if workers <= 1 {
		fn(0, n)
		return
	}
	if getPool().run(n, workers, fn) {
		return
	}
	// The caller takes the last share itself: one goroutine fewer to start and wake per call.
	var wg sync.WaitGroup
	wg.Add(workers - 1)
	for i := range workers - 1 {
		lo, hi := n*i/workers, n*(i+1)/workers
		go func() {
			defer wg.Done()
			fn(lo, hi)
		}()
	}
	fn(n*(workers-1)/workers, n)
	wg.Wait()
}

// Pieces splits [0, n) into pieces of grain items (the last may be shorter), every piece starting
// at a multiple of grain, and runs fn over them on all cores, each goroutine taking the next piece
// through an atomic counter until none is left; at 4 bits callers pass an even grain so that no
// code byte is shared.
func Pieces(n, grain int, fn func(lo, hi int)) {
	if n <= grain {
		fn(0, n)
		return
	}
	pieces := (n + grain - 1) / grain
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(runtime.GOMAXPROCS(0), pieces) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				p := int(next.Add(1) - 1)
				if p >= pieces {
					return
				}
				lo := p * grain
				fn(lo, min(lo+grain, n))
			}
		}()
	}
	wg.Wait()
}

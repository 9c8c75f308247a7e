package par

import (
	"runtime"
	"sync"
	"sync/atomic"
)

// A workPool runs For's shares on long-lived goroutines. Decoding (package cpu) calls For some
// hundred times per token for a few tens of microseconds each, so starting goroutines (and waking
// idle threads through the kernel) per call is a visible share of the step; pool workers instead
// spin briefly on their mailbox after each share, so back-to-back calls find them awake, and park
// on a channel when idle longer. One caller uses the pool at a time: a concurrent or nested call
// (For inside a share) falls back to plain goroutines, so nothing waits on itself.
type workPool struct {
	mu      sync.Mutex
	workers []*poolWorker
	pending atomic.Int32 // shares of the current call not finished yet
	waiting atomic.Int32 // 1 while the caller is (about to be) parked on done
	done    chan struct{}
}

type poolWorker struct {
	state  atomic.Int32 // wIdle, wPosted or wParked
	wake   chan struct{}
	fn     func(lo, hi int)
	lo, hi int
}

const (
	wIdle = iota
	wPosted
	wParked
)

// poolSpin is how many mailbox polls a worker (or the waiting caller) makes before parking:
// some tens of microseconds, longer than the gaps between a decode step's parallel ops.
const poolSpin = 1 << 15

var (
	poolOnce sync.Once
	pool     *workPool
)

func getPool() *workPool {
	poolOnce.Do(func() {
		p := &workPool{done: make(chan struct{}, 1)}
		for range runtime.GOMAXPROCS(0) - 1 {
			w := &poolWorker{wake: make(chan struct{}, 1)}
			p.workers = append(p.workers, w)
			go p.loop(w)
		}
		pool = p
	})
	return pool
}

func (p *workPool) loop(w *poolWorker) {
	for {
		for i := 0; w.state.Load() != wPosted; i++ {
			if i >= poolSpin {
				if w.state.CompareAndSwap(wIdle, wParked) {
					<-w.wake // the poster set wPosted before sending
				}
				break
			}
			if i&1023 == 1023 {
				runtime.Gosched()
			}
		}
		fn, lo, hi := w.fn, w.lo, w.hi
		w.fn = nil
		fn(lo, hi)
		w.state.Store(wIdle)
		if p.pending.Add(-1) == 0 && p.waiting.Swap(0) == 1 {
			p.done <- struct{}{}
		}
	}
}

// run runs fn over the workers+1 shares of [0, n), the caller taking the last; it reports false,
// doing nothing, when the pool is busy or too small.
func (p *workPool) run(n, workers int, fn func(lo, hi int)) bool {
	if workers-1 > len(p.workers) || !p.mu.TryLock() {
		return false
	}
	defer p.mu.Unlock()
	p.pending.Store(int32(workers - 1))
	for i, w := range p.workers[:workers-1] {
		w.fn, w.lo, w.hi = fn, n*i/workers, n*(i+1)/workers
		if w.state.Swap(wPosted) == wParked {
			w.wake <- struct{}{}
		}
	}
	fn(n*(workers-1)/workers, n)
	for i := 0; i < poolSpin; i++ {
		if p.pending.Load() == 0 {
			return true
		}
	}
	p.waiting.Store(1)
	if p.pending.Load() == 0 && p.waiting.Swap(0) == 1 {
		return true
	}
	<-p.done
	return true
}

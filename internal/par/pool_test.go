package cpu

import (
	"sync"
	"sync/atomic"
	"testing"
)

// TestParallelFor checks that every index is covered exactly once and all work is done before
// parallelFor returns, for back-to-back, nested (a parallelFor inside a share) and concurrent
// calls, which the pool must hand to plain goroutines without deadlocking.
func TestParallelFor(t *testing.T) {
	check := func(n, grain int) {
		hits := make([]atomic.Int32, n)
		parallelFor(n, grain, func(lo, hi int) {
			for i := lo; i < hi; i++ {
				hits[i].Add(1)
			}
		})
		for i := range hits {
			if h := hits[i].Load(); h != 1 {
				t.Errorf("n %d grain %d: index %d done %d times", n, grain, i, h)
				return
			}
		}
	}
	for range 200 {
		for _, n := range []int{0, 1, 2, 3, 7, 64, 1000} {
			check(n, 1)
			check(n, 4)
		}
	}
	// Nested: every outer share runs inner parallelFor calls.
	var total atomic.Int64
	parallelFor(8, 1, func(lo, hi int) {
		for range hi - lo {
			parallelFor(100, 1, func(lo, hi int) { total.Add(int64(hi - lo)) })
		}
	})
	if total.Load() != 800 {
		t.Fatalf("nested: %d of 800 done", total.Load())
	}
	// Concurrent callers.
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 50 {
				check(257, 1)
			}
		}()
	}
	wg.Wait()
}

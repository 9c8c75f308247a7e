package par

import (
	"sync"
	"sync/atomic"
	"testing"
)

// TestFor checks that every index is covered exactly once and all work is done before
// For returns, for back-to-back, nested (a For inside a share) and concurrent
// calls, which the pool must hand to plain goroutines without deadlocking.
func TestFor(t *testing.T) {
	check := func(n, grain int) {
		hits := make([]atomic.Int32, n)
		For(n, grain, func(lo, hi int) {
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
	// Nested: every outer share runs inner For calls.
	var total atomic.Int64
	For(8, 1, func(lo, hi int) {
		for range hi - lo {
			For(100, 1, func(lo, hi int) { total.Add(int64(hi - lo)) })
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

// TestPieces checks that Pieces covers every index exactly once in pieces of grain items that
// start at multiples of grain, including the short last piece and n no larger than grain.
func TestPieces(t *testing.T) {
	for _, grain := range []int{1, 2, 7, 1 << 16} {
		for _, n := range []int{0, 1, 2, 3, 7, 64, 1000, 3<<16 + 5} {
			hits := make([]atomic.Int32, n)
			var bad atomic.Int32
			Pieces(n, grain, func(lo, hi int) {
				if lo%grain != 0 || hi-lo > grain || (hi-lo < grain && hi != n) {
					bad.Add(1)
				}
				for i := lo; i < hi; i++ {
					hits[i].Add(1)
				}
			})
			if bad.Load() != 0 {
				t.Errorf("n %d grain %d: %d misshapen pieces", n, grain, bad.Load())
			}
			for i := range hits {
				if h := hits[i].Load(); h != 1 {
					t.Errorf("n %d grain %d: index %d done %d times", n, grain, i, h)
					break
				}
			}
		}
	}
}

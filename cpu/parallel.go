package cpu

import (
	"runtime"
	"sync"
	"sync/atomic"
)

// minParallelWork is the estimated number of inner-loop operations below
// which an op runs on the calling goroutine: starting goroutines costs
// more than it saves for smaller ops.
const minParallelWork = 1 << 15

// parallelFor calls fn(lo, hi) on disjoint ranges covering [0, n). cost
// estimates the work of one index; when n·cost is small, or only one CPU
// is available, fn(0, n) runs inline. Otherwise up to GOMAXPROCS
// goroutines take chunks of indices from a shared counter until none are
// left, so uneven items balance out.
func parallelFor(n, cost int, fn func(lo, hi int)) {
	if n <= 0 {
		return
	}
	if cost < 1 {
		cost = 1
	}
	workers := runtime.GOMAXPROCS(0)
	if workers <= 1 || n == 1 || n*cost < minParallelWork {
		fn(0, n)
		return
	}
	if workers > n {
		workers = n
	}
	// Chunks small enough to balance (about 4 per worker) but big enough
	// to amortise the counter.
	grain := n / (workers * 4)
	if grain < 1 {
		grain = 1
	}
	if g := minParallelWork / cost; grain < g {
		grain = min(g, (n+workers-1)/workers)
	}
	var next int64
	var wg sync.WaitGroup
	wg.Add(workers)
	for w := 0; w < workers; w++ {
		go func() {
			defer wg.Done()
			for {
				lo := int(atomic.AddInt64(&next, int64(grain))) - grain
				if lo >= n {
					return
				}
				fn(lo, min(lo+grain, n))
			}
		}()
	}
	wg.Wait()
}

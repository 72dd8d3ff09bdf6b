package app

import (
	"context"
	"math"
	"runtime"
	"runtime/debug"
	"time"
)

// pageSize is the stride at which touchHeadroom writes: one byte a page
// faults the page in.
const pageSize = 4096

// TouchHeadroom, in the background once the in-memory index has loaded,
// faults in the memory the heap will grow into (touchHeadroom); until it is
// done the process does not report ready. serve and worker call it after
// Start: they hold an index that is most of their heap.
func (a *App) TouchHeadroom() {
	if a.Mem == nil {
		return
	}
	done := make(chan struct{})
	a.mu.Lock()
	a.heapTouched = done
	a.mu.Unlock()
	a.background(func(ctx context.Context) {
		defer close(done)
		if a.WaitLoaded(ctx) != nil {
			return
		}
		start := time.Now()
		n := touchHeadroom()
		a.Log.Info("heap headroom touched", "bytes", n, "seconds", time.Since(start).Seconds())
	})
}

// heapReady reports whether TouchHeadroom, if called, is done.
func (a *App) heapReady() bool {
	a.mu.Lock()
	done := a.heapTouched
	a.mu.Unlock()
	if done == nil {
		return true
	}
	select {
	case <-done:
		return true
	default:
		return false
	}
}

// touchHeadroom allocates the heap's headroom (what the collector lets it
// grow to before the next collection: GOGC % of the live heap, within
// GOMEMLIMIT), writes a byte to each of its pages, drops it and collects,
// and returns its size. The heap keeps the freed pages: requests allocate
// from them instead of faulting in fresh memory.
//
// Without it, a process that has just loaded its index meets its first load
// with every allocation landing on a fresh page: measured at 300 enrolls/s on
// a 2-core VM, ~12,000 page faults a second for the first 7 s and 7 % more
// CPU per enroll over the run (bench/README.md, "Fresh memory").
func touchHeadroom() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	percent := debug.SetGCPercent(-1) // reads it; restored at once
	debug.SetGCPercent(percent)
	n := headroom(ms.HeapAlloc, ms.Sys-ms.HeapReleased, percent, debug.SetMemoryLimit(-1))
	if n == 0 {
		return 0
	}
	b := make([]byte, n)
	for i := 0; i < len(b); i += pageSize {
		b[i] = 1
	}
	runtime.KeepAlive(b)
	b = nil
	runtime.GC() // frees it now, not at the first request's allocation
	return n
}

// headroom is how far a heap of live bytes grows before a collection at
// gcPercent (negative: off, no bound: 0), kept within limit (GOMEMLIMIT;
// math.MaxInt64 when unset) given the inUse bytes the runtime holds.
func headroom(live, inUse uint64, gcPercent int, limit int64) uint64 {
	if gcPercent <= 0 {
		return 0
	}
	n := live * uint64(gcPercent) / 100
	if limit != math.MaxInt64 {
		if limit <= 0 || uint64(limit) <= inUse {
			return 0
		}
		n = min(n, uint64(limit)-inUse)
	}
	return n
}

// Package batch combines the work of concurrent callers: while one call of
// a function runs, the items that arrive wait, and the next call takes
// them all (flat combining). Under load the cost of a call is shared by
// many items; alone, an item runs at once, with no window to wait out.
// A Combiner with a window (Window) lets a call that follows another wait
// a little longer for its batch to fill, for functions whose cost per call
// dwarfs their cost per item.
package batch

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// Combiner runs fn over the items its callers submit. fn gets up to max
// items and returns one result per item, in order. Calls of fn never
// overlap. Safe for concurrent use.
type Combiner[T, R any] struct {
	fn  func([]T) []R
	max int

	// scale and limit set the window (see Window); last is the previous
	// call's duration, read and written only by the running call.
	scale float64
	limit time.Duration
	last  time.Duration

	mu      sync.Mutex // guards waiting, running and full
	waiting []*pending[T, R]
	running bool
	full    chan struct{} // closed when max items wait, while a run lingers

	runs, items atomic.Int64
}

type pending[T, R any] struct {
	item T
	at   time.Time
	done chan R // buffered: a run never blocks on a caller that left
}

// New returns a Combiner of at most limit items per call (limit < 1 means 1).
func New[T, R any](limit int, fn func([]T) []R) *Combiner[T, R] {
	return &Combiner[T, R]{fn: fn, max: max(limit, 1)}
}

// Window makes a call that follows another (its items arrived while one
// ran) start only once max items wait or its first item has waited scale
// times as long as the previous call took, but never longer than limit.
// A call that finds the Combiner idle still starts at once. For fn whose
// cost is mostly per call: under load, calls are fewer and take more
// items each, at the price of that wait. Call before the first Do.
func (c *Combiner[T, R]) Window(scale float64, limit time.Duration) *Combiner[T, R] {
	c.scale, c.limit = scale, limit
	return c
}

// Do submits item and returns its result, or ctx's error if ctx ends
// first (the item may still be run). The caller that finds fn idle runs
// the batch holding its own item; items that arrive meanwhile are run by
// a goroutine of their own, so no caller serves others for long.
func (c *Combiner[T, R]) Do(ctx context.Context, item T) (R, error) {
	p := &pending[T, R]{item: item, done: make(chan R, 1)}
	if c.scale > 0 {
		p.at = time.Now()
	}
	c.mu.Lock()
	c.waiting = append(c.waiting, p)
	if c.full != nil && len(c.waiting) >= c.max {
		close(c.full)
		c.full = nil
	}
	lead := !c.running
	c.running = true
	c.mu.Unlock()
	if lead && c.runNext(false) {
		go func() {
			for c.runNext(true) {
			}
		}()
	}
	select {
	case r := <-p.done:
		return r, nil
	case <-ctx.Done():
		var zero R
		return zero, ctx.Err()
	}
}

// DoErr is Do for a Combiner whose results are errors: the item's own
// error, or ctx's if ctx ended first.
func DoErr[T any](ctx context.Context, c *Combiner[T, error], item T) error {
	err, waitErr := c.Do(ctx, item)
	if waitErr != nil {
		return waitErr
	}
	return err
}

// runNext runs fn over up to max waiting items and reports whether more
// are waiting (the caller then runs again); when none are, the Combiner
// is idle again. follow: the call follows another, so it may linger
// (Window).
func (c *Combiner[T, R]) runNext(follow bool) bool {
	c.mu.Lock()
	if follow && c.scale > 0 && len(c.waiting) < c.max {
		wait := min(time.Duration(c.scale*float64(c.last)), c.limit)
		if d := time.Until(c.waiting[0].at.Add(wait)); d > 0 {
			full := make(chan struct{})
			c.full = full
			c.mu.Unlock()
			t := time.NewTimer(d)
			select {
			case <-full:
			case <-t.C:
			}
			t.Stop()
			c.mu.Lock()
			c.full = nil
		}
	}
	n := min(len(c.waiting), c.max)
	batch := c.waiting[:n:n]
	c.waiting = c.waiting[n:]
	c.mu.Unlock()
	if n > 0 {
		items := make([]T, n)
		for i, p := range batch {
			items[i] = p.item
		}
		c.runs.Add(1)
		c.items.Add(int64(n))
		start := time.Now()
		results := c.fn(items)
		c.last = time.Since(start)
		for i, r := range results {
			batch[i].done <- r
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.waiting) == 0 {
		c.running = false
		c.waiting = nil
		return false
	}
	return true
}

// Waiting is the number of items waiting for a run.
func (c *Combiner[T, R]) Waiting() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.waiting)
}

// Stats returns how many calls of fn ran and how many items they took.
func (c *Combiner[T, R]) Stats() (runs, items int64) { return c.runs.Load(), c.items.Load() }

// Package batch combines the work of concurrent callers: while one call of
// a function runs, the items that arrive wait, and the next call takes
// them all (flat combining). Under load the cost of a call is shared by
// many items; alone, an item runs at once, with no window to wait out.
package batch

import (
	"context"
	"sync"
	"sync/atomic"
)

// Combiner runs fn over the items its callers submit. fn gets up to max
// items and returns one result per item, in order. Calls of fn never
// overlap. Safe for concurrent use.
type Combiner[T, R any] struct {
	fn  func([]T) []R
	max int

	mu      sync.Mutex // guards waiting and running
	waiting []*pending[T, R]
	running bool

	runs, items atomic.Int64
}

type pending[T, R any] struct {
	item T
	done chan R // buffered: a run never blocks on a caller that left
}

// New returns a Combiner of at most limit items per call (limit < 1 means 1).
func New[T, R any](limit int, fn func([]T) []R) *Combiner[T, R] {
	return &Combiner[T, R]{fn: fn, max: max(limit, 1)}
}

// Do submits item and returns its result, or ctx's error if ctx ends
// first (the item may still be run). The caller that finds fn idle runs
// the batch holding its own item; items that arrive meanwhile are run by
// a goroutine of their own, so no caller serves others for long.
func (c *Combiner[T, R]) Do(ctx context.Context, item T) (R, error) {
	p := &pending[T, R]{item: item, done: make(chan R, 1)}
	c.mu.Lock()
	c.waiting = append(c.waiting, p)
	lead := !c.running
	c.running = true
	c.mu.Unlock()
	if lead && c.runNext() {
		go func() {
			for c.runNext() {
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
// is idle again.
func (c *Combiner[T, R]) runNext() bool {
	c.mu.Lock()
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
		for i, r := range c.fn(items) {
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

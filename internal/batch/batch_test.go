package batch

import (
	"context"
	"errors"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"
)

// TestCombinesWaitingItems blocks the first run until ten more items wait,
// then checks that one more run took all ten and that every caller got its
// own result.
func TestCombinesWaitingItems(t *testing.T) {
	release := make(chan struct{})
	started := make(chan struct{}, 1)
	var sizes []int
	c := New(32, func(xs []int) []int {
		sizes = append(sizes, len(xs)) // runs never overlap
		select {
		case started <- struct{}{}:
		default:
		}
		<-release
		out := make([]int, len(xs))
		for i, x := range xs {
			out[i] = x * x
		}
		return out
	})
	var wg sync.WaitGroup
	ask := func(x int) {
		defer wg.Done()
		got, err := c.Do(context.Background(), x)
		if err != nil || got != x*x {
			t.Errorf("Do(%d) = %d, %v; want %d", x, got, err, x*x)
		}
	}
	wg.Add(11)
	go ask(0)
	<-started
	for i := 1; i <= 10; i++ {
		go ask(i)
	}
	for c.Waiting() < 10 {
		runtime.Gosched()
	}
	close(release)
	wg.Wait()
	if !slices.Equal(sizes, []int{1, 10}) {
		t.Errorf("runs took %v items; want [1 10]", sizes)
	}
	if runs, items := c.Stats(); runs != 2 || items != 11 {
		t.Errorf("Stats = %d runs, %d items; want 2, 11", runs, items)
	}
}

// TestMaxPerRun: 25 waiting items with max 10 run as 10, 10, 5.
func TestMaxPerRun(t *testing.T) {
	release := make(chan struct{})
	started := make(chan struct{}, 1)
	var sizes []int
	c := New(10, func(xs []int) []int {
		sizes = append(sizes, len(xs))
		select {
		case started <- struct{}{}:
		default:
		}
		<-release
		return xs
	})
	var wg sync.WaitGroup
	wg.Go(func() { c.Do(context.Background(), -1) })
	<-started
	for i := range 25 {
		wg.Go(func() {
			if got, _ := c.Do(context.Background(), i); got != i {
				t.Errorf("Do(%d) = %d", i, got)
			}
		})
	}
	for c.Waiting() < 25 {
		runtime.Gosched()
	}
	close(release)
	wg.Wait()
	if !slices.Equal(sizes, []int{1, 10, 10, 5}) {
		t.Errorf("runs took %v items; want [1 10 10 5]", sizes)
	}
}

// TestCallerLeaves: a caller whose context ends gets its error at once;
// the run still completes for the others and the combiner stays usable.
func TestCallerLeaves(t *testing.T) {
	release := make(chan struct{})
	started := make(chan struct{}, 1)
	c := New(8, func(xs []int) []int {
		select {
		case started <- struct{}{}:
		default:
		}
		<-release
		return xs
	})
	var wg sync.WaitGroup
	wg.Go(func() { c.Do(context.Background(), 1) })
	<-started
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := c.Do(ctx, 2); !errors.Is(err, context.Canceled) {
		t.Errorf("Do with an ended context = %v; want context.Canceled", err)
	}
	close(release)
	wg.Wait()
	if got, err := c.Do(context.Background(), 3); got != 3 || err != nil {
		t.Errorf("Do after = %d, %v", got, err)
	}
}

// TestWindowWaitsForFullBatch: with a window longer than the test, the run
// that follows a blocked one does not start while fewer than max items
// wait, and starts with all of them once max do.
func TestWindowWaitsForFullBatch(t *testing.T) {
	release := make(chan struct{})
	started := make(chan struct{}, 1)
	var mu sync.Mutex
	var sizes []int
	c := New(5, func(xs []int) []int {
		mu.Lock()
		sizes = append(sizes, len(xs))
		mu.Unlock()
		select {
		case started <- struct{}{}:
		default:
		}
		<-release
		return xs
	}).Window(1e9, time.Hour)
	var wg sync.WaitGroup
	ask := func(i int) {
		wg.Go(func() {
			if got, err := c.Do(context.Background(), i); got != i || err != nil {
				t.Errorf("Do(%d) = %d, %v", i, got, err)
			}
		})
	}
	ask(0)
	<-started
	for i := 1; i <= 3; i++ {
		ask(i)
	}
	for c.Waiting() < 3 {
		runtime.Gosched()
	}
	close(release)
	time.Sleep(50 * time.Millisecond) // the following run would have started by now without the window
	if runs, _ := c.Stats(); runs != 1 {
		t.Fatalf("%d runs with 3 of 5 items waiting inside the window; want 1", runs)
	}
	ask(4)
	ask(5)
	wg.Wait()
	if !slices.Equal(sizes, []int{1, 5}) {
		t.Errorf("runs took %v items; want [1 5]", sizes)
	}
}

// TestWindowEnds: a following run that cannot fill starts once its first
// item has waited the window's limit (here below scale × the last run),
// not before.
func TestWindowEnds(t *testing.T) {
	const limit = 40 * time.Millisecond
	release := make(chan struct{})
	started := make(chan struct{}, 1)
	c := New(32, func(xs []int) []int {
		select {
		case started <- struct{}{}:
			<-release
		default:
		}
		return xs
	}).Window(1e9, limit)
	var wg sync.WaitGroup
	wg.Go(func() { c.Do(context.Background(), 0) })
	<-started
	asked := time.Now()
	wg.Go(func() {
		c.Do(context.Background(), 1)
		if waited := time.Since(asked); waited < limit {
			t.Errorf("a following run of 1 of 32 items ran after %v; want at least the window's %v", waited, limit)
		}
	})
	for c.Waiting() < 1 {
		runtime.Gosched()
	}
	close(release)
	wg.Wait()
	if runs, items := c.Stats(); runs != 2 || items != 2 {
		t.Errorf("Stats = %d runs, %d items; want 2, 2", runs, items)
	}
}

// TestWindowIdleRunsAtOnce: an item that finds the Combiner idle runs at
// once, whatever the window (here an hour: waiting it out would end the
// context first).
func TestWindowIdleRunsAtOnce(t *testing.T) {
	c := New(32, func(xs []int) []int { return xs }).Window(1e9, time.Hour)
	for i := range 3 {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		got, err := c.Do(ctx, i)
		cancel()
		if got != i || err != nil {
			t.Errorf("Do(%d) on an idle Combiner = %d, %v; want it run at once", i, got, err)
		}
	}
}

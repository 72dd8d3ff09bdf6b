package batch

import (
	"context"
	"errors"
	"runtime"
	"slices"
	"sync"
	"testing"
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

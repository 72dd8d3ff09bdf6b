package ratelimit_test

import (
	"context"
	"testing"
	"time"

	"github.com/biomatch/biomatch/internal/testenv"
	"github.com/biomatch/biomatch/queue"
	"github.com/biomatch/biomatch/ratelimit"
)

// TestLimiterOnAHungRedis: on a real Redis, a key gets its burst and is
// then refused; once that Redis hangs (SIGSTOP), Allow and Peek end within
// their own bound with an error and ok true (the caller fails open), even
// though the client's read timeout is an hour and the caller set no deadline.
func TestLimiterOnAHungRedis(t *testing.T) {
	node := testenv.StartRedis(t)
	rdb, err := queue.OpenRedis(node.URL() + "?read_timeout=1h&write_timeout=1h")
	if err != nil {
		t.Fatal(err)
	}
	defer rdb.Close()
	l, err := ratelimit.New(rdb, "test", 2, time.Minute, 2)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for i, want := range []bool{true, true, false} {
		if ok, _, err := l.Allow(ctx, "k"); err != nil || ok != want {
			t.Fatalf("Allow #%d = %v, %v; want %v", i+1, ok, err, want)
		}
	}
	if ok, wait, err := l.Peek(ctx, "k"); err != nil || ok || wait <= 0 {
		t.Errorf("Peek after the burst = %v, %v, %v; want refused with a wait", ok, wait, err)
	}

	node.Pause()
	defer node.Resume()
	for name, call := range map[string]func(context.Context, string) (bool, time.Duration, error){"Allow": l.Allow, "Peek": l.Peek} {
		done := make(chan error, 1)
		go func() {
			ok, _, err := call(ctx, "other")
			if !ok {
				t.Errorf("%s on a hung Redis answered not ok: the caller could not fail open", name)
			}
			done <- err
		}()
		select {
		case err := <-done:
			if err == nil {
				t.Errorf("%s on a hung Redis answered without an error", name)
			}
		case <-time.After(20 * time.Second):
			t.Fatalf("%s on a hung Redis did not give up", name)
		}
	}
}

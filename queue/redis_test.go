package queue_test

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/biomatch/biomatch/internal/testenv"
	"github.com/biomatch/biomatch/queue"
)

// TestOpenRedisHonoursDeadlines: with a real Redis that hangs (SIGSTOP), a
// command under a context deadline ends with an error instead of waiting
// out the client's read timeout (here an hour): enqueues and rate limits
// then stay inside a request's budget. The cluster form's client is set
// the same way.
func TestOpenRedisHonoursDeadlines(t *testing.T) {
	cluster, err := queue.OpenRedis("redis://127.0.0.1:7001,127.0.0.1:7002")
	if err != nil {
		t.Fatal(err)
	}
	if cc, ok := cluster.(*redis.ClusterClient); !ok || !cc.Options().ContextTimeoutEnabled {
		t.Errorf("the cluster form gave %T without context deadlines on the wire", cluster)
	}
	cluster.Close()

	node := testenv.StartRedis(t)
	rdb, err := queue.OpenRedis(node.URL() + "?read_timeout=1h&write_timeout=1h")
	if err != nil {
		t.Fatal(err)
	}
	defer rdb.Close()
	if err := rdb.Ping(context.Background()).Err(); err != nil {
		t.Fatal(err)
	}
	node.Pause()
	defer node.Resume()
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		done <- rdb.Ping(ctx).Err()
	}()
	select {
	case err := <-done:
		if err == nil {
			t.Error("PING of a stopped Redis answered")
		}
	case <-time.After(20 * time.Second):
		t.Fatal("PING of a stopped Redis ignored its context deadline")
	}
}

package queue_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/biomatch/biomatch/engine"
	"github.com/biomatch/biomatch/internal/testenv"
	"github.com/biomatch/biomatch/queue"
)

// shardedEnrolls submits n enrolls through a client of `shards` shards on
// rdb, runs a worker serving them all, and checks every enroll completed
// once and the tasks spread over the shards.
func shardedEnrolls(t *testing.T, rdb redis.UniversalClient, shards, n int) {
	t.Helper()
	pool, store, search, _, qname := setup(t)
	jobs := queue.NewClient(rdb, qname, shards)
	svc := newService(t, store, search, jobs, engine.Config{EnrollWait: time.Millisecond})
	ctx := context.Background()
	for i := range n {
		if _, err := svc.SubmitEnroll(ctx, engine.EnrollInput{Gallery: gallery, Vectors: face(uint64(5000 + i))}); err != nil {
			t.Fatal(err)
		}
	}
	used := 0
	for _, q := range jobs.Queues() {
		if info, err := jobs.Inspector().GetQueueInfo(q); err == nil && info.Size > 0 {
			used++
		}
	}
	if len(jobs.Queues()) != max(shards, 1) || (shards > 1 && used < 2) {
		t.Errorf("%d queues, %d holding tasks: the enrolls did not spread over the shards", len(jobs.Queues()), used)
	}
	startWorker(t, rdb, svc, queue.WorkerConfig{Queue: qname, Shards: shards, Concurrency: 4})
	eventually(t, "every enroll", func() bool {
		return count(t, pool, `SELECT count(*) FROM enroll_requests WHERE state = 'done'`) == n
	})
	if got := count(t, pool, `SELECT count(*) FROM persons`); got != n {
		t.Errorf("persons = %d, want %d", got, n)
	}
}

// TestShardedQueue: an enroll queue split four ways on one Redis.
func TestShardedQueue(t *testing.T) {
	_, _, _, rdb, _ := setup(t)
	shardedEnrolls(t, rdb, 4, 40)
	if got := queue.Shards("enroll", 3); strings.Join(got, ",") != "enroll-00,enroll-01,enroll-02" {
		t.Errorf("Shards = %v", got)
	}
}

// TestRedisCluster: a real six-node Redis Cluster on loopback (three
// masters, three replicas); REDIS_URL's cluster form, asynq on it with the
// enroll queue in 16 shards spread over the masters.
func TestRedisCluster(t *testing.T) {
	cluster := testenv.StartRedisCluster(t)
	rdb, err := queue.OpenRedis(cluster.URL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rdb.Close() }) // after the worker's stop, registered later
	if _, ok := rdb.(*redis.ClusterClient); !ok {
		t.Fatalf("REDIS_URL with several addresses gave a %T, want a cluster client", rdb)
	}
	shardedEnrolls(t, rdb, 16, 48)
	// The shards' keys live on more than one master.
	masters := map[string]bool{}
	for _, q := range queue.Shards("x", 16) {
		slot, err := rdb.Do(context.Background(), "CLUSTER", "KEYSLOT", "asynq:{"+q+"}:pending").Int()
		if err != nil {
			t.Fatal(err)
		}
		masters[fmt.Sprint(slot*3/16384)] = true
	}
	if len(masters) < 2 {
		t.Errorf("16 shards fall in %d thirds of the slot space, want the load on several masters", len(masters))
	}
}

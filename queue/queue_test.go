package queue_test

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"

	"github.com/biomatch/biomatch/engine"
	"github.com/biomatch/biomatch/internal/synth"
	"github.com/biomatch/biomatch/internal/testenv"
	"github.com/biomatch/biomatch/postgres"
	"github.com/biomatch/biomatch/queue"
	"github.com/biomatch/biomatch/vectorstore"
)

var gallery = engine.Gallery{Tenant: "acme", Version: "FACE3_1"}

func face(identity uint64) [][]float64 {
	v := synth.Vector(512, identity, 0, 0)
	return [][]float64{synth.Float64s(v)}
}

func count(t *testing.T, pool *pgxpool.Pool, sql string, args ...any) int {
	t.Helper()
	var n int
	if err := pool.QueryRow(context.Background(), sql, args...).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// startWorker runs a worker until the returned stop is called.
func startWorker(t *testing.T, rdb redis.UniversalClient, svc *engine.Service, cfg queue.WorkerConfig) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	w := queue.NewWorker(rdb, svc, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := w.Run(ctx); err != nil {
			t.Errorf("worker: %v", err)
		}
	})
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); wg.Wait() }) }
	t.Cleanup(stop)
	return stop
}

// setup gives a test a fresh database with its store, and a queue of its own.
// The search is PostgreSQL's (the worker's own, as in production).
func setup(t *testing.T) (*pgxpool.Pool, *postgres.Store, *vectorstore.PGVector, redis.UniversalClient, string) {
	t.Helper()
	pool := testenv.NewPool(t)
	rdb, err := queue.OpenRedis(testenv.Env(t, "REDIS_URL"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rdb.Close() })
	search, err := vectorstore.NewPGVector(context.Background(), pool, vectorstore.PGVectorConfig{})
	if err != nil {
		t.Fatal(err)
	}
	return pool, postgres.NewStore(pool, search), search, rdb, testenv.Queue(t)
}

func newService(t *testing.T, store *postgres.Store, search *vectorstore.PGVector, jobs engine.Jobs, cfg engine.Config) *engine.Service {
	return testenv.NewService(t, engine.Deps{Store: store, Index: search, Jobs: jobs,
		Log: slog.New(slog.NewTextHandler(io.Discard, nil))}, cfg)
}

// TestWorkerRestart: a worker stopped mid-queue and started again completes
// every accepted enroll, none twice.
func TestWorkerRestart(t *testing.T) {
	pool, store, search, rdb, qname := setup(t)
	// One enroll per decision: a batch would take on the whole queue at once.
	svc := newService(t, store, search, queue.NewClient(rdb, qname, 1), engine.Config{EnrollWait: time.Millisecond, EnrollBatch: 1})
	ctx := context.Background()

	const n = 60
	for i := range n {
		req, err := svc.SubmitEnroll(ctx, engine.EnrollInput{Gallery: gallery, RequestID: "r", Vectors: face(uint64(1000 + i))})
		if err != nil {
			t.Fatal(err)
		}
		if req.State != engine.Pending {
			t.Fatalf("enroll %d finished with no worker running: %+v", i, req.State)
		}
	}
	done := func() int { return count(t, pool, `SELECT count(*) FROM enroll_requests WHERE state = 'done'`) }

	stop := startWorker(t, rdb, svc, queue.WorkerConfig{Queue: qname, Concurrency: 1})
	eventually(t, "the first enrolls", func() bool { return done() >= 5 })
	stop()
	atStop := done()
	t.Logf("done when the worker stopped: %d of %d", atStop, n)
	if atStop == n {
		t.Fatalf("the worker finished all %d before it was stopped: the test proves nothing", n)
	}

	startWorker(t, rdb, svc, queue.WorkerConfig{Queue: qname, Concurrency: 4})
	eventually(t, "every enroll", func() bool { return done() == n })

	if got := count(t, pool, `SELECT count(*) FROM persons`); got != n {
		t.Errorf("persons = %d, want %d", got, n)
	}
	if got := count(t, pool, `SELECT count(*) FROM templates`); got != n {
		t.Errorf("templates = %d, want %d", got, n)
	}
	if got := count(t, pool, `SELECT count(*) FROM audit_log WHERE action = 'enroll'`); got != n {
		t.Errorf("enroll audit rows = %d, want %d (an enroll ran twice?)", got, n)
	}
	if got := count(t, pool, `SELECT count(*) FROM enroll_requests WHERE templates IS NOT NULL`); got != 0 {
		t.Errorf("%d finished requests still hold templates", got)
	}
}

// TestReconcilerRecoversLostEnqueue: an enroll accepted while Redis was
// unreachable completes once the reconciler sees it.
func TestReconcilerRecoversLostEnqueue(t *testing.T) {
	_, store, search, rdb, qname := setup(t)

	// Redis down at enqueue time: nothing listens on port 1.
	downRedis := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", DialTimeout: 100 * time.Millisecond, MaxRetries: -1})
	defer downRedis.Close()
	svcDown := newService(t, store, search, queue.NewClient(downRedis, qname, 1), engine.Config{EnrollWait: time.Millisecond})
	req, err := svcDown.SubmitEnroll(context.Background(), engine.EnrollInput{Gallery: gallery, Vectors: face(7)})
	if err != nil {
		t.Fatalf("SubmitEnroll with Redis down: %v (the request is durable and must be accepted)", err)
	}

	svc := newService(t, store, search, queue.NewClient(rdb, qname, 1), engine.Config{})
	startWorker(t, rdb, svc, queue.WorkerConfig{Queue: qname, ReconcileEvery: 50 * time.Millisecond, StaleAfter: time.Millisecond})
	eventually(t, "the reconciled enroll", func() bool {
		got, err := store.EnrollRequest(context.Background(), req.ID)
		return err == nil && got.State == engine.Done && got.Result.Outcome == engine.Created
	})
}

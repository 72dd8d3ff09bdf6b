package chaos

import (
	"context"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/biomatch/biomatch/bench/synth"
	"github.com/biomatch/biomatch/engine"
	"github.com/biomatch/biomatch/internal/testenv"
	"github.com/biomatch/biomatch/queue"
	"github.com/biomatch/biomatch/vectorstore"
)

func count(t *testing.T, pool *pgxpool.Pool, sql string) int {
	t.Helper()
	var n int
	if err := pool.QueryRow(context.Background(), sql).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestWorkerKill9: a worker process killed with SIGKILL mid-queue loses
// nothing. Every accepted enroll completes exactly once after a new worker
// starts (tasks the dead one held are recovered when asynq's lease
// expires, within about 90 s).
func TestWorkerKill9(t *testing.T) {
	dbURL := testenv.NewDatabase(t)
	redisURL := testenv.Env(t, "REDIS_URL")
	qname := testenv.Queue(t)
	bin := filepath.Join(t.TempDir(), "biomatch")
	if out, err := exec.Command("go", "build", "-o", bin, "../cmd/biomatch").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	ctx := context.Background()
	pool, err := vectorstore.OpenPool(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	if _, err := vectorstore.Migrate(ctx, pool); err != nil {
		t.Fatal(err)
	}
	pool.Reset()
	store, err := vectorstore.NewPostgres(ctx, pool, vectorstore.PostgresConfig{})
	if err != nil {
		t.Fatal(err)
	}
	opt, _ := queue.ParseRedisURL(redisURL)
	jobs := queue.NewClient(opt, qname)
	defer jobs.Close()
	svc := engine.NewService(store, store, jobs, engine.Config{EnrollWait: time.Millisecond}, slog.New(slog.NewTextHandler(io.Discard, nil)))

	const n = 200
	g := engine.Gallery{Tenant: "chaos", Version: "FACE3_1"}
	for i := range n {
		v := synth.Vector(512, uint64(7000+i), 0, 0)
		raw := make([]float64, len(v))
		for j, x := range v {
			raw[j] = float64(x)
		}
		if _, err := svc.SubmitEnroll(ctx, engine.EnrollInput{Gallery: g, Vectors: [][]float64{raw}}); err != nil {
			t.Fatal(err)
		}
	}

	worker := func() *exec.Cmd {
		cmd := exec.Command(bin, "worker")
		cmd.Env = append(os.Environ(), "DATABASE_URL="+dbURL, "REDIS_URL="+redisURL, "QUEUE_NAME="+qname,
			"WORKER_CONCURRENCY=4", "RECONCILE_EVERY=1s", "RECONCILE_STALE_AFTER=5s", "LOG_LEVEL=error")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		return cmd
	}
	done := func() int { return count(t, pool, `SELECT count(*) FROM enroll_requests WHERE state = 'done'`) }

	first := worker()
	for deadline := time.Now().Add(60 * time.Second); done() < 10; time.Sleep(2 * time.Millisecond) {
		if time.Now().After(deadline) {
			first.Process.Kill()
			t.Fatal("the first worker completed nothing")
		}
	}
	first.Process.Kill() // SIGKILL: no graceful shutdown, leases left in Redis
	first.Wait()
	atKill := done()
	t.Logf("done when the worker was killed: %d of %d", atKill, n)
	if atKill == n {
		t.Fatal("the worker finished everything before the kill: nothing was in flight")
	}

	second := worker()
	defer func() { second.Process.Kill(); second.Wait() }()
	start := time.Now()
	for deadline := time.Now().Add(150 * time.Second); done() < n; time.Sleep(200 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("after the kill only %d of %d enrolls completed", done(), n)
		}
	}
	t.Logf("all %d completed %.1fs after the restart", n, time.Since(start).Seconds())
	if got := count(t, pool, `SELECT count(*) FROM persons`); got != n {
		t.Errorf("persons = %d, want %d (none lost, none twice)", got, n)
	}
	if got := count(t, pool, `SELECT count(*) FROM audit_log WHERE action = 'enroll'`); got != n {
		t.Errorf("enroll audit rows = %d, want %d", got, n)
	}
	if got := count(t, pool, `SELECT count(*) FROM enroll_requests WHERE state <> 'done'`); got != 0 {
		t.Errorf("%d requests not done", got)
	}
}

package chaos

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/biomatch/biomatch/internal/testenv"
)

// stack is biomatch as an operator runs it: a `serve` process (API) and a
// `worker` process on private PostgreSQL and Redis.
type stack struct {
	t       *testing.T
	bin     string
	logs    string
	pg      *postgresServer
	redis   *redisServer
	env     []string
	apiURL  string
	metrics string // the API's metrics listener (METRICS_ADDR)
	api     *process
	worker  *process
	pool    *pgxpool.Pool    // the test's own view of PostgreSQL
	inspect *asynq.Inspector // the test's own view of the queue
	queue   string
	key     string
}

// process is a running biomatch subcommand; exited is closed when it ends.
type process struct {
	name   string
	cmd    *exec.Cmd
	exited chan struct{}
	err    error
}

func (p *process) running() bool {
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// signal sends sig and waits up to limit for the process to end.
func (p *process) signal(sig syscall.Signal, limit time.Duration) (time.Duration, error) {
	start := time.Now()
	p.cmd.Process.Signal(sig)
	select {
	case <-p.exited:
		return time.Since(start), p.err
	case <-time.After(limit):
		p.cmd.Process.Kill()
		<-p.exited
		return time.Since(start), fmt.Errorf("%s did not end within %s of %v", p.name, limit, sig)
	}
}

func newStack(t *testing.T) *stack {
	t.Helper()
	s := &stack{t: t, logs: t.TempDir(), queue: "chaos"}
	s.bin = filepath.Join(s.logs, "biomatch")
	if out, err := exec.Command("go", "build", "-o", s.bin, "../cmd/biomatch").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	s.pg, s.redis = startPostgres(t), startRedis(t)
	master := make([]byte, 32)
	rand.Read(master)
	port := testenv.FreePort(t)
	s.apiURL = fmt.Sprintf("http://127.0.0.1:%d", port)
	metricsPort := testenv.FreePort(t)
	s.metrics = fmt.Sprintf("http://127.0.0.1:%d/metrics", metricsPort)
	s.env = append(os.Environ(),
		"DATABASE_URL="+s.pg.url("biomatch"), "REDIS_URL="+s.redis.url(), "QUEUE_NAME="+s.queue,
		"MASTER_KEY="+hex.EncodeToString(master), "LISTEN_ADDR="+fmt.Sprintf("127.0.0.1:%d", port),
		"METRICS_ADDR="+fmt.Sprintf("127.0.0.1:%d", metricsPort),
		"RATE_LIMIT_PER_SECOND=0", "LOG_LEVEL=warn",
		// The reconciler looks every second for enrolls pending 5 s or more.
		"RECONCILE_EVERY=1s", "RECONCILE_STALE_AFTER=5s", "WORKER_CONCURRENCY=4")
	s.command("migrate")
	out := strings.Fields(s.command("apikey", "create", "--customer", "chaos"))
	s.key = out[len(out)-1]

	ctx := context.Background()
	var err error
	if s.pool, err = pgxpool.New(ctx, s.pg.url("biomatch")); err != nil {
		t.Fatal(err)
	}
	opt, err := asynq.ParseRedisURI(s.redis.url())
	if err != nil {
		t.Fatal(err)
	}
	s.inspect = asynq.NewInspector(opt)
	t.Cleanup(func() {
		for _, p := range []*process{s.api, s.worker} {
			if p != nil && p.running() {
				p.cmd.Process.Kill()
				<-p.exited
			}
		}
		s.inspect.Close()
		s.pool.Close()
		if t.Failed() {
			for _, name := range []string{"serve", "worker"} {
				if b, err := os.ReadFile(filepath.Join(s.logs, name+".log")); err == nil {
					t.Logf("--- last lines of %s.log:\n%s", name, tail(string(b), 12))
				}
			}
		}
	})
	s.api, s.worker = s.start("serve"), s.start("worker")
	s.waitReady()
	return s
}

// tail is the last n lines of s, each cut at 240 bytes.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	lines = lines[max(0, len(lines)-n):]
	for i, l := range lines {
		if len(l) > 240 {
			lines[i] = l[:240] + "…"
		}
	}
	return strings.Join(lines, "\n")
}

// command runs a one-shot subcommand and returns its output.
func (s *stack) command(args ...string) string {
	s.t.Helper()
	cmd := exec.Command(s.bin, args...)
	cmd.Env = s.env
	out, err := cmd.CombinedOutput()
	if err != nil {
		s.t.Fatalf("biomatch %v: %v\n%s", args, err, out)
	}
	return string(out)
}

// start runs `biomatch name` in the background, appending to name.log.
func (s *stack) start(name string) *process {
	s.t.Helper()
	log, err := os.OpenFile(filepath.Join(s.logs, name+".log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		s.t.Fatal(err)
	}
	p := &process{name: name, cmd: exec.Command(s.bin, name), exited: make(chan struct{})}
	p.cmd.Env, p.cmd.Stdout, p.cmd.Stderr = s.env, log, log
	if err := p.cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	go func() { p.err = p.cmd.Wait(); log.Close(); close(p.exited) }()
	return p
}

// waitReady waits for the API's /ready.
func (s *stack) waitReady() {
	s.t.Helper()
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if resp, err := http.Get(s.apiURL + "/ready"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		if time.Now().After(deadline) || !s.api.running() {
			s.t.Fatal("the API did not become ready within 60 s")
		}
	}
}

// count runs a SELECT count(*) … against the private PostgreSQL.
func (s *stack) count(sql string, args ...any) int {
	s.t.Helper()
	var n int
	if err := s.pool.QueryRow(context.Background(), sql, args...).Scan(&n); err != nil {
		s.t.Fatal(err)
	}
	return n
}

// processStats are the API process's figures from /metrics.
type processStats struct {
	goroutines, poolAcquired, poolTotal int
}

func (s *stack) apiStats() processStats {
	s.t.Helper()
	resp, err := http.Get(s.metrics)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	var st processStats
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		name, value, _ := strings.Cut(sc.Text(), " ")
		n, _ := strconv.ParseFloat(value, 64)
		switch name {
		case "go_goroutines":
			st.goroutines = int(n)
		case `biomatch_db_pool_connections{state="acquired"}`:
			st.poolAcquired = int(n)
		case `biomatch_db_pool_connections{state="total"}`:
			st.poolTotal = int(n)
		}
	}
	return st
}

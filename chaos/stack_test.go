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
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/biomatch/biomatch/internal/testenv"
	"github.com/biomatch/biomatch/queue"
)

// stack is biomatch as an operator runs it: `serve` processes (API
// replicas) and `worker` processes on private PostgreSQL and Redis (one
// redis-server, or a six-node Redis Cluster).
type stack struct {
	t        *testing.T
	bin      string
	logs     string
	pg       *postgresServer
	redis    *testenv.RedisNode    // one Redis; nil on a cluster
	cluster  *testenv.RedisCluster // nil on one Redis
	redisURL string
	env      []string
	apis     []*node
	workers  []*node
	pool     *pgxpool.Pool    // the test's own view of PostgreSQL
	inspect  *asynq.Inspector // the test's own view of the queue
	queues   []string         // the enroll queue's shards
	key      string
}

// stackOptions shape a stack; the zero value is one API and one worker on
// one Redis.
type stackOptions struct {
	apis, workers int
	cluster       bool // a six-node Redis Cluster
	shards        int  // QUEUE_SHARDS
}

// node is one biomatch process slot, `serve` or `worker`, restarted in
// place: process is its current incarnation.
type node struct {
	name    string   // its log file: name.log
	command string   // serve | worker
	env     []string // its own settings (listen addresses)
	url     string   // the API's base URL (serve)
	metrics string   // the API's metrics URL (serve)
	*process
}

// process is a running biomatch subcommand; exited is closed when it ends.
type process struct {
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
		return time.Since(start), fmt.Errorf("%s did not end within %s of %v", p.cmd.Args[1], limit, sig)
	}
}

// kill9 kills the process with SIGKILL and waits for it to end.
func (p *process) kill9() {
	p.cmd.Process.Kill()
	<-p.exited
}

func newStack(t *testing.T) *stack { return newStackWith(t, stackOptions{}) }

func newStackWith(t *testing.T, o stackOptions) *stack {
	t.Helper()
	o.apis, o.workers, o.shards = max(o.apis, 1), max(o.workers, 1), max(o.shards, 1)
	s := &stack{t: t, logs: t.TempDir(), queues: queue.Shards("chaos", o.shards)}
	s.bin = filepath.Join(s.logs, "biomatch")
	if out, err := exec.Command("go", "build", "-o", s.bin, "../cmd/biomatch").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	s.pg = startPostgres(t)
	if o.cluster {
		s.cluster = testenv.StartRedisCluster(t)
		s.redisURL = s.cluster.URL()
	} else {
		s.redis = testenv.StartRedis(t)
		s.redisURL = s.redis.URL()
	}
	master := make([]byte, 32)
	rand.Read(master)
	s.env = append(os.Environ(),
		"DATABASE_URL="+s.pg.url("biomatch"), "REDIS_URL="+s.redisURL, "QUEUE_NAME=chaos",
		"QUEUE_SHARDS="+strconv.Itoa(o.shards), "MASTER_KEY="+hex.EncodeToString(master),
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
	rdb, err := queue.OpenRedis(s.redisURL)
	if err != nil {
		t.Fatal(err)
	}
	s.inspect = asynq.NewInspectorFromRedisClient(rdb)
	for i := range o.apis {
		name := "serve"
		if o.apis > 1 {
			name = fmt.Sprintf("serve-%d", i+1)
		}
		port, metricsPort := testenv.FreePort(t), testenv.FreePort(t)
		s.apis = append(s.apis, &node{name: name, command: "serve",
			env: []string{fmt.Sprintf("LISTEN_ADDR=127.0.0.1:%d", port), fmt.Sprintf("METRICS_ADDR=127.0.0.1:%d", metricsPort)},
			url: fmt.Sprintf("http://127.0.0.1:%d", port), metrics: fmt.Sprintf("http://127.0.0.1:%d/metrics", metricsPort)})
	}
	for i := range o.workers {
		name := "worker"
		if o.workers > 1 {
			name = fmt.Sprintf("worker-%d", i+1)
		}
		s.workers = append(s.workers, &node{name: name, command: "worker"})
	}
	t.Cleanup(func() {
		for _, n := range append(s.apis, s.workers...) {
			if n.process != nil && n.running() {
				n.kill9()
			}
		}
		s.inspect.Close()
		rdb.Close()
		s.pool.Close()
		if t.Failed() {
			for _, n := range append(s.apis, s.workers...) {
				if b, err := os.ReadFile(filepath.Join(s.logs, n.name+".log")); err == nil {
					t.Logf("--- last lines of %s.log:\n%s", n.name, tail(string(b), 12))
				}
			}
		}
	})
	for _, n := range append(s.apis, s.workers...) {
		s.launch(n)
	}
	s.waitReady()
	return s
}

// api is the first API replica, the only one of a one-replica stack.
func (s *stack) api() *node { return s.apis[0] }

// worker is the first worker.
func (s *stack) worker() *node { return s.workers[0] }

// urls are the API replicas' base URLs.
func (s *stack) urls() []string {
	out := make([]string, len(s.apis))
	for i, n := range s.apis {
		out[i] = n.url
	}
	return out
}

// allRunning reports whether every biomatch process is alive.
func (s *stack) allRunning() bool {
	for _, n := range append(s.apis, s.workers...) {
		if !n.running() {
			return false
		}
	}
	return true
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

// launch (re)starts node n in the background, appending to its log.
func (s *stack) launch(n *node) {
	s.t.Helper()
	log, err := os.OpenFile(filepath.Join(s.logs, n.name+".log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		s.t.Fatal(err)
	}
	p := &process{cmd: exec.Command(s.bin, n.command), exited: make(chan struct{})}
	p.cmd.Env, p.cmd.Stdout, p.cmd.Stderr = append(slices.Clone(s.env), n.env...), log, log
	if err := p.cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	go func() { p.err = p.cmd.Wait(); log.Close(); close(p.exited) }()
	n.process = p
}

// waitReady waits for every API replica's /ready.
func (s *stack) waitReady() {
	s.t.Helper()
	for _, n := range s.apis {
		for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(100 * time.Millisecond) {
			if resp, err := http.Get(n.url + "/ready"); err == nil {
				resp.Body.Close()
				if resp.StatusCode == 200 {
					break
				}
			}
			if time.Now().After(deadline) || !n.running() {
				s.t.Fatalf("%s did not become ready within 60 s", n.name)
			}
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

// processStats are an API process's figures from /metrics.
type processStats struct {
	goroutines, poolAcquired, poolTotal int
}

func (s *stack) apiStats(n *node) processStats {
	s.t.Helper()
	resp, err := http.Get(n.metrics)
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

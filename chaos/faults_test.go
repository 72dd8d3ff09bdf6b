package chaos

import (
	"context"
	"errors"
	"flag"
	"math"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"

	"github.com/biomatch/biomatch/client"
	"github.com/biomatch/biomatch/engine"
	"github.com/biomatch/biomatch/internal/testenv"
	"github.com/biomatch/biomatch/postgres"
)

// full runs the whole fault set (make chaos); without it the worker is
// killed once on the held task instead of four times (make test).
var full = flag.Bool("chaos.full", false, "run the full fault set (make chaos)")

// TestFaults runs biomatch as separate API and worker processes on private
// PostgreSQL and Redis, under a steady load of enrolls, identifies and
// deletes, and injects each fault in turn: kill -9 of the API mid-request,
// kill -9 of the worker on a task it holds (four times with -chaos.full:
// the task is archived, then the reconciler brings it back), SIGTERM of the
// worker, kill -9 of Redis and a restart from its append-only file,
// PostgreSQL stopped for 10 s. Then the invariants: every acknowledged
// enroll exists exactly once, no two persons from one face, deleted persons
// are gone everywhere, the queue drains, and the API's goroutines and
// database connections are back to their baseline.
func TestFaults(t *testing.T) {
	s := newStack(t)
	rate := 15.0
	if *full {
		rate = 30
	}
	l := startLoad(t, s, rate)
	time.Sleep(3 * time.Second)

	fault(t, "kill -9 API mid-request", func() { s.killAPIMidRequest(t, l, s.api()) })

	// The baseline of the API process that lives through the other faults.
	time.Sleep(3 * time.Second)
	base := s.baseline(t, l)

	fault(t, "kill -9 worker holding a task", func() {
		kills := 1
		if *full {
			kills = 4 // MaxRetry is 3: the fourth lost lease archives the task
		}
		s.killWorkerOnHeldTask(t, kills)
	})

	fault(t, "SIGTERM worker holding a task", func() { s.termWorkerOnHeldTask(t) })

	fault(t, "kill -9 Redis, restart from its AOF", func() {
		before := l.summary()
		s.redis.Kill()
		time.Sleep(3 * time.Second)
		s.redis.Start(t)
		t.Logf("load before: %s", before)
		s.waitReady()
		if !s.allRunning() {
			t.Fatal("a biomatch process died with Redis")
		}
	})

	fault(t, "PostgreSQL stopped for 10 s", func() {
		l.mu.Lock()
		seen503 := len(l.unavailable)
		l.mu.Unlock()
		s.pg.stop()
		time.Sleep(10 * time.Second)
		l.mu.Lock()
		during := l.unavailable[seen503:]
		l.mu.Unlock()
		s.pg.start()
		if len(during) == 0 {
			t.Error("no 503 while PostgreSQL was down")
		} else if !strings.Contains(during[0], "database or queue cannot be reached") {
			t.Errorf("503 message %q does not say what is wrong", during[0])
		}
		start := time.Now()
		s.waitReady()
		if !s.allRunning() {
			t.Fatal("a biomatch process died with PostgreSQL")
		}
		t.Logf("%d answers were 503 during the outage (%q); ready again %.1fs after the restart, same processes",
			len(during), firstOr(during, ""), time.Since(start).Seconds())
	})

	time.Sleep(3 * time.Second)
	l.finish(t)
	s.checkInvariants(t, l, base)
}

// startLoad starts a load at rate on the stack's replicas, halted when the
// test ends if it still runs.
func startLoad(t *testing.T, s *stack, rate float64) *load {
	l := newLoad(s.urls(), s.key, rate)
	l.run()
	t.Cleanup(func() {
		if !l.paused.Load() || l.inFlight.Load() > 0 {
			l.halt()
		}
	})
	return l
}

// baseline is the first API's goroutines and pool connections with the
// load paused: what they must come back to after the faults.
func (s *stack) baseline(t *testing.T, l *load) processStats {
	l.quiesce()
	time.Sleep(time.Second)
	base := s.apiStats(s.api())
	l.resume()
	t.Logf("baseline: %d goroutines, %d/%d pool connections acquired/total", base.goroutines, base.poolAcquired, base.poolTotal)
	return base
}

// killAPIMidRequest kills API replica n with SIGKILL while requests are in
// flight and starts it again.
func (s *stack) killAPIMidRequest(t *testing.T, l *load, n *node) {
	for deadline := time.Now().Add(10 * time.Second); l.inFlight.Load() == 0; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no request in flight to interrupt")
		}
	}
	inFlight := l.inFlight.Load()
	n.kill9()
	time.Sleep(time.Second)
	start := time.Now()
	s.launch(n)
	s.waitReady()
	t.Logf("%s killed with %d requests in flight; a new process was ready %.1fs after its start", n.name, inFlight, time.Since(start).Seconds())
}

// fault runs one step of the sequence and logs how long it took. The steps
// are not subtests: each builds on the state the previous one left, so a
// failure ends the whole test.
func fault(t *testing.T, name string, step func()) {
	t.Helper()
	t.Logf("=== fault: %s", name)
	start := time.Now()
	step()
	t.Logf("=== fault: %s: done in %.1fs", name, time.Since(start).Seconds())
}

func firstOr(s []string, def string) string {
	if len(s) > 0 {
		return s[0]
	}
	return def
}

// heldTask is one enroll whose task stays active: the test holds its
// gallery's lock, so the worker that takes the task blocks on it.
type heldTask struct {
	id      string
	g       engine.Gallery
	tx      pgx.Tx
	replied chan client.Reply
}

func (s *stack) holdTask(t *testing.T, version string) *heldTask {
	ctx := context.Background()
	h := &heldTask{g: engine.Gallery{Tenant: "chaos", Version: version}, replied: make(chan client.Reply, 1)}
	var err error
	if h.tx, err = s.pool.Begin(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.tx.Rollback(ctx) })
	if err := postgres.LockGallery(ctx, h.tx, h.g); err != nil {
		t.Fatal(err)
	}
	c := &client.Client{BaseURL: s.api().url, APIKey: s.key, Version: version, Enc: 2}
	go func() {
		r, err := c.Enroll(ctx, vector(7, 0, 0), "")
		if err != nil {
			t.Errorf("held enroll: %v", err)
		}
		h.replied <- r
	}()
	for deadline := time.Now().Add(30 * time.Second); h.id == ""; time.Sleep(20 * time.Millisecond) {
		s.pool.QueryRow(ctx, `SELECT id FROM enroll_requests WHERE version = $1`, version).Scan(&h.id)
		if time.Now().After(deadline) {
			t.Fatal("the held enroll was not accepted")
		}
	}
	return h
}

// release lets the held enroll through and waits for it to complete, once.
func (s *stack) release(t *testing.T, h *heldTask) {
	if r := <-h.replied; r.HTTPStatus != 202 {
		t.Errorf("held enroll answered %d %q, want 202 queued", r.HTTPStatus, r.Message)
	}
	h.tx.Rollback(context.Background())
	start := time.Now()
	for deadline := time.Now().Add(5 * time.Minute); s.count(`SELECT count(*) FROM enroll_requests WHERE id = $1 AND state = 'done'`, h.id) == 0; time.Sleep(200 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the held enroll did not complete within 5 minutes")
		}
	}
	t.Logf("the held enroll completed %.1fs after the gallery was released", time.Since(start).Seconds())
	if n := s.count(`SELECT count(*) FROM persons WHERE version = $1`, h.g.Version); n != 1 {
		t.Errorf("persons in %s = %d, want 1", h.g.Version, n)
	}
}

// killWorkerOnHeldTask kills the worker with SIGKILL while it holds a task,
// kills times: asynq gives the task back once its lease has expired (about
// a minute), each time counting a retry. After four kills the task is
// archived; the reconciler then replaces it and the enroll completes, once.
func (s *stack) killWorkerOnHeldTask(t *testing.T, kills int) {
	h := s.holdTask(t, "HELD_KILL")
	start := time.Now()
	for kill := 1; kill <= kills; kill++ {
		// Held again by a live worker: active, with one retry counted per kill so far.
		s.waitTask(t, h.id, func(ti *asynq.TaskInfo) bool { return ti.State == asynq.TaskStateActive && ti.Retried == kill-1 }, 5*time.Minute)
		s.worker().kill9()
		s.launch(s.worker())
		t.Logf("kill %d at %.0fs: the worker died holding the task", kill, time.Since(start).Seconds())
	}
	if kills >= 4 {
		s.waitTask(t, h.id, func(ti *asynq.TaskInfo) bool { return ti.State == asynq.TaskStateArchived }, 5*time.Minute)
		t.Logf("at %.0fs the task is archived (its lease lost a fourth time)", time.Since(start).Seconds())
	}
	s.release(t, h)
}

// termWorkerOnHeldTask sends SIGTERM while the worker holds a task: the
// worker waits its shutdown timeout, puts the task back without counting a
// retry, and exits 0; a new worker completes it.
func (s *stack) termWorkerOnHeldTask(t *testing.T) {
	h := s.holdTask(t, "HELD_TERM")
	s.waitTask(t, h.id, func(ti *asynq.TaskInfo) bool { return ti.State == asynq.TaskStateActive }, time.Minute)
	took, err := s.worker().signal(syscall.SIGTERM, 30*time.Second)
	if err != nil {
		t.Errorf("the worker did not shut down cleanly: %v", err)
	}
	info, err := s.taskInfo(h.id)
	if err != nil || info.State != asynq.TaskStatePending || info.Retried != 0 {
		t.Errorf("after SIGTERM the task is %+v (%v), want pending again with no retry counted", info, err)
	}
	t.Logf("the worker exited %.1fs after SIGTERM; its task is pending again", took.Seconds())
	s.launch(s.worker())
	s.release(t, h)
}

// waitTask waits until the enroll task id satisfies ok.
func (s *stack) waitTask(t *testing.T, id string, ok func(*asynq.TaskInfo) bool, limit time.Duration) {
	t.Helper()
	var last *asynq.TaskInfo
	for deadline := time.Now().Add(limit); ; time.Sleep(50 * time.Millisecond) {
		info, err := s.taskInfo(id)
		if err == nil && ok(info) {
			return
		}
		last = info
		if time.Now().After(deadline) {
			t.Fatalf("task %s: not as expected within %s (last seen %+v)", id, limit, last)
		}
	}
}

// taskInfo finds enroll task id in whichever shard holds it.
func (s *stack) taskInfo(id string) (*asynq.TaskInfo, error) {
	var err error
	for _, q := range s.queues {
		var info *asynq.TaskInfo
		if info, err = s.inspect.GetTaskInfo(q, id); err == nil {
			return info, nil
		}
	}
	return nil, err
}

// queueSize sums the shards' tasks by state: pending, active, scheduled,
// retry, archived.
func (s *stack) queueSize() (sizes [5]int, err error) {
	for _, q := range s.queues {
		info, err := s.inspect.GetQueueInfo(q)
		if errors.Is(err, asynq.ErrQueueNotFound) {
			continue
		}
		if err != nil {
			return sizes, err
		}
		for i, n := range []int{info.Pending, info.Active, info.Scheduled, info.Retry, info.Archived} {
			sizes[i] += n
		}
	}
	return sizes, nil
}

// checkInvariants is what must hold after the faults.
func (s *stack) checkInvariants(t *testing.T, l *load, base processStats) {
	ctx := context.Background()
	for _, v := range l.violations {
		t.Errorf("during the faults: %s", v)
	}

	// The queue drains: nothing pending, archived or retrying is left.
	start := time.Now()
	for deadline, first := time.Now().Add(5*time.Minute), true; ; time.Sleep(500 * time.Millisecond) {
		size, err := s.queueSize()
		pending := s.count(`SELECT count(*) FROM enroll_requests WHERE state = 'pending'`)
		if err == nil && pending == 0 && size == [5]int{} {
			t.Logf("queue drained %.1fs after the load stopped", time.Since(start).Seconds())
			break
		}
		if first && err == nil {
			t.Logf("when the load stopped: %d enroll requests pending; tasks pending %d, active %d, scheduled %d, retry %d, archived %d",
				pending, size[0], size[1], size[2], size[3], size[4])
			first = false
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 5 minutes: %d enroll requests pending, tasks by state %v (%v)", pending, size, err)
		}
	}
	if n := s.count(`SELECT count(*) FROM enroll_requests WHERE state <> 'done'`); n != 0 {
		t.Errorf("%d enroll requests failed", n)
	}

	// Acknowledged enrolls exist exactly once; 202s completed.
	enrolled, deleted := l.byState("enrolled"), l.byState("deleted")
	for _, f := range l.byState("queued") {
		var puid string
		err := s.pool.QueryRow(ctx, `SELECT p.puid FROM enroll_requests r JOIN persons p ON p.id = r.person_id WHERE r.id = $1`, f.requestID).Scan(&puid)
		if err != nil {
			t.Errorf("enroll %s answered 202: no person (%v)", f.requestID, err)
			continue
		}
		f.puid = puid
		enrolled = append(enrolled, f)
	}
	for _, f := range enrolled {
		if n := s.count(`SELECT count(*) FROM persons WHERE puid = $1`, f.puid); n != 1 {
			t.Errorf("acknowledged person %s exists %d times", f.puid, n)
		}
	}

	// No two persons from one face; deleted faces match nobody.
	matches := s.personsByFace(t, l)
	for _, f := range enrolled {
		if got := matches[f.identity]; len(got) != 1 || got[0] != f.puid {
			t.Errorf("face %d (acknowledged as %s) matches persons %v", f.identity, f.puid, got)
		}
	}
	for _, f := range deleted {
		if got := matches[f.identity]; len(got) != 0 {
			t.Errorf("deleted face %d (%s) still matches persons %v", f.identity, f.puid, got)
		}
	}
	if n := s.count(`SELECT count(*) FROM persons WHERE version = 'FACE3_1'`); n != len(enrolled) {
		t.Errorf("persons = %d, want the %d acknowledged and not deleted", n, len(enrolled))
	}

	// Deleted persons are gone from every replica's in-memory index and from Redis.
	dump := s.redisDump()
	hc := &http.Client{Timeout: 30 * time.Second}
	for _, f := range deleted {
		for _, n := range s.apis {
			c := &client.Client{BaseURL: n.url, APIKey: s.key, Version: "FACE3_1", Enc: 2, HTTP: hc}
			if r, err := c.Predict(ctx, vector(f.identity, 0, 0), 1, ""); err != nil || r.PUID != "-1" {
				t.Errorf("deleted %s: identify on %s answers %+v (%v)", f.puid, n.name, r, err)
			}
		}
		if strings.Contains(dump, f.puid) {
			t.Errorf("deleted %s: found in Redis", f.puid)
		}
	}
	t.Logf("%d faces: %d enrolled (%d via 202), %d deleted; %d enroll requests", len(l.faces), len(enrolled),
		len(l.byState("queued")), len(deleted), s.count(`SELECT count(*) FROM enroll_requests`))

	// The API's goroutines and pool connections come back to the baseline
	// (the test's own idle connections closed: each holds a server
	// goroutine). What winds down gets ten seconds; a leak stays.
	hc.CloseIdleConnections()
	http.DefaultClient.CloseIdleConnections()
	back := func(st processStats) bool {
		return st.goroutines <= base.goroutines+10 && st.poolAcquired <= max(base.poolAcquired, 1)
	}
	end := s.apiStats(s.api())
	for deadline := time.Now().Add(10 * time.Second); !back(end) && time.Now().Before(deadline); end = s.apiStats(s.api()) {
		time.Sleep(500 * time.Millisecond)
	}
	t.Logf("end: %d goroutines (baseline %d), %d/%d pool connections acquired/total (baseline %d/%d)",
		end.goroutines, base.goroutines, end.poolAcquired, end.poolTotal, base.poolAcquired, base.poolTotal)
	if end.goroutines > base.goroutines+10 {
		t.Errorf("goroutines: %d, baseline %d", end.goroutines, base.goroutines)
	}
	if end.poolAcquired > max(base.poolAcquired, 1) {
		t.Errorf("pool connections acquired: %d, baseline %d", end.poolAcquired, base.poolAcquired)
	}
}

// redisDump is every key and value in Redis: of every master on a cluster.
func (s *stack) redisDump() string {
	var addrs []string
	if s.cluster == nil {
		addrs = []string{s.redis.Addr}
	} else {
		for _, n := range s.cluster.Nodes {
			if n.IsMaster() {
				addrs = append(addrs, n.Addr)
			}
		}
	}
	var b strings.Builder
	for _, a := range addrs {
		rdb := redis.NewClient(&redis.Options{Addr: a})
		b.WriteString(testenv.RedisDump(s.t, rdb))
		rdb.Close()
	}
	return b.String()
}

// personsByFace returns, for every face the load ever sent, the persons
// holding a template within cosine 0.9 of it.
func (s *stack) personsByFace(t *testing.T, l *load) map[uint64][]string {
	rows, err := s.pool.Query(context.Background(),
		`SELECT p.puid, t.embedding::real[] FROM templates t JOIN persons p ON p.id = t.person_id WHERE t.tenant = 'chaos' AND t.version = 'FACE3_1'`)
	if err != nil {
		t.Fatal(err)
	}
	type template struct {
		PUID string
		V    []float32
	}
	templates, err := pgx.CollectRows(rows, pgx.RowToStructByPos[template])
	if err != nil {
		t.Fatal(err)
	}
	out := map[uint64][]string{}
	for _, f := range l.faces {
		v := vector(f.identity, 0, 0)
		seen := map[string]bool{}
		for _, tp := range templates {
			var dot float64
			for i := range v {
				dot += float64(v[i]) * float64(tp.V[i])
			}
			if dot > 0.9 && !seen[tp.PUID] && !math.IsNaN(dot) {
				seen[tp.PUID] = true
				out[f.identity] = append(out[f.identity], tp.PUID)
			}
		}
	}
	return out
}

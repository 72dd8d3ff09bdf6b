package chaos

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/biomatch/biomatch/client"
	"github.com/biomatch/biomatch/internal/testenv"
)

// TestMultiNode is the fault test of a scaled-out deployment: three API
// replicas and two workers as separate processes on a six-node Redis
// Cluster (the enroll queue in six shards) and PostgreSQL, under load spread
// over the replicas, while a prober deletes through one replica and times
// how long the others take to forget. Faults, in turn: kill -9 of the Redis
// master holding a queue shard (its replica takes over; the old master
// comes back as a replica), of an API replica and of a worker. Then
// TestFaults's invariants, on every replica: every acknowledged enroll
// exists once, no 5xx but 503, deleted persons are gone from every
// replica's index, the queue drains.
func TestMultiNode(t *testing.T) {
	s := newStackWith(t, stackOptions{apis: 3, workers: 2, cluster: true, shards: 6})
	rate, between := 15.0, 3*time.Second
	if *full {
		rate, between = 30, 15*time.Second
	}
	l := startLoad(t, s, rate)
	time.Sleep(2 * time.Second)
	base := s.baseline(t, l)
	p := newProber(s)
	p.run()
	defer p.halt()
	time.Sleep(between)

	fault(t, "kill -9 the Redis master of a queue shard", func() {
		key := "asynq:{" + s.queues[0] + "}:pending"
		m := s.cluster.MasterOf(key)
		m.Kill()
		start := time.Now()
		s.waitFailover(m, key)
		t.Logf("%s killed; its replica serves the shard %.1fs later (cluster-node-timeout %s)",
			m.Addr, time.Since(start).Seconds(), testenv.NodeTimeout)
		time.Sleep(2 * time.Second)
		m.Start(t)
		s.cluster.WaitHealthy(time.Minute)
		t.Logf("%s is back, as a replica: cluster healthy %.1fs after the kill", m.Addr, time.Since(start).Seconds())
		if !s.allRunning() {
			t.Fatal("a biomatch process died with the Redis master")
		}
	})
	time.Sleep(between)

	fault(t, "kill -9 an API replica mid-request", func() { s.killAPIMidRequest(t, l, s.apis[1]) })
	time.Sleep(between)

	fault(t, "kill -9 a worker", func() {
		victim := s.workers[0]
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
			if size, err := s.queueSize(); err == nil && size[1] > 0 {
				break // it may hold an active task now
			}
		}
		victim.kill9()
		time.Sleep(time.Second)
		s.launch(victim)
		t.Logf("%s killed and started again", victim.name)
	})
	time.Sleep(between)

	p.halt()
	l.finish(t)
	p.report(t)
	s.checkInvariants(t, l, base)
	p.check(t)
}

// waitFailover waits until a live node reports a healthy cluster in which
// a node other than dead serves key's slot.
func (s *stack) waitFailover(dead *testenv.RedisNode, key string) {
	s.t.Helper()
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(50 * time.Millisecond) {
		for _, n := range s.cluster.Nodes {
			if n != dead && n.IsMaster() && strings.Contains(n.Info("CLUSTER", "INFO"), "cluster_state:ok") {
				if s.cluster.MasterOf(key) != dead {
					return
				}
			}
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("no replica took over from %s within a minute", dead.Addr)
		}
	}
}

// prober measures how long a write made through one replica takes to reach
// the others' in-memory indexes. In turn: it enrolls a face of its own
// (gallery PROBE) through one replica, times until every other replica
// identifies it, deletes it through the same replica, and times until each
// other replica stops finding it. The replica that made the write must
// answer it at once.
type prober struct {
	s       *stack
	http    *http.Client
	clients []*client.Client
	stop    chan struct{}
	done    sync.WaitGroup
	halted  sync.Once

	mu             sync.Mutex
	added, removed []time.Duration // one per write and other replica
	skipped        int             // replicas down during a sample
	violations     []string
	deleted        []uint64 // faces deleted, checked at the end
}

const probeVersion = "PROBE"

func newProber(s *stack) *prober {
	hc := &http.Client{Timeout: 10 * time.Second}
	p := &prober{s: s, http: hc, stop: make(chan struct{})}
	for _, u := range s.urls() {
		p.clients = append(p.clients, &client.Client{BaseURL: u, APIKey: s.key, Version: probeVersion, Enc: 2, HTTP: hc, Tries: 1})
	}
	return p
}

func (p *prober) run() {
	p.done.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-p.stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
			p.sample(uint64(3_000_000+i), i%len(p.clients))
		}
	})
}

// halt stops the prober and closes its idle connections (each holds a
// goroutine in the replica, which the baseline check counts).
func (p *prober) halt() {
	p.halted.Do(func() { close(p.stop) })
	p.done.Wait()
	p.http.CloseIdleConnections()
}

func (p *prober) violate(format string, args ...any) {
	p.mu.Lock()
	p.violations = append(p.violations, fmt.Sprintf(format, args...))
	p.mu.Unlock()
}

// sample is one enroll and delete of face id through replica via; it gives
// up quietly (and deletes what it made) when a fault gets in the way.
func (p *prober) sample(id uint64, via int) {
	ctx := context.Background()
	c := p.clients[via]
	var puid string
	for deadline := time.Now().Add(time.Minute); puid == ""; time.Sleep(200 * time.Millisecond) {
		rep, err := c.Enroll(ctx, vector(id, 0, 0), "")
		switch {
		case err == nil && rep.HTTPStatus == 200 && (rep.Message == "Ok" || rep.Message == "User Already Enrolled"):
			puid = rep.PUID
		case err == nil && rep.HTTPStatus != 202 && rep.HTTPStatus != 503:
			p.violate("probe enroll through replica %d: %d %q", via, rep.HTTPStatus, rep.Message)
			return
		case time.Now().After(deadline):
			p.violate("probe enroll %d through replica %d: no definite answer within a minute", id, via)
			return
		}
	}
	// The face is enrolled: it must be deleted whatever happens next.
	p.mu.Lock()
	p.deleted = append(p.deleted, id)
	p.mu.Unlock()
	p.converge(id, via, puid, &p.added)

	deleteSent := false
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(200 * time.Millisecond) {
		rep, err := c.Delete(ctx, puid)
		if err == nil && (rep.HTTPStatus == 200 || rep.HTTPStatus == 400 && rep.Message == "delete failed" && deleteSent) {
			break
		}
		if err == nil && rep.HTTPStatus != 503 {
			p.violate("probe delete of %s through replica %d: %d %q", puid, via, rep.HTTPStatus, rep.Message)
			return
		}
		deleteSent = true
		if time.Now().After(deadline) {
			p.violate("probe delete of %s through replica %d: no definite answer within a minute", puid, via)
			return
		}
	}
	p.converge(id, via, "-1", &p.removed)
}

// converge times, on every other replica at once, until identify of face id
// answers want; the writing replica must answer it already.
func (p *prober) converge(id uint64, via int, want string, into *[]time.Duration) {
	ctx := context.Background()
	start := time.Now()
	if rep, err := p.clients[via].Predict(ctx, vector(id, 0, 0), 1, ""); err == nil && rep.HTTPStatus == 200 && rep.PUID != want {
		p.violate("replica %d answered %q right after its own write, want %q", via, rep.PUID, want)
	}
	var wg sync.WaitGroup
	for i, c := range p.clients {
		if i == via {
			continue
		}
		wg.Go(func() {
			for deadline := start.Add(30 * time.Second); ; time.Sleep(2 * time.Millisecond) {
				rep, err := c.Predict(ctx, vector(id, 0, 0), 1, "")
				took := time.Since(start)
				switch {
				case err != nil || rep.HTTPStatus == 503:
					p.mu.Lock()
					p.skipped++ // the replica is down: its restart, not propagation, would be timed
					p.mu.Unlock()
					return
				case rep.HTTPStatus == 200 && rep.PUID == want:
					p.mu.Lock()
					*into = append(*into, took)
					p.mu.Unlock()
					return
				case rep.HTTPStatus != 200:
					p.violate("probe identify on replica %d: %d %q", i, rep.HTTPStatus, rep.Message)
					return
				case time.Now().After(deadline):
					p.violate("replica %d still answers %q for face %d 30 s after a write through replica %d, want %q",
						i, rep.PUID, id, via, want)
					return
				}
			}
		})
	}
	wg.Wait()
}

// report logs the propagation times.
func (p *prober) report(t *testing.T) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, r := range []struct {
		what string
		d    []time.Duration
	}{{"an enroll", p.added}, {"a delete", p.removed}} {
		if len(r.d) == 0 {
			t.Errorf("no propagation of %s was timed", r.what)
			continue
		}
		t.Logf("propagation of %s to another replica's index: p50 %s, p99 %s, max %s (%d timed)", r.what,
			quantile(r.d, 0.5), quantile(r.d, 0.99), slices.Max(r.d).Round(10*time.Microsecond), len(r.d))
	}
	t.Logf("%d replica checks skipped while a replica was down", p.skipped)
}

// check is the prober's invariants: no violation during the run, and every
// face it deleted is gone from PostgreSQL and from every replica.
func (p *prober) check(t *testing.T) {
	for _, v := range p.violations {
		t.Errorf("prober: %s", v)
	}
	if n := p.s.count(`SELECT count(*) FROM persons WHERE version = $1`, probeVersion); n != 0 {
		t.Errorf("%d probe persons remain after every probe face was deleted", n)
	}
	for _, id := range p.deleted {
		for i, c := range p.clients {
			if rep, err := c.Predict(context.Background(), vector(id, 0, 0), 1, ""); err != nil || rep.PUID != "-1" {
				t.Errorf("deleted probe face %d: replica %d answers %+v (%v)", id, i, rep, err)
			}
		}
	}
}

// quantile is the q-quantile of d (nearest rank), rounded for reading.
func quantile(d []time.Duration, q float64) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	i := min(len(s)-1, max(0, int(float64(len(s))*q+0.5)-1))
	return s[i].Round(10 * time.Microsecond)
}

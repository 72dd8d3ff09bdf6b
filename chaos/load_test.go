package chaos

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/biomatch/biomatch/client"
	"github.com/biomatch/biomatch/internal/synth"
)

// face is one synthetic person the load enrolls, identifies and deletes.
type face struct {
	identity uint64
	// state: new → (unknown →)* enrolled | queued → deleting → deleted
	state      string
	puid       string    // once an enroll said who it is
	via        int       // the replica that acknowledged the enroll
	enrolledAt time.Time // when it did
	requestID  string    // a 202's enroll request, completed later by the worker
	deleteSent bool      // a delete went out whose outcome is unknown
}

// load sends enrolls, identifies and deletes at a steady rate from its own
// clients, one per API replica taken in turn (no retries: every reply is
// recorded), and keeps the history the invariants are checked against.
type load struct {
	clients []*client.Client
	next    atomic.Uint64
	http    *http.Client
	rate    float64

	mu          sync.Mutex
	faces       []*face
	statuses    map[string]int             // "op status" → count
	took        map[string][]time.Duration // op → each reply's latency
	violations  []string                   // replies that must never happen
	unavailable []string                   // 503 messages, to show they are clear
	stale       []time.Duration            // identifies on another replica that did not know an enroll yet: how long after it
	inFlight    atomic.Int64
	paused      atomic.Bool
	stop        chan struct{}
	done        sync.WaitGroup
}

// staleLimit is how long after an enroll another replica may still not
// know it (its index follows PostgreSQL's notifications); later, an
// identify that misses it is a violation.
const staleLimit = 5 * time.Second

func newLoad(urls []string, key string, rate float64) *load {
	hc := &http.Client{Timeout: 30 * time.Second}
	l := &load{http: hc, rate: rate, statuses: map[string]int{}, took: map[string][]time.Duration{}, stop: make(chan struct{})}
	for _, u := range urls {
		l.clients = append(l.clients, &client.Client{BaseURL: u, APIKey: key, Version: "FACE3_1", Enc: 2, HTTP: hc, Tries: 1})
	}
	return l
}

// client is the next replica's client, and its index.
func (l *load) client() (*client.Client, int) {
	i := int(l.next.Add(1) % uint64(len(l.clients)))
	return l.clients[i], i
}

// run sends requests on an open-loop schedule until stopped.
func (l *load) run() {
	l.done.Go(func() {
		tick := time.NewTicker(time.Duration(float64(time.Second) / l.rate))
		defer tick.Stop()
		r := rand.New(rand.NewPCG(1, 2))
		for {
			select {
			case <-l.stop:
				return
			case <-tick.C:
			}
			if l.paused.Load() {
				continue
			}
			op, noise := r.Float64(), r.Uint64() // drawn here: r is not safe for concurrent use
			l.inFlight.Add(1)
			l.done.Go(func() {
				defer l.inFlight.Add(-1)
				switch {
				case op < 0.3:
					l.enrollOne(l.pick("new", "unknown"))
				case op < 0.85:
					l.identifyOne(l.pick("enrolled"), noise)
				default:
					l.deleteOne(l.pick("enrolled"))
				}
			})
		}
	})
}

// quiesce pauses the load and waits for replies in flight.
func (l *load) quiesce() {
	l.paused.Store(true)
	for l.inFlight.Load() > 0 {
		time.Sleep(10 * time.Millisecond)
	}
	l.http.CloseIdleConnections()
}

func (l *load) resume() { l.paused.Store(false) }

func (l *load) halt() {
	l.quiesce()
	close(l.stop)
	l.done.Wait()
}

// pick claims a face in one of the states (a new one for "new"), or nil.
func (l *load) pick(states ...string) *face {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, f := range l.faces {
		for _, s := range states {
			if f.state == s && s != "new" {
				f.state = "busy:" + f.state
				return f
			}
		}
	}
	if states[0] == "new" {
		f := &face{identity: 1_000_000 + uint64(len(l.faces)), state: "busy:new"}
		l.faces = append(l.faces, f)
		return f
	}
	return nil
}

func (l *load) set(f *face, state string) {
	l.mu.Lock()
	f.state = state
	l.mu.Unlock()
}

// record counts a reply, keeps how long it took, and keeps what must never
// happen: a 5xx other than 503, or a 503 without a message.
func (l *load) record(op string, start time.Time, rep client.Reply, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.took[op] = append(l.took[op], time.Since(start))
	if err != nil {
		l.statuses[op+" no reply"]++
		return
	}
	l.statuses[fmt.Sprintf("%s %d", op, rep.HTTPStatus)]++
	switch {
	case rep.HTTPStatus == 503:
		l.unavailable = append(l.unavailable, rep.Message)
		if rep.Message == "" {
			l.violations = append(l.violations, op+": 503 without a message")
		}
	case rep.HTTPStatus >= 500:
		l.violations = append(l.violations, fmt.Sprintf("%s: %d %q", op, rep.HTTPStatus, rep.Message))
	}
}

func (l *load) violate(format string, args ...any) {
	l.mu.Lock()
	l.violations = append(l.violations, fmt.Sprintf(format, args...))
	l.mu.Unlock()
}

func vector(identity uint64, noise float64, sample uint64) []float32 {
	return synth.Vector(512, identity, noise, sample)
}

func (l *load) enrollOne(f *face) {
	c, via := l.client()
	start := time.Now()
	rep, err := c.Enroll(context.Background(), vector(f.identity, 0, 0), "")
	l.record("enroll", start, rep, err)
	switch {
	case err != nil || rep.HTTPStatus == 503:
		l.set(f, "unknown") // maybe accepted: enrolled again later, which must not make a second person
	case rep.HTTPStatus == 200 && (rep.Message == "Ok" || rep.Message == "User Already Enrolled"):
		f.puid, f.via, f.enrolledAt = rep.PUID, via, time.Now()
		l.set(f, "enrolled")
	case rep.HTTPStatus == 202:
		f.requestID = rep.Header["x-enroll-request-id"]
		l.set(f, "queued")
	default:
		l.violate("enroll of identity %d: %d %q", f.identity, rep.HTTPStatus, rep.Message)
		l.set(f, "unknown")
	}
}

func (l *load) identifyOne(f *face, sample uint64) {
	if f == nil {
		return
	}
	defer l.set(f, "enrolled")
	c, via := l.client()
	start := time.Now()
	rep, err := c.Predict(context.Background(), vector(f.identity, 0.3, sample), 1, "")
	l.record("identify", start, rep, err)
	if err != nil || rep.HTTPStatus != 200 || rep.PUID == f.puid {
		return
	}
	if age := time.Since(f.enrolledAt); rep.PUID == "-1" && via != f.via && age < staleLimit {
		l.mu.Lock()
		l.stale = append(l.stale, age)
		l.mu.Unlock()
		return
	}
	l.violate("identify of enrolled %s on replica %d answered %q (%q)", f.puid, via, rep.PUID, rep.Message)
}

func (l *load) deleteOne(f *face) {
	if f == nil {
		return
	}
	c, _ := l.client()
	start := time.Now()
	rep, err := c.Delete(context.Background(), f.puid)
	l.record("delete", start, rep, err)
	switch {
	case err != nil || rep.HTTPStatus == 503:
		f.deleteSent = true
		l.set(f, "deleting")
	case rep.HTTPStatus == 200, rep.HTTPStatus == 400 && rep.Message == "delete failed" && f.deleteSent:
		l.set(f, "deleted")
	default:
		l.violate("delete of %s: %d %q", f.puid, rep.HTTPStatus, rep.Message)
		l.set(f, "enrolled")
	}
}

// finish stops the load, settles what is unknown and logs the summary.
func (l *load) finish(t *testing.T) {
	l.halt()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := l.settle(ctx); err != nil {
		t.Fatal(err)
	}
	l.http.CloseIdleConnections() // settle's, which hold goroutines in the API
	t.Logf("load: %s", l.summary())
	l.mu.Lock()
	defer l.mu.Unlock()
	if n := len(l.stale); n > 0 {
		t.Logf("%d identifies on another replica did not know an enroll yet (%s after it at most; tolerated under %s)",
			n, slices.Max(l.stale).Round(time.Millisecond), staleLimit)
	}
}

// settle repeats every enroll and delete whose outcome is unknown until
// each has a definite answer, as a client retrying after an outage would.
func (l *load) settle(ctx context.Context) error {
	for {
		var pending []*face
		l.mu.Lock()
		for _, f := range l.faces {
			if f.state == "unknown" || f.state == "deleting" {
				pending = append(pending, f)
			}
		}
		l.mu.Unlock()
		if len(pending) == 0 {
			return nil
		}
		for _, f := range pending {
			if f.state == "unknown" {
				l.enrollOne(f)
			} else {
				l.deleteOne(f)
			}
		}
		select {
		case <-ctx.Done():
			return errors.New("enrolls and deletes still without an answer")
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// summary is the replies by operation and status, and each operation's
// latency (p50, p99, max).
func (l *load) summary() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := ""
	for _, k := range slices.Sorted(maps.Keys(l.statuses)) {
		out += fmt.Sprintf("%s: %d; ", k, l.statuses[k])
	}
	for _, op := range slices.Sorted(maps.Keys(l.took)) {
		d := l.took[op]
		out += fmt.Sprintf("%s latency p50 %s, p99 %s, max %s; ", op, quantile(d, 0.5), quantile(d, 0.99), quantile(d, 1))
	}
	return out
}

// byState returns the faces in a state.
func (l *load) byState(state string) []*face {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []*face
	for _, f := range l.faces {
		if f.state == state {
			out = append(out, f)
		}
	}
	return out
}

package postgres

import (
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/biomatch/biomatch/engine"
)

// EnrollsChannel is the NOTIFY channel of finished enroll requests, sent
// at commit; the payload is the finished request (finishedNote, JSON) or,
// from an older worker, its id alone.
const EnrollsChannel = "biomatch_enrolls"

// finishedNote is a finished request as EnrollRequest reads it, without
// templates (a finished request keeps none): a waiting handler answers from
// it without reading the request again.
type finishedNote struct {
	ID         string    `json:"id"`
	Tenant     string    `json:"tenant"`
	Version    string    `json:"version"`
	KeyID      string    `json:"key_id"`
	RequestID  string    `json:"request_id"`
	ExternalID string    `json:"external_id"`
	State      string    `json:"state"`
	Attempts   int       `json:"attempts"`
	Outcome    string    `json:"outcome"`
	Reason     string    `json:"reason"`
	Score      float64   `json:"score"`
	CreatedAt  time.Time `json:"created_at"`
	Person     struct {
		ID          int64     `json:"id"`
		PUID        string    `json:"puid"`
		GUID        string    `json:"guid"`
		ExternalID  string    `json:"external_id"`
		EnrollLevel int       `json:"enroll_level"`
		CreatedAt   time.Time `json:"created_at"`
	} `json:"person"`
}

// notifyFinished notifies, at tx's commit, each finished request of ids
// (finishedNote), read back as it stands at the end of tx.
func notifyFinished(ctx context.Context, tx pgx.Tx, ids []string) error {
	_, err := tx.Exec(ctx, `SELECT pg_notify('`+EnrollsChannel+`', json_build_object(
		'id', r.id, 'tenant', r.tenant, 'version', r.version, 'key_id', coalesce(r.key_id::text, ''),
		'request_id', r.request_id, 'external_id', r.external_id, 'state', r.state, 'attempts', r.attempts,
		'outcome', r.outcome, 'reason', r.reason, 'score', r.score, 'created_at', r.created_at,
		'person', json_build_object('id', coalesce(p.id, 0), 'puid', coalesce(p.puid, ''), 'guid', coalesce(p.guid, ''),
			'external_id', coalesce(p.external_id, ''), 'enroll_level', coalesce(p.enroll_level, 0),
			'created_at', coalesce(p.created_at, r.created_at)))::text)
		FROM `+enrollRequestsWithPerson+` WHERE r.id = ANY($1)`, ids)
	return err
}

// request is the note as the EnrollRequest it reports (times in the local
// zone, as pgx scans them).
func (n finishedNote) request() engine.EnrollRequest {
	r := engine.EnrollRequest{ID: n.ID, Gallery: engine.Gallery{Tenant: n.Tenant, Version: n.Version},
		KeyID: n.KeyID, RequestID: n.RequestID, ExternalID: n.ExternalID, State: engine.EnrollState(n.State),
		Attempts: n.Attempts, CreatedAt: n.CreatedAt.Local(),
		Result: engine.EnrollResult{Outcome: engine.Outcome(n.Outcome), Reason: n.Reason, Score: n.Score}}
	if p := n.Person; p.ID != 0 {
		r.Result.Person = engine.Person{ID: p.ID, Gallery: r.Gallery, PUID: p.PUID, GUID: p.GUID,
			ExternalID: p.ExternalID, EnrollLevel: p.EnrollLevel, CreatedAt: p.CreatedAt.Local()}
	}
	return r
}

var _ engine.Finished = (*Finished)(nil)

// Finished wakes the handlers waiting for enroll requests when the worker
// commits them (engine.Finished), from one LISTEN connection per process,
// handing each the finished request its notification carries. While it is
// not listening (before the first LISTEN, while reconnecting) a
// subscription wakes after notListeningLook instead, and every waiter is
// woken to look when listening stops and when it starts again: a waiter
// never misses a finish, and costs no reads while the listener is up.
type Finished struct {
	pool *pgxpool.Pool
	log  *slog.Logger

	mu      sync.Mutex
	live    bool                                    // LISTEN is in effect on a connection not known lost
	waiters map[string][]chan *engine.EnrollRequest // each buffered, receives once

	listening     chan struct{} // closed once the first LISTEN succeeded
	listeningOnce sync.Once
}

// NewFinished returns a Finished over pool; Follow listens.
func NewFinished(pool *pgxpool.Pool, log *slog.Logger) *Finished {
	return &Finished{pool: pool, log: log, waiters: map[string][]chan *engine.EnrollRequest{}, listening: make(chan struct{})}
}

// Listening is closed once Follow listens.
func (f *Finished) Listening() <-chan struct{} { return f.listening }

// notListeningLook is how soon a waiter looks again while the process is
// not listening.
const notListeningLook = time.Second

// Subscribe implements engine.Finished.
func (f *Finished) Subscribe(id string) (<-chan *engine.EnrollRequest, func()) {
	ch := make(chan *engine.EnrollRequest, 1)
	f.mu.Lock()
	if !f.live {
		f.mu.Unlock()
		look := time.AfterFunc(notListeningLook, func() { ch <- nil })
		return ch, func() { look.Stop() }
	}
	f.waiters[id] = append(f.waiters[id], ch)
	f.mu.Unlock()
	return ch, func() {
		f.mu.Lock()
		defer f.mu.Unlock()
		list := f.waiters[id]
		for i, c := range list {
			if c == ch {
				list = append(list[:i], list[i+1:]...)
				break
			}
		}
		if len(list) == 0 {
			delete(f.waiters, id)
		} else {
			f.waiters[id] = list
		}
	}
}

// setLive records whether notifications arrive and wakes every waiter:
// any of their requests may have finished unannounced.
func (f *Finished) setLive(live bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.live = live
	f.wakeAll()
}

// wakeAll wakes every waiter to look. f.mu is held.
func (f *Finished) wakeAll() {
	for id, list := range f.waiters {
		for _, ch := range list {
			ch <- nil
		}
		delete(f.waiters, id)
	}
}

// wake hands a notification to the waiters of its request: the finished
// request it carries, or (an id alone) nil, to look. A payload that is
// neither wakes every waiter to look: none may miss its finish.
func (f *Finished) wake(payload string) {
	id, req := payload, (*engine.EnrollRequest)(nil)
	if strings.HasPrefix(payload, "{") {
		var n finishedNote
		if err := json.Unmarshal([]byte(payload), &n); err != nil || n.ID == "" {
			f.log.Error("an enroll notification could not be read; every waiter looks", "err", err)
			f.mu.Lock()
			defer f.mu.Unlock()
			f.wakeAll()
			return
		}
		r := n.request()
		id, req = n.ID, &r
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, ch := range f.waiters[id] {
		ch <- req
	}
	delete(f.waiters, id)
}

// Follow listens until ctx ends, reconnecting after a lost connection.
func (f *Finished) Follow(ctx context.Context) {
	for ctx.Err() == nil {
		err := f.follow(ctx)
		f.setLive(false)
		if ctx.Err() != nil {
			return
		}
		f.log.Warn("enroll listener lost; reconnecting", "err", err)
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
}

func (f *Finished) follow(ctx context.Context) error {
	pc, err := f.pool.Acquire(ctx)
	if err != nil {
		return err
	}
	conn := pc.Hijack()
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, "LISTEN "+EnrollsChannel); err != nil {
		return err
	}
	f.setLive(true)
	f.listeningOnce.Do(func() { close(f.listening) })
	for {
		note, err := conn.WaitForNotification(ctx)
		if err != nil {
			return err
		}
		f.wake(note.Payload)
	}
}

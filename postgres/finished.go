package postgres

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/biomatch/biomatch/engine"
)

// EnrollsChannel is the NOTIFY channel of finished enroll requests; the
// payload is the request's id. It is sent at commit.
const EnrollsChannel = "biomatch_enrolls"

var _ engine.Finished = (*Finished)(nil)

// Finished wakes the handlers waiting for enroll requests when the worker
// commits them (engine.Finished), from one LISTEN connection per process.
// While it is not listening (before the first LISTEN, while reconnecting) a
// subscription's channel closes after notListeningLook instead, and every
// waiter is woken when listening stops and when it starts again: a waiter
// never misses a finish, and costs no reads while the listener is up.
type Finished struct {
	pool *pgxpool.Pool
	log  *slog.Logger

	mu      sync.Mutex
	live    bool // LISTEN is in effect on a connection not known lost
	waiters map[string][]chan struct{}

	listening     chan struct{} // closed once the first LISTEN succeeded
	listeningOnce sync.Once
}

// NewFinished returns a Finished over pool; Follow listens.
func NewFinished(pool *pgxpool.Pool, log *slog.Logger) *Finished {
	return &Finished{pool: pool, log: log, waiters: map[string][]chan struct{}{}, listening: make(chan struct{})}
}

// Listening is closed once Follow listens.
func (f *Finished) Listening() <-chan struct{} { return f.listening }

// notListeningLook is how soon a waiter looks again while the process is
// not listening.
const notListeningLook = time.Second

// Subscribe implements engine.Finished.
func (f *Finished) Subscribe(id string) (<-chan struct{}, func()) {
	ch := make(chan struct{})
	f.mu.Lock()
	if !f.live {
		f.mu.Unlock()
		look := time.AfterFunc(notListeningLook, func() { close(ch) })
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
	for id, list := range f.waiters {
		for _, ch := range list {
			close(ch)
		}
		delete(f.waiters, id)
	}
}

func (f *Finished) wake(id string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, ch := range f.waiters[id] {
		close(ch)
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

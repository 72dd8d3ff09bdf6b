package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"reflect"
	"testing"
	"time"

	"github.com/biomatch/biomatch/engine"
	"github.com/biomatch/biomatch/internal/testenv"
	"github.com/biomatch/biomatch/postgres"
)

// TestFinishedNeverMissesAFinish: a waiter is woken by its request's
// notification; when the listener's connection is lost (a notification
// then may be lost too) every waiter is woken to look; while nobody
// listens a subscription wakes within a second; and once listening again,
// notifications wake waiters as before.
func TestFinishedNeverMissesAFinish(t *testing.T) {
	pool := testenv.NewPool(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	f := postgres.NewFinished(pool, slog.New(slog.NewTextHandler(io.Discard, nil)))

	woken := func(ch <-chan *engine.EnrollRequest, within time.Duration) bool {
		select {
		case <-ch:
			return true
		case <-time.After(within):
			return false
		}
	}
	notify := func(id string) {
		t.Helper()
		if _, err := pool.Exec(ctx, `SELECT pg_notify($1, $2)`, postgres.EnrollsChannel, id); err != nil {
			t.Fatal(err)
		}
	}

	early, end := f.Subscribe("before-listening")
	defer end()
	if !woken(early, 5*time.Second) {
		t.Fatal("a subscription made while nobody listens was not woken to look")
	}

	done := make(chan struct{})
	go func() { defer close(done); f.Follow(ctx) }()
	<-f.Listening()
	a, endA := f.Subscribe("a")
	defer endA()
	b, endB := f.Subscribe("b")
	defer endB()
	notify("a")
	if !woken(a, 5*time.Second) {
		t.Fatal("the notification of a did not wake its waiter")
	}
	if woken(b, 200*time.Millisecond) {
		t.Fatal("the notification of a woke the waiter of b")
	}

	// Lose the listener's connection: b's notification may be lost with it.
	var killed bool
	if err := pool.QueryRow(ctx, `SELECT bool_or(pg_terminate_backend(pid)) FROM pg_stat_activity
		WHERE datname = current_database() AND query LIKE 'LISTEN%'`).Scan(&killed); err != nil || !killed {
		t.Fatalf("terminate the listener: %v, %v", killed, err)
	}
	if !woken(b, 5*time.Second) {
		t.Fatal("losing the listener did not wake the waiter of b")
	}

	// Listening again (Follow reconnects within a second or two): a new
	// subscription is woken by its notification.
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, endC := f.Subscribe("c")
		notify("c")
		got := woken(c, 100*time.Millisecond)
		endC()
		if got {
			break // by the notification, or by the look while not listening
		}
		if time.Now().After(deadline) {
			t.Fatal("no wake-up for c after reconnecting")
		}
	}
	d, endD := f.Subscribe("d") // listening now: only its notification wakes it
	defer endD()
	if woken(d, 1500*time.Millisecond) {
		t.Fatal("a waiter was woken without its notification while listening")
	}
	notify("d")
	if !woken(d, 5*time.Second) {
		t.Fatal("after reconnecting, the notification of d did not wake its waiter")
	}
	cancel()
	<-done
}

// TestFinishedCarriesTheRequest: a waiter receives its finished request in
// the notification, equal to what reading it returns (done with its person,
// or failed), so the handler need not read it. EnrollState reports the same
// state without the templates.
func TestFinishedCarriesTheRequest(t *testing.T) {
	pool, _, p := newStore(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	f := postgres.NewFinished(pool, slog.New(slog.NewTextHandler(io.Discard, nil)))
	done := make(chan struct{})
	go func() { defer close(done); f.Follow(ctx) }()
	defer func() { cancel(); <-done }()
	<-f.Listening()

	templates := testenv.Enroll(t, p, gallery, 1, 128)
	var person engine.Person
	for id := range templates {
		ps, err := p.Persons(ctx, gallery.Tenant, []int64{id})
		if err != nil {
			t.Fatal(err)
		}
		person = ps[id]
	}
	var ids []string
	var waits []<-chan *engine.EnrollRequest
	for i := range 2 {
		r := engine.EnrollRequest{ID: engine.NewID(), Gallery: gallery, RequestID: fmt.Sprint("http-", i),
			ExternalID: fmt.Sprint("user-", i), Templates: []engine.Embedding{make(engine.Embedding, 128)}, State: engine.Pending}
		r.Templates[0][i] = 1
		if err := p.CreateEnrollRequest(ctx, r); err != nil {
			t.Fatal(err)
		}
		ch, end := f.Subscribe(r.ID)
		defer end()
		ids, waits = append(ids, r.ID), append(waits, ch)
	}
	if g, state, err := p.EnrollState(ctx, ids[0]); g != gallery || state != engine.Pending || err != nil {
		t.Errorf("EnrollState of a new request = %v %s, %v; want %v pending", g, state, err, gallery)
	}
	if _, _, err := p.EnrollState(ctx, "no-such-request"); !errors.Is(err, engine.ErrNotFound) {
		t.Errorf("EnrollState of an unknown request: %v, want ErrNotFound", err)
	}
	if err := p.InGallery(ctx, gallery, func(ctx context.Context, tx engine.GalleryTx) error {
		return tx.FinishEnrollRequests(ctx, ids[:1], []engine.EnrollResult{{Outcome: engine.Existing, Person: person, Score: 0.8125}})
	}); err != nil {
		t.Fatal(err)
	}
	if err := p.FailEnrollRequest(ctx, ids[1], "no face"); err != nil {
		t.Fatal(err)
	}
	for i, id := range ids {
		var got *engine.EnrollRequest
		select {
		case got = <-waits[i]:
		case <-time.After(5 * time.Second):
			t.Fatalf("request %d: no notification", i)
		}
		want, err := p.EnrollRequest(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if _, state, err := p.EnrollState(ctx, id); state != want.State || err != nil {
			t.Errorf("request %d: EnrollState %s, %v; reading it: %s", i, state, err, want.State)
		}
		if got == nil || !reflect.DeepEqual(*got, want) {
			t.Errorf("request %d: the notification carried\n%+v\nreading it returns\n%+v", i, got, want)
		}
	}
}

// Package teststack starts the whole biomatch service, wired by
// internal/app exactly as `biomatch serve --with-worker` wires it, on real
// PostgreSQL and Redis: a fresh database (dropped by Stop) and a queue of
// its own. Tests, examples and TestMain use it.
package teststack

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/biomatch/biomatch/internal/app"
	"github.com/biomatch/biomatch/internal/testenv"
	"github.com/biomatch/biomatch/postgres"
)

// Options vary a Stack.
type Options struct {
	// Env overrides the configuration (the variables app.LoadConfig reads).
	// DATABASE_URL, REDIS_URL and QUEUE_NAME are the stack's own. Unless
	// set here: SEARCH_BACKEND=pgvector, no rate limits, a random MASTER_KEY.
	Env map[string]string
	// NoWorker starts no worker (StartWorker starts one later).
	NoWorker bool
	// Log receives the service's JSON log; nil: discarded.
	Log io.Writer
	// Wrap, when not nil, wraps the handler (to record the exchange, say).
	Wrap func(http.Handler) http.Handler
}

// Stack is the running service.
type Stack struct {
	URL  string   // of the HTTP server
	App  *app.App // its wiring: pool, keys, service, …
	Keys *postgres.Keys
	stop []func()
}

// Start starts the stack on a fresh database of databaseURL's server and a
// queue of its own on redisURL. Stop releases everything.
func Start(databaseURL, redisURL string, o Options) (*Stack, error) {
	ctx := context.Background()
	s := &Stack{}
	admin, err := pgx.Connect(ctx, databaseURL)
	if err != nil {
		return nil, fmt.Errorf("connect (is make services running?): %w", err)
	}
	name := "biomatch_stack_" + strings.ToLower(rand.Text()[:12])
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		admin.Close(ctx)
		return nil, err
	}
	s.stop = append(s.stop, func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := testenv.DropDatabase(ctx, admin, name); err != nil {
			slog.Warn("teststack: drop database", "database", name, "err", err)
		}
		admin.Close(ctx)
	})
	u, _ := url.Parse(databaseURL)
	u.Path = "/" + name
	pool, err := postgres.OpenPool(ctx, u.String())
	if err != nil {
		s.Stop()
		return nil, err
	}
	_, err = postgres.Migrate(ctx, pool)
	pool.Close()
	if err != nil {
		s.Stop()
		return nil, err
	}

	master := make([]byte, 32)
	rand.Read(master)
	env := map[string]string{"SEARCH_BACKEND": "pgvector", "RATE_LIMIT_PER_SECOND": "0", "AUTH_FAILURES_PER_MINUTE": "0",
		"MASTER_KEY": hex.EncodeToString(master)}
	for k, v := range o.Env {
		env[k] = v
	}
	env["DATABASE_URL"], env["REDIS_URL"] = u.String(), redisURL
	env["QUEUE_NAME"] = "stack-" + strings.ToLower(rand.Text()[:10])
	cfg, err := app.LoadConfig(func(k string) string { return env[k] })
	if err != nil {
		s.Stop()
		return nil, err
	}
	var logTo io.Writer = io.Discard
	if o.Log != nil {
		logTo = o.Log
	}
	a, err := app.New(ctx, cfg, slog.New(slog.NewJSONHandler(logTo, &slog.HandlerOptions{Level: cfg.LogLevel})), true)
	if err != nil {
		s.Stop()
		return nil, err
	}
	s.App, s.Keys = a, a.Keys
	s.stop = append(s.stop, a.Close)
	a.Start()
	if !o.NoWorker {
		a.StartWorker()
	}
	h, err := a.Handler()
	if err != nil {
		s.Stop()
		return nil, err
	}
	if o.Wrap != nil {
		h = o.Wrap(h)
	}
	srv := httptest.NewServer(h)
	s.stop = append(s.stop, srv.Close)
	s.URL = srv.URL
	return s, nil
}

// StartWorker starts the enroll worker of a stack started with NoWorker.
func (s *Stack) StartWorker() { s.App.StartWorker() }

// Stop releases the stack, newest first.
func (s *Stack) Stop() {
	for i := len(s.stop) - 1; i >= 0; i-- {
		s.stop[i]()
	}
}

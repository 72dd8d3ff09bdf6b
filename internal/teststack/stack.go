// Package teststack starts the whole biomatch service on real PostgreSQL and
// Redis for examples and TestMain, where no *testing.T exists.
package teststack

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"

	"github.com/jackc/pgx/v5"

	"github.com/biomatch/biomatch/engine"
	"github.com/biomatch/biomatch/httpapi"
	"github.com/biomatch/biomatch/keys"
	"github.com/biomatch/biomatch/queue"
	"github.com/biomatch/biomatch/vectorstore"
)

// Stack is the whole service on real PostgreSQL and Redis, for examples
// and TestMain, where no *testing.T exists.
type Stack struct {
	URL  string
	Keys *keys.Store
	stop []func()
}

// StartStack starts the router, the service and a worker on a fresh
// database of databaseURL's server and a queue of its own on redisURL.
// wrap, when not nil, wraps the router (to record the exchange, say).
// Stop releases everything, the database included.
func StartStack(databaseURL, redisURL string, wrap func(http.Handler) http.Handler) (*Stack, error) {
	ctx := context.Background()
	s := &Stack{}
	admin, err := pgx.Connect(ctx, databaseURL)
	if err != nil {
		return nil, fmt.Errorf("connect (is make services running?): %w", err)
	}
	name := "biomatch_example_" + strings.ToLower(rand.Text()[:12])
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		admin.Close(ctx)
		return nil, err
	}
	s.stop = append(s.stop, func() {
		admin.Exec(context.Background(), "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
		admin.Close(context.Background())
	})
	u, _ := url.Parse(databaseURL)
	u.Path = "/" + name
	pool, err := vectorstore.OpenPool(ctx, u.String())
	if err != nil {
		s.Stop()
		return nil, err
	}
	s.stop = append(s.stop, pool.Close)
	if _, err := vectorstore.Migrate(ctx, pool); err != nil {
		s.Stop()
		return nil, err
	}
	pool.Reset()
	store, err := vectorstore.NewPostgres(ctx, pool, vectorstore.PostgresConfig{})
	if err != nil {
		s.Stop()
		return nil, err
	}
	opt, err := queue.ParseRedisURL(redisURL)
	if err != nil {
		s.Stop()
		return nil, err
	}
	qname := "example-" + strings.ToLower(rand.Text()[:10])
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	jobs := queue.NewClient(opt, qname)
	svc := engine.NewService(store, store, jobs, engine.Config{}, log)
	wctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { queue.NewWorker(opt, svc, queue.WorkerConfig{Queue: qname}, log).Run(wctx) })
	s.stop = append(s.stop, func() { cancel(); wg.Wait(); jobs.Close() })
	s.Keys = keys.NewStore(pool, nil)
	var h http.Handler = httpapi.NewHandler(httpapi.Config{CORSOrigins: []string{"*"}, MaxBodyBytes: 64 << 20},
		httpapi.Deps{Service: svc, Keys: s.Keys, Log: log})
	if wrap != nil {
		h = wrap(h)
	}
	srv := httptest.NewServer(h)
	s.stop = append(s.stop, srv.Close)
	s.URL = srv.URL
	return s, nil
}

// Stop releases the stack, newest first.
func (s *Stack) Stop() {
	for i := len(s.stop) - 1; i >= 0; i-- {
		s.stop[i]()
	}
}

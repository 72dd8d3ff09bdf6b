package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/biomatch/biomatch/internal/app"
	"github.com/biomatch/biomatch/postgres"
)

// newLogger returns the process's JSON logger. go-redis reports connection
// trouble through a global logger of its own (plain text on stderr): it is
// routed here too, so every line stays JSON.
func newLogger(cfg app.Config, w io.Writer) *slog.Logger {
	log := slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: cfg.LogLevel}))
	redis.SetLogger(redisLogger{log.With("component", "redis")})
	return log
}

type redisLogger struct{ log *slog.Logger }

func (l redisLogger) Printf(ctx context.Context, format string, v ...any) {
	l.log.WarnContext(ctx, fmt.Sprintf(format, v...))
}

// starting answers while the service connects: /health is up, the rest 503.
var starting = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	switch r.URL.Path {
	case "/health":
		io.WriteString(w, `{"status":"starting"}`)
	case "/ready":
		w.WriteHeader(http.StatusServiceUnavailable)
		io.WriteString(w, `{"status":"not ready","checks":{"startup":"connecting to PostgreSQL"}}`)
	default:
		w.WriteHeader(http.StatusServiceUnavailable)
		io.WriteString(w, `{"status":-1,"message":"service starting: retry shortly"}`)
	}
})

// runServe listens at once (answering "starting"), connects, then serves
// the API until ctx ends, and shuts down gracefully.
func runServe(ctx context.Context, config func() (app.Config, error), args []string, std stdio) error {
	fs := newFlagSet("serve", std.out, std.err)
	withWorker := fs.Bool("with-worker", false, "also run the enroll worker (and the index maintenance) in this process")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg, err := config()
	if err != nil {
		return err
	}
	log := newLogger(cfg, std.err)
	ln, err := net.Listen("tcp", cfg.ListenAddr)
	if err != nil {
		return fmt.Errorf("LISTEN_ADDR: %w", err)
	}
	var current atomic.Pointer[http.Handler]
	var h http.Handler = starting
	current.Store(&h)
	srv := &http.Server{
		Handler:           http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { (*current.Load()).ServeHTTP(w, r) }),
		ReadHeaderTimeout: cfg.ReadHeaderTO,
		ReadTimeout:       60 * time.Second,
		WriteTimeout:      cfg.Engine.EnrollWait + 30*time.Second,
		IdleTimeout:       2 * time.Minute,
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errc := make(chan error, 3)
	serve := func(srv *http.Server, ln net.Listener, what string) {
		wg.Go(func() {
			log.Info("serving "+what, "addr", ln.Addr().String(), "with_worker", *withWorker)
			if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
				errc <- err
			}
		})
	}
	serve(srv, ln, "API")
	var msrv *http.Server // the metrics listener, once started
	shutdown := func() {
		sctx, stop := context.WithTimeout(context.Background(), 15*time.Second)
		defer stop()
		srv.Shutdown(sctx)
		if msrv != nil {
			msrv.Shutdown(sctx)
		}
		cancel()
		wg.Wait()
	}

	a, err := app.New(ctx, cfg, log, true)
	if err != nil {
		shutdown()
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	defer a.Close()
	a.Start()
	a.TouchHeadroom()
	if *withWorker {
		a.StartWorker()
	}
	handler, err := a.Handler()
	if err != nil {
		shutdown()
		return err
	}
	// A new variable, never h: requests in flight may still be reading h.
	current.Store(&handler)
	if cfg.MetricsAddr != "" {
		mln, err := net.Listen("tcp", cfg.MetricsAddr)
		if err != nil {
			shutdown()
			return fmt.Errorf("METRICS_ADDR: %w", err)
		}
		msrv = &http.Server{Handler: a.Metrics.Handler(), ReadHeaderTimeout: cfg.ReadHeaderTO}
		serve(msrv, mln, "metrics")
	}

	select {
	case <-ctx.Done():
	case err = <-errc:
	case err = <-a.Errors():
	}
	shutdown()
	log.Info("stopped")
	return err
}

// runWorker runs the enroll worker until ctx ends.
func runWorker(ctx context.Context, config func() (app.Config, error), args []string, std stdio) error {
	if err := newFlagSet("worker", std.out, std.err).Parse(args); err != nil {
		return err
	}
	cfg, err := config()
	if err != nil {
		return err
	}
	a, err := app.New(ctx, cfg, newLogger(cfg, std.err), false)
	if err != nil {
		return err
	}
	defer a.Close()
	a.Start() // the in-memory index: the enroll decisions' exact dedup
	a.TouchHeadroom()
	a.StartWorker()
	select {
	case <-ctx.Done():
		return nil
	case err := <-a.Errors():
		return err
	}
}

func runMigrate(ctx context.Context, config func() (app.Config, error), args []string, std stdio) error {
	if err := newFlagSet("migrate", std.out, std.err).Parse(args); err != nil {
		return err
	}
	cfg, err := config()
	if err != nil {
		return err
	}
	pool, err := postgres.OpenPool(ctx, cfg.DatabaseURL)
	if err != nil {
		return err
	}
	defer pool.Close()
	n, err := postgres.Migrate(ctx, pool)
	if err != nil {
		return err
	}
	fmt.Fprintf(std.out, "migrations applied: %d\n", n)
	return nil
}

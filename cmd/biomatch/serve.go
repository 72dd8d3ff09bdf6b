package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/biomatch/biomatch/engine"
	"github.com/biomatch/biomatch/httpapi"
	"github.com/biomatch/biomatch/keys"
	"github.com/biomatch/biomatch/queue"
	"github.com/biomatch/biomatch/vectorstore"
)

// app is what serve and worker share: pools and the service.
type app struct {
	pool    *pgxpool.Pool
	store   *vectorstore.Postgres
	jobs    *queue.Client
	service *engine.Service
	log     *slog.Logger
}

func newApp(ctx context.Context, cfg config, stderr io.Writer) (*app, error) {
	log := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: cfg.LogLevel}))
	pool, err := vectorstore.OpenPool(ctx, cfg.DatabaseURL)
	if err != nil {
		return nil, err
	}
	redisOpt, err := queue.ParseRedisURL(cfg.RedisURL)
	if err != nil {
		pool.Close()
		return nil, err
	}
	store := vectorstore.NewPostgres(pool, vectorstore.PostgresConfig{HNSWMinTemplates: cfg.HNSWMinTemplates, EfSearch: cfg.HNSWEfSearch})
	jobs := queue.NewClient(redisOpt, cfg.Queue)
	return &app{pool: pool, store: store, jobs: jobs, log: log,
		service: engine.NewService(store, store, jobs, cfg.Engine, log)}, nil
}

func (a *app) close() {
	a.jobs.Close()
	a.pool.Close()
}

func (a *app) newWorker(cfg config) (*queue.Worker, error) {
	redisOpt, err := queue.ParseRedisURL(cfg.RedisURL)
	if err != nil {
		return nil, err
	}
	return queue.NewWorker(redisOpt, a.service, queue.WorkerConfig{Queue: cfg.Queue, Concurrency: cfg.WorkerConc,
		ReconcileEvery: cfg.ReconcileEvery, StaleAfter: cfg.StaleAfter}, a.log), nil
}

func runServe(ctx context.Context, cfg config, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	withWorker := fs.Bool("with-worker", false, "also run the enroll worker in this process")
	if err := fs.Parse(args); err != nil {
		return err
	}
	a, err := newApp(ctx, cfg, stderr)
	if err != nil {
		return err
	}
	defer a.close()

	handler := httpapi.NewHandler(httpapi.Config{CORSOrigins: cfg.CORSOrigins, MaxBodyBytes: cfg.MaxBodyBytes}, httpapi.Deps{
		Service: a.service,
		Keys:    keys.NewStore(a.pool),
		Log:     a.log,
		Ready: map[string]httpapi.Check{
			"postgres": a.store.Ping,
			"redis":    func(context.Context) error { return a.jobs.Ping() },
			"migrations": func(ctx context.Context) error {
				pending, err := vectorstore.MigrationsPending(ctx, a.pool)
				if err == nil && pending {
					err = errors.New("pending: run biomatch migrate")
				}
				return err
			},
		},
	})
	srv := &http.Server{
		Addr:              cfg.ListenAddr,
		Handler:           handler,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       60 * time.Second,
		WriteTimeout:      cfg.Engine.EnrollWait + 30*time.Second,
		IdleTimeout:       2 * time.Minute,
	}
	ln, err := net.Listen("tcp", cfg.ListenAddr)
	if err != nil {
		return fmt.Errorf("LISTEN_ADDR: %w", err)
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errc := make(chan error, 2)
	if *withWorker {
		w, err := a.newWorker(cfg)
		if err != nil {
			return err
		}
		wg.Go(func() { errc <- w.Run(ctx) })
	}
	wg.Go(func() {
		a.log.Info("serving", "addr", ln.Addr().String(), "with_worker", *withWorker)
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			errc <- err
		}
	})
	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	shutdownCtx, stop := context.WithTimeout(context.Background(), 15*time.Second)
	defer stop()
	srv.Shutdown(shutdownCtx)
	cancel()
	wg.Wait()
	a.log.Info("stopped")
	return err
}

func runWorker(ctx context.Context, cfg config, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("worker", flag.ContinueOnError)
	if err := fs.Parse(args); err != nil {
		return err
	}
	a, err := newApp(ctx, cfg, stderr)
	if err != nil {
		return err
	}
	defer a.close()
	w, err := a.newWorker(cfg)
	if err != nil {
		return err
	}
	a.log.Info("worker started", "queue", cfg.Queue, "concurrency", cfg.WorkerConc)
	return w.Run(ctx)
}

func runMigrate(ctx context.Context, cfg config, stdout io.Writer) error {
	pool, err := vectorstore.OpenPool(ctx, cfg.DatabaseURL)
	if err != nil {
		return err
	}
	defer pool.Close()
	n, err := vectorstore.Migrate(ctx, pool)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "migrations applied: %d\n", n)
	return nil
}

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
	"sync/atomic"
	"time"

	"github.com/hibiken/asynqmon"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"

	"github.com/biomatch/biomatch/engine"
	"github.com/biomatch/biomatch/httpapi"
	"github.com/biomatch/biomatch/keys"
	"github.com/biomatch/biomatch/metrics"
	"github.com/biomatch/biomatch/queue"
	"github.com/biomatch/biomatch/ratelimit"
	"github.com/biomatch/biomatch/replay"
	"github.com/biomatch/biomatch/vectorstore"
	"github.com/biomatch/biomatch/vectorstore/kernel"
)

// app is what serve and worker share: pools, store, index and the service.
type app struct {
	pool    *pgxpool.Pool
	store   *vectorstore.Postgres
	mem     *vectorstore.Synced // nil with SEARCH_BACKEND=pgvector, and in the worker
	jobs    *queue.Client
	service *engine.Service
	metrics *metrics.Metrics
	limiter *ratelimit.Limiter // nil without a rate limit
	replay  *replay.Cache      // v3 nonces; nil in the worker
	log     *slog.Logger
}

// newLogger returns the process's JSON logger. go-redis reports connection
// trouble through a global logger of its own (plain text on stderr): it is
// routed here too, so every line stays JSON.
func newLogger(cfg config, w io.Writer) *slog.Logger {
	log := slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: cfg.LogLevel}))
	redis.SetLogger(redisLogger{log.With("component", "redis")})
	return log
}

type redisLogger struct{ log *slog.Logger }

func (l redisLogger) Printf(ctx context.Context, format string, v ...any) {
	l.log.WarnContext(ctx, fmt.Sprintf(format, v...))
}

// newApp connects, waiting for PostgreSQL (and its schema) as long as ctx
// allows, and builds the service. search says whether this process answers
// searches (serve) or only enrolls (worker).
func newApp(ctx context.Context, cfg config, log *slog.Logger, search bool) (*app, error) {
	redisOpt, err := queue.ParseRedisURL(cfg.RedisURL)
	if err != nil {
		return nil, err
	}
	pool, err := vectorstore.OpenPool(ctx, cfg.DatabaseURL)
	if err != nil {
		return nil, err
	}
	var store *vectorstore.Postgres
	for wait := 250 * time.Millisecond; ; wait = min(2*wait, 5*time.Second) {
		store, err = vectorstore.NewPostgres(ctx, pool, vectorstore.PostgresConfig{HNSWMinTemplates: cfg.HNSWMinTemplates, EfSearch: cfg.HNSWEfSearch})
		if err == nil {
			break
		}
		log.Warn("waiting for PostgreSQL", "err", err)
		select {
		case <-ctx.Done():
			pool.Close()
			return nil, err
		case <-time.After(wait):
		}
	}
	a := &app{pool: pool, store: store, jobs: queue.NewClient(redisOpt, cfg.Queue), log: log, metrics: metrics.New()}
	var index engine.Index = store
	backend := func() string { return "pgvector" }
	if search {
		if !store.HasVector() {
			if cfg.SearchBackend == "pgvector" {
				a.close()
				return nil, errors.New("SEARCH_BACKEND=pgvector, but the vector extension is not installed in this database")
			}
			log.Warn("pgvector is not installed: templates are stored as real[] and search is exact, in memory")
		}
		exactCfg := vectorstore.ExactConfig{Int8: cfg.ExactInt8}
		switch cfg.SearchBackend {
		case "exact":
			a.mem = vectorstore.NewSynced(store, exactCfg, 0, log)
			index = a.mem
			backend = func() string { return "exact" }
		case "auto":
			a.mem = vectorstore.NewSynced(store, exactCfg, cfg.MemoryBudget, log)
			index = &vectorstore.Auto{Mem: a.mem, PG: store}
			backend = func() string {
				if a.mem.Active() {
					return "exact"
				}
				return "pgvector"
			}
		}
		if a.mem != nil {
			a.metrics.IndexBytes(a.mem.Bytes)
		}
		a.metrics.Galleries(pool, log)
		a.metrics.PoolConns(pool)
		a.metrics.Queue(a.jobs.Inspector(), a.jobs.Queue(), log)
		index = a.metrics.Index(index, backend)
		log.Info("search backend", "backend", cfg.SearchBackend, "kernel_f32", kernel.NameF32, "kernel_i8", kernel.NameI8)
	}
	a.service = engine.NewService(store, index, a.jobs, cfg.Engine, log)
	if search {
		if a.replay, err = replay.New(cfg.RedisURL); err != nil {
			a.close()
			return nil, err
		}
	}
	if search && cfg.RatePerSecond > 0 {
		if a.limiter, err = ratelimit.New(cfg.RedisURL, cfg.RatePerSecond, cfg.RateBurst); err != nil {
			a.close()
			return nil, err
		}
	}
	return a, nil
}

func (a *app) close() {
	if a.limiter != nil {
		a.limiter.Close()
	}
	if a.replay != nil {
		a.replay.Close()
	}
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

func (a *app) handler(cfg config) http.Handler {
	ready := map[string]httpapi.Check{
		"postgres": a.store.Ping,
		"redis":    func(context.Context) error { return a.jobs.Ping() },
		"migrations": func(ctx context.Context) error {
			pending, err := vectorstore.MigrationsPending(ctx, a.pool)
			if err == nil && pending {
				err = errors.New("pending: run biomatch migrate")
			}
			return err
		},
		"indexes": func(ctx context.Context) error { return vectorstore.CheckIndexes(ctx, a.pool) },
	}
	if a.mem != nil {
		ready["index"] = func(context.Context) error {
			if !a.mem.Loaded() {
				return errors.New("the in-memory index is loading")
			}
			return nil
		}
	}
	deps := httpapi.Deps{Service: a.service, Keys: keys.NewStore(a.pool, cfg.MasterKey), Log: a.log, Ready: ready, Metrics: a.metrics,
		AdminToken: cfg.AdminToken}
	if a.replay != nil {
		deps.Replay = a.replay
	}
	if a.limiter != nil {
		deps.Limiter = a.limiter
	}
	if cfg.AdminToken != "" {
		if opt, err := queue.ParseRedisURL(cfg.RedisURL); err == nil {
			deps.Admin = asynqmon.New(asynqmon.Options{RootPath: httpapi.AdminPath, RedisConnOpt: opt})
		}
	}
	return httpapi.NewHandler(httpapi.Config{CORSOrigins: cfg.CORSOrigins, MaxBodyBytes: cfg.MaxBodyBytes, PlainRoutes: cfg.PlainRoutes}, deps)
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

func runServe(ctx context.Context, cfg config, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	withWorker := fs.Bool("with-worker", false, "also run the enroll worker in this process")
	if err := fs.Parse(args); err != nil {
		return err
	}
	log := newLogger(cfg, stderr)
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
	wg.Go(func() {
		log.Info("serving", "addr", ln.Addr().String(), "with_worker", *withWorker)
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			errc <- err
		}
	})
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

	a, err := newApp(ctx, cfg, log, true)
	if err != nil {
		shutdown()
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	defer a.close()
	if a.mem != nil {
		wg.Go(func() { a.mem.Follow(ctx) })
	}
	if *withWorker {
		w, err := a.newWorker(cfg)
		if err != nil {
			shutdown()
			return err
		}
		wg.Go(func() { errc <- w.Run(ctx) })
		wg.Go(func() { a.store.KeepIndexes(ctx, cfg.ReconcileEvery, log) })
	}
	// A new variable, never h: requests in flight may still be reading h.
	serving := a.handler(cfg)
	current.Store(&serving)
	if cfg.MetricsAddr != "" {
		mln, err := net.Listen("tcp", cfg.MetricsAddr)
		if err != nil {
			shutdown()
			return fmt.Errorf("METRICS_ADDR: %w", err)
		}
		msrv = &http.Server{Handler: a.metrics.Handler(), ReadHeaderTimeout: cfg.ReadHeaderTO}
		wg.Go(func() {
			log.Info("serving metrics", "addr", mln.Addr().String())
			if err := msrv.Serve(mln); !errors.Is(err, http.ErrServerClosed) {
				errc <- err
			}
		})
	}

	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	shutdown()
	log.Info("stopped")
	return err
}

func runWorker(ctx context.Context, cfg config, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("worker", flag.ContinueOnError)
	if err := fs.Parse(args); err != nil {
		return err
	}
	log := newLogger(cfg, stderr)
	a, err := newApp(ctx, cfg, log, false)
	if err != nil {
		return err
	}
	defer a.close()
	w, err := a.newWorker(cfg)
	if err != nil {
		return err
	}
	log.Info("worker started", "queue", cfg.Queue, "concurrency", cfg.WorkerConc)
	var wg sync.WaitGroup
	defer wg.Wait()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	wg.Go(func() { a.store.KeepIndexes(ctx, cfg.ReconcileEvery, log) })
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

// Package app wires biomatch, once: configuration, the PostgreSQL pool, the
// process's one Redis client, storage, search, the queue, the service, the
// HTTP handler and the background work. The serve, worker and import
// commands build on it, and so do the tests' stacks, so what is tested is
// what runs.
package app

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/hibiken/asynqmon"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"

	"github.com/biomatch/biomatch/engine"
	"github.com/biomatch/biomatch/httpapi"
	"github.com/biomatch/biomatch/metrics"
	"github.com/biomatch/biomatch/postgres"
	"github.com/biomatch/biomatch/queue"
	"github.com/biomatch/biomatch/ratelimit"
	"github.com/biomatch/biomatch/replay"
	"github.com/biomatch/biomatch/vectorstore"
	"github.com/biomatch/biomatch/vectorstore/kernel"
	"github.com/biomatch/biomatch/webhook"
)

// App is one process's wiring.
type App struct {
	Pool    *pgxpool.Pool
	Redis   redis.UniversalClient
	Search  *vectorstore.PGVector
	Store   *postgres.Store
	Keys    *postgres.Keys
	Mem     *vectorstore.Synced // the in-memory index (identify, exact dedup); nil with SEARCH_BACKEND=pgvector
	Jobs    *queue.Client
	Service *engine.Service
	Metrics *metrics.Metrics
	Log     *slog.Logger

	cfg      Config
	index    engine.Index
	finished *postgres.Finished // nil unless serving

	mu          sync.Mutex
	heapTouched chan struct{}        // closed when TouchHeadroom is done; nil if not called
	cancels     []context.CancelFunc // of the background work
	bg          sync.WaitGroup
	errs        chan error
}

// New connects, waiting for PostgreSQL (and its schema) as long as ctx
// allows, and builds the service. search says whether this process answers
// searches (serve: the in-memory index and its metrics) or only enrolls
// (worker, tools). Close releases it.
func New(ctx context.Context, cfg Config, log *slog.Logger, search bool) (*App, error) {
	rdb, err := queue.OpenRedis(cfg.RedisURL)
	if err != nil {
		return nil, err
	}
	pool, err := postgres.OpenPool(ctx, cfg.DatabaseURL)
	if err != nil {
		rdb.Close()
		return nil, err
	}
	var pg *vectorstore.PGVector
	for wait := 250 * time.Millisecond; ; wait = min(2*wait, 5*time.Second) {
		pg, err = vectorstore.NewPGVector(ctx, pool, vectorstore.PGVectorConfig{HNSWMinTemplates: cfg.HNSWMinTemplates, EfSearch: cfg.HNSWEfSearch})
		if err == nil {
			break
		}
		log.Warn("waiting for PostgreSQL", "err", err)
		select {
		case <-ctx.Done():
			pool.Close()
			rdb.Close()
			return nil, err
		case <-time.After(wait):
		}
	}
	dedup := &vectorstore.Dedup{PG: pg, Log: log}
	a := &App{Pool: pool, Redis: rdb, Search: pg, Store: postgres.NewStore(pool, dedup), Keys: postgres.NewKeys(pool, cfg.MasterKey),
		Jobs: queue.NewClient(rdb, cfg.Queue, cfg.QueueShards), Metrics: metrics.New(), Log: log, cfg: cfg, index: pg, errs: make(chan error, 2)}
	// The in-memory index serves identify (serve) and the enroll decision's
	// exact dedup (serve with the worker, worker, import), each process its own.
	switch cfg.SearchBackend {
	case "exact":
		a.Mem = vectorstore.NewSynced(pg, vectorstore.ExactConfig{Int8: cfg.ExactInt8, Window: cfg.SearchWindow}, 0, log)
	case "auto":
		a.Mem = vectorstore.NewSynced(pg, vectorstore.ExactConfig{Int8: cfg.ExactInt8, Window: cfg.SearchWindow}, cfg.MemoryBudget, log)
	}
	dedup.Mem = a.Mem
	if search {
		if err := a.wireSearch(); err != nil {
			a.Close()
			return nil, err
		}
	}
	deps := engine.Deps{Store: a.Store, Index: a.index, Jobs: a.Jobs, Pairs: vectorstore.BatchPairs, Log: log}
	if a.Mem != nil {
		deps.Follower = a.Mem
	}
	if search { // the API waits for enrolls: woken by the worker's commit
		a.finished = postgres.NewFinished(pool, log)
		deps.Finished = a.finished
	}
	if a.Service, err = engine.NewService(deps, cfg.Engine); err != nil {
		a.Close()
		return nil, err
	}
	if w := cfg.BareThresholdWarning(); w != "" {
		log.Warn(w)
	}
	return a, nil
}

// wireSearch chooses the search backend and registers the serving metrics.
func (a *App) wireSearch() error {
	cfg, log := a.cfg, a.Log
	if !a.Search.HasVector() {
		if cfg.SearchBackend == "pgvector" {
			return errors.New("SEARCH_BACKEND=pgvector, but the vector extension is not installed in this database")
		}
		log.Warn("pgvector is not installed: templates are stored as real[] and search is exact, in memory")
	}
	backend := func() string { return "pgvector" }
	switch cfg.SearchBackend {
	case "exact":
		a.index = a.Mem
		backend = func() string { return "exact" }
	case "auto":
		a.index = &vectorstore.Auto{Mem: a.Mem, PG: a.Search}
		mem := a.Mem
		backend = func() string {
			if mem.Active() {
				return "exact"
			}
			return "pgvector"
		}
	}
	if a.Mem != nil {
		a.Metrics.IndexBytes(a.Mem.Bytes)
	}
	scans := func() (int64, int64) {
		if a.Mem == nil {
			return 0, 0
		}
		return a.Mem.Scans()
	}
	a.Metrics.Batching(scans, func() (int64, int64) { c, e, _ := a.Store.AuditStats(); return c, e },
		func() (int64, int64) { q, l, _ := a.Store.LookupStats(); return q, l },
		func() (int64, int64) { c, r, _ := a.Store.RecordStats(); return c, r })
	a.Metrics.Galleries(a.Pool, log)
	a.Metrics.PoolConns(a.Pool)
	a.Metrics.Queue(a.Jobs.Inspector(), a.Jobs.Queues(), log)
	a.index = a.Metrics.Index(a.index, backend)
	log.Info("search backend", "backend", cfg.SearchBackend, "kernel_f32", kernel.NameF32, "kernel_i8", kernel.NameI8)
	return nil
}

// Handler returns the HTTP API with readiness checks of this process's
// dependencies.
func (a *App) Handler() (http.Handler, error) {
	cfg := a.cfg
	ready := map[string]httpapi.Check{
		"postgres": a.Store.Ping,
		"redis":    func(context.Context) error { return a.Jobs.Ping() },
		"migrations": func(ctx context.Context) error {
			pending, err := postgres.MigrationsPending(ctx, a.Pool)
			if err == nil && pending {
				err = errors.New("pending: run biomatch migrate")
			}
			return err
		},
		"indexes": func(ctx context.Context) error { return postgres.CheckIndexes(ctx, a.Pool) },
	}
	if mem := a.Mem; mem != nil {
		ready["index"] = func(context.Context) error {
			if !mem.Loaded() {
				return errors.New("the in-memory index is loading")
			}
			if !a.heapReady() {
				return errors.New("faulting in the heap's headroom after the index loaded")
			}
			return nil
		}
	}
	deps := httpapi.Deps{Service: a.Service, Keys: a.Keys, Credentials: a.Keys, Webhooks: postgres.NewWebhooks(a.Pool),
		WebhookPolicy: webhook.Policy{AllowPrivate: cfg.WebhookPrivate}, Log: a.Log, Ready: ready, Metrics: a.Metrics,
		Replay: replay.New(a.Redis), AdminToken: cfg.AdminToken}
	var err error
	if cfg.RatePerSecond > 0 {
		if deps.Limiter, err = ratelimit.New(a.Redis, "ratelimit", cfg.RatePerSecond, time.Second, cfg.RateBurst); err != nil {
			return nil, err
		}
	}
	if cfg.AuthFailures > 0 {
		if deps.AuthFailures, err = ratelimit.New(a.Redis, "authfail", cfg.AuthFailures, time.Minute, cfg.AuthFailures); err != nil {
			return nil, err
		}
	}
	if cfg.AdminToken != "" {
		deps.Admin = asynqmon.New(asynqmon.Options{RootPath: httpapi.AdminPath, RedisConnOpt: queue.ConnOpt{Client: a.Redis}})
	}
	return httpapi.NewHandler(httpapi.Config{CORSOrigins: cfg.CORSOrigins, MaxBodyBytes: cfg.MaxBodyBytes,
		PlainRoutes: cfg.PlainRoutes, TrustedProxies: cfg.TrustedProxies, MaxSearches: cfg.MaxSearches, SearchWait: cfg.SearchWait}, deps)
}

// Start runs, in the background until Close, the in-memory index (its
// first load, then following every process's changes; until it is loaded,
// searches wait and dedup scans in SQL) and, when serving, the listener
// that wakes waiting enrolls.
func (a *App) Start() {
	if mem := a.Mem; mem != nil {
		a.background(func(ctx context.Context) { mem.Follow(ctx) })
	}
	if f := a.finished; f != nil {
		a.background(f.Follow)
	}
}

// StartWorker runs the enroll worker and the HNSW index maintenance in the
// background until Close. A worker that cannot run reports on Errors.
func (a *App) StartWorker() {
	w := queue.NewWorker(a.Redis, a.Service, queue.WorkerConfig{Queue: a.cfg.Queue, Shards: a.cfg.QueueShards, Concurrency: a.cfg.WorkerConc,
		ReconcileEvery: a.cfg.ReconcileEvery, StaleAfter: a.cfg.StaleAfter, Outbox: postgres.NewWebhooks(a.Pool),
		WebhookPolicy: webhook.Policy{AllowPrivate: a.cfg.WebhookPrivate}, WebhookRetryBase: a.cfg.WebhookRetryBase}, a.Log)
	a.background(func(ctx context.Context) {
		if err := w.Run(ctx); err != nil {
			a.errs <- err
		}
	})
	a.background(func(ctx context.Context) { a.Search.KeepIndexes(ctx, a.cfg.ReconcileEvery, a.Log, a.NeedsHNSW) })
	a.Log.Info("worker started", "queues", a.Jobs.Queues(), "concurrency", a.cfg.WorkerConc)
}

// NeedsHNSW reports whether identify may search pgvector's HNSW index:
// SEARCH_BACKEND=pgvector, or auto with the in-memory index over its
// budget. The exact index and the enroll decision never use it.
func (a *App) NeedsHNSW() bool {
	return a.cfg.SearchBackend == "pgvector" || (a.cfg.SearchBackend == "auto" && a.Mem != nil && !a.Mem.Active())
}

// WaitLoaded waits until the in-memory index (if any) has loaded, or ctx ends.
func (a *App) WaitLoaded(ctx context.Context) error {
	for a.Mem != nil && !a.Mem.Loaded() {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	return nil
}

// Errors reports background work that stopped on an error.
func (a *App) Errors() <-chan error { return a.errs }

func (a *App) background(run func(ctx context.Context)) {
	ctx, cancel := context.WithCancel(context.Background())
	a.mu.Lock()
	a.cancels = append(a.cancels, cancel)
	a.mu.Unlock()
	a.bg.Go(func() { run(ctx) })
}

// Close stops the background work (the worker lets running tasks finish,
// up to its shutdown timeout), waits for it, and releases the pools.
func (a *App) Close() {
	a.mu.Lock()
	for _, cancel := range a.cancels {
		cancel()
	}
	a.mu.Unlock()
	a.bg.Wait()
	a.Pool.Close()
	a.Redis.Close()
}

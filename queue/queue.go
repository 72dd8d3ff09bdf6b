// Package queue carries accepted enrolls from the API to the worker over
// asynq (Redis). A task's payload is the enroll request's id only, never a
// template: PostgreSQL holds the request, so a lost or repeated task is
// harmless (engine.Service.ProcessEnroll is idempotent and the reconciler
// enqueues stale requests again).
package queue

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/biomatch/biomatch/engine"
	"github.com/biomatch/biomatch/webhook"
)

// TypeEnroll is the task type of an enroll.
const TypeEnroll = "enroll"

// DefaultQueue is the asynq queue enrolls go to.
const DefaultQueue = "enroll"

// webhookDispatchEvery is how often the worker hands new webhook deliveries
// to the queue.
const webhookDispatchEvery = 250 * time.Millisecond

// Task settings of an enroll. A finished task is kept Retention in Redis
// (about 600 bytes), refusing a duplicate of its id meanwhile; a duplicate
// after that finds its request done in PostgreSQL and does nothing. A
// minute keeps Redis small at any rate (500 enrolls/s: 30k tasks, about
// 17 MB; ten minutes held 300k): Redis rewrites its append-only file with
// every key it holds, and a rewrite of ~250 MB slowed every answer of a
// busy two-core machine for ~15 s (bench/README, the soak).
const (
	MaxRetry  = 3
	Timeout   = 30 * time.Second
	Retention = time.Minute
)

// WebhookRetention is Retention for webhook deliveries (far fewer): a day
// of refusing a second dispatch of one delivery.
const WebhookRetention = 24 * time.Hour

type enrollPayload struct {
	RequestID string `json:"request_id"`
}

// NewEnrollTask returns the task of enroll request id; its TaskID is id.
func NewEnrollTask(id, queueName string) *asynq.Task {
	payload, _ := json.Marshal(enrollPayload{RequestID: id}) // cannot fail
	return asynq.NewTask(TypeEnroll, payload, asynq.TaskID(id), asynq.MaxRetry(MaxRetry),
		asynq.Timeout(Timeout), asynq.Retention(Retention), asynq.Queue(queueName))
}

// OpenRedis returns the process's one Redis client for REDIS_URL: asynq,
// the rate limits and the replay cache all share it. It does not wait for
// Redis. Several comma-separated addresses name a Redis Cluster
// (redis://[user:pass@]host1:port,host2:port,…): the client then follows
// the cluster's slots and failovers. A caller's context deadline bounds
// each command, network reads included (go-redis's ContextTimeoutEnabled):
// a Redis that stops answering costs a request its deadline, not seconds.
func OpenRedis(url string) (redis.UniversalClient, error) {
	if rest, ok := strings.CutPrefix(url, "redis://"); ok && strings.Contains(strings.SplitN(rest, "/", 2)[0], ",") {
		hosts := strings.SplitN(rest, "/", 2)[0]
		first, _, _ := strings.Cut(hosts, ",")
		opt, err := redis.ParseURL("redis://" + first)
		if err != nil {
			return nil, fmt.Errorf("REDIS_URL: %w", err)
		}
		addrs := []string{opt.Addr}
		for _, h := range strings.Split(hosts, ",")[1:] {
			if h == "" || strings.Contains(h, "@") {
				return nil, fmt.Errorf("REDIS_URL: cluster form is redis://[user:pass@]host:port,host:port,…")
			}
			addrs = append(addrs, h)
		}
		return redis.NewClusterClient(&redis.ClusterOptions{Addrs: addrs, Username: opt.Username, Password: opt.Password,
			TLSConfig: opt.TLSConfig, ContextTimeoutEnabled: true}), nil
	}
	opt, err := redis.ParseURL(url)
	if err != nil {
		return nil, fmt.Errorf("REDIS_URL: %w", err)
	}
	opt.ContextTimeoutEnabled = true
	return redis.NewClient(opt), nil
}

// Shards names the queues of an enroll queue split n ways: the base name
// alone for n ≤ 1, else base-00, base-01, … Each asynq queue lives in one
// hash slot, so on a Redis Cluster one queue is one master; shards spread
// the queue over the masters.
func Shards(base string, n int) []string {
	if n <= 1 {
		return []string{base}
	}
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s-%02d", base, i)
	}
	return out
}

// shardOf is the shard of enroll request id: stable, so a repeated enqueue
// meets its task id in the same queue. (Batching by gallery happens in
// PostgreSQL, whichever shard a request's task is in.)
func shardOf(queues []string, id string) string {
	h := fnv.New32a()
	h.Write([]byte(id))
	return queues[int(h.Sum32()%uint32(len(queues)))]
}

// ConnOpt hands an open client to libraries that want asynq's connection
// options (the queue dashboard): they use it, never close it.
type ConnOpt struct{ Client redis.UniversalClient }

// MakeRedisClient implements asynq.RedisConnOpt.
func (o ConnOpt) MakeRedisClient() any { return o.Client }

// Client enqueues enrolls on the process's Redis client. It implements engine.Jobs.
type Client struct {
	client    *asynq.Client
	inspector *asynq.Inspector
	queues    []string // the shards of the enroll queue
}

var _ engine.Jobs = (*Client)(nil)

// NewClient returns a Client of queue queueName ("" for DefaultQueue),
// split in shards queues (Shards), on rdb, which the caller closes.
func NewClient(rdb redis.UniversalClient, queueName string, shards int) *Client {
	if queueName == "" {
		queueName = DefaultQueue
	}
	return &Client{client: asynq.NewClientFromRedisClient(rdb), inspector: asynq.NewInspectorFromRedisClient(rdb),
		queues: Shards(queueName, shards)}
}

// EnqueueEnroll implements engine.Jobs. A task of that id already queued,
// running or retained is left as it is; an archived one (its retries used
// while the request stayed pending) is replaced. A failed enqueue is tried
// again twice within about half a second (a Redis Cluster failover moves a
// queue's master); after that the error wraps engine.ErrUnavailable and the
// reconciler enqueues the request later.
func (c *Client) EnqueueEnroll(ctx context.Context, id string) error {
	var err error
	for attempt, pause := range []time.Duration{0, 150 * time.Millisecond, 350 * time.Millisecond} {
		if attempt > 0 {
			select {
			case <-ctx.Done():
				return fmt.Errorf("%w: enqueue: %w", engine.ErrUnavailable, err)
			case <-time.After(pause):
			}
		}
		if err = c.enqueue(ctx, id); err == nil {
			return nil
		}
	}
	return fmt.Errorf("%w: enqueue: %w", engine.ErrUnavailable, err)
}

func (c *Client) enqueue(ctx context.Context, id string) error {
	q := shardOf(c.queues, id)
	_, err := c.client.EnqueueContext(ctx, NewEnrollTask(id, q))
	if errors.Is(err, asynq.ErrTaskIDConflict) {
		info, ierr := c.inspector.GetTaskInfo(q, id)
		if ierr != nil || info.State != asynq.TaskStateArchived {
			return nil
		}
		if err := c.inspector.DeleteTask(q, id); err != nil {
			return fmt.Errorf("replace archived task: %w", err)
		}
		_, err = c.client.EnqueueContext(ctx, NewEnrollTask(id, q))
	}
	return err
}

// Inspector is the client's asynq inspector (queue depth, task states).
func (c *Client) Inspector() *asynq.Inspector { return c.inspector }

// Queues are the queues (shards) the client enqueues to.
func (c *Client) Queues() []string { return c.queues }

// Ping reports whether Redis answers.
func (c *Client) Ping() error {
	if err := c.client.Ping(); err != nil {
		return fmt.Errorf("%w: redis: %w", engine.ErrUnavailable, err)
	}
	return nil
}

// WorkerConfig tunes a Worker.
type WorkerConfig struct {
	Queue          string        // "" for DefaultQueue
	Shards         int           // the enroll queue's shards (Shards); 0 or 1: one queue
	Concurrency    int           // default 4
	ReconcileEvery time.Duration // default 30 s
	StaleAfter     time.Duration // pending longer than this is re-enqueued; default 1 min
	// Outbox, when not nil, is the webhook outbox the worker dispatches
	// and delivers (WebhookPolicy says where deliveries may go).
	Outbox        Outbox
	WebhookPolicy webhook.Policy
	// WebhookRetryBase is the first retry delay of a delivery; default 10 s.
	WebhookRetryBase time.Duration
}

// Worker processes enroll tasks and reconciles stale requests.
type Worker struct {
	srv           *asynq.Server
	mux           *asynq.ServeMux
	client        *asynq.Client // enqueues webhook deliveries
	svc           *engine.Service
	cfg           WorkerConfig
	outbox        Outbox
	webhookClient *http.Client
	log           *slog.Logger
}

// NewWorker returns a Worker on rdb (which the caller closes); Run starts it.
func NewWorker(rdb redis.UniversalClient, svc *engine.Service, cfg WorkerConfig, log *slog.Logger) *Worker {
	if cfg.Queue == "" {
		cfg.Queue = DefaultQueue
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 4
	}
	if cfg.ReconcileEvery <= 0 {
		cfg.ReconcileEvery = 30 * time.Second
	}
	if cfg.StaleAfter <= 0 {
		cfg.StaleAfter = time.Minute
	}
	if cfg.WebhookRetryBase <= 0 {
		cfg.WebhookRetryBase = 10 * time.Second
	}
	w := &Worker{svc: svc, cfg: cfg, log: log, outbox: cfg.Outbox, client: asynq.NewClientFromRedisClient(rdb),
		webhookClient: cfg.WebhookPolicy.Client()}
	w.srv = asynq.NewServerFromRedisClient(rdb, asynq.Config{
		Concurrency: cfg.Concurrency,
		Queues:      queueWeights(Shards(cfg.Queue, cfg.Shards)),
		// A database or Redis outage is not the task's fault: it must not
		// burn the task's retries.
		IsFailure: func(err error) bool { return !errors.Is(err, engine.ErrUnavailable) },
		RetryDelayFunc: func(n int, _ error, t *asynq.Task) time.Duration {
			if t.Type() == TypeWebhook {
				return webhookDelay(cfg.WebhookRetryBase, n)
			}
			return time.Duration(1+n*n) * time.Second
		},
		// An idle worker looks for new tasks every 25 ms (asynq's default,
		// 1 s, would add up to a second to every enroll's reply).
		TaskCheckInterval:        25 * time.Millisecond,
		DelayedTaskCheckInterval: time.Second,
		ShutdownTimeout:          10 * time.Second,
		Logger:                   slogAdapter{log.With("component", "asynq")},
	})
	w.mux = asynq.NewServeMux()
	w.mux.HandleFunc(TypeEnroll, w.handleEnroll)
	if w.outbox != nil {
		w.mux.HandleFunc(TypeWebhook, w.handleWebhook)
	}
	return w
}

// queueWeights serves every shard alike.
func queueWeights(queues []string) map[string]int {
	m := map[string]int{}
	for _, q := range queues {
		m[q] = 1
	}
	return m
}

// Run processes tasks until ctx ends, then shuts down gracefully, letting
// running tasks finish (up to 10 s; an unfinished one is redelivered).
func (w *Worker) Run(ctx context.Context) error {
	if err := w.srv.Start(w.mux); err != nil {
		return fmt.Errorf("start worker: %w", err)
	}
	tick := time.NewTicker(w.cfg.ReconcileEvery)
	defer tick.Stop()
	outbox := time.NewTicker(webhookDispatchEvery)
	defer outbox.Stop()
	for {
		select {
		case <-ctx.Done():
			w.srv.Shutdown()
			return nil // w.client shares the caller's Redis client, which the caller closes
		case <-tick.C:
			w.reconcile(ctx)
		case <-outbox.C:
			if w.outbox != nil {
				w.dispatchWebhooks(ctx)
			}
		}
	}
}

func (w *Worker) reconcile(ctx context.Context) {
	n, err := w.svc.ReconcileEnrolls(ctx, time.Now().Add(-w.cfg.StaleAfter))
	if err != nil {
		w.log.WarnContext(ctx, "reconcile enrolls", "err", err, "requeued", n)
	} else if n > 0 {
		w.log.InfoContext(ctx, "reconcile enrolls", "requeued", n)
	}
}

func (w *Worker) handleEnroll(ctx context.Context, t *asynq.Task) error {
	var p enrollPayload
	if err := json.Unmarshal(t.Payload(), &p); err != nil || p.RequestID == "" {
		return fmt.Errorf("bad enroll payload: %w", asynq.SkipRetry)
	}
	err := w.svc.ProcessEnroll(ctx, p.RequestID)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, engine.ErrNotFound):
		return fmt.Errorf("enroll request %s: %w: %w", p.RequestID, err, asynq.SkipRetry)
	case errors.Is(err, engine.ErrUnavailable):
		return err
	}
	retried, _ := asynq.GetRetryCount(ctx)
	maxRetry, _ := asynq.GetMaxRetry(ctx)
	w.log.WarnContext(ctx, "enroll attempt failed", "enroll_request", p.RequestID, "retried", retried, "err", err)
	if retried >= maxRetry {
		if ferr := w.svc.FailEnroll(ctx, p.RequestID, "enroll could not be completed"); ferr != nil {
			w.log.ErrorContext(ctx, "mark enroll failed", "enroll_request", p.RequestID, "err", ferr)
		}
	}
	return fmt.Errorf("enroll request %s: %w", p.RequestID, err)
}

// slogAdapter is asynq's Logger on slog.
type slogAdapter struct{ l *slog.Logger }

func (a slogAdapter) Debug(args ...any) { a.l.Debug(fmt.Sprint(args...)) }
func (a slogAdapter) Info(args ...any)  { a.l.Info(fmt.Sprint(args...)) }
func (a slogAdapter) Warn(args ...any)  { a.l.Warn(fmt.Sprint(args...)) }
func (a slogAdapter) Error(args ...any) { a.l.Error(fmt.Sprint(args...)) }
func (a slogAdapter) Fatal(args ...any) { a.l.Error(fmt.Sprint(args...)) }

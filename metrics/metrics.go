// Package metrics owns biomatch's Prometheus collectors: request and
// search latency, enroll outcomes, rate-limit rejections, gallery sizes,
// in-memory index bytes and queue depth. It registers them on a registry of
// its own; the serve command exposes it on a listener of its own (METRICS_ADDR).
package metrics

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/hibiken/asynq"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/biomatch/biomatch/engine"
)

// Metrics holds the collectors the code updates directly.
type Metrics struct {
	Registry       *prometheus.Registry
	HTTPDuration   *prometheus.HistogramVec // route, method, status
	SearchDuration *prometheus.HistogramVec // backend
	EnrollOutcomes *prometheus.CounterVec   // outcome: created, existing, rejected, queued, invalid
	RateLimited    prometheus.Counter
}

// Handler serves the metrics in Prometheus' text format. It names tenants
// and their gallery sizes: serve it only where operators reach it
// (METRICS_ADDR, loopback by default), never on the public API port.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{})
}

// New registers the collectors, with Go and process metrics.
func New() *Metrics {
	reg := prometheus.NewRegistry()
	m := &Metrics{
		Registry: reg,
		HTTPDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "biomatch_http_request_duration_seconds", Help: "HTTP request latency by route, method and status.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"route", "method", "status"}),
		SearchDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "biomatch_search_duration_seconds", Help: "Nearest-template search latency by backend.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}, []string{"backend"}),
		EnrollOutcomes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "biomatch_enroll_outcomes_total", Help: "Enroll replies by outcome (created, existing, rejected, queued, invalid).",
		}, []string{"outcome"}),
		RateLimited: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "biomatch_rate_limited_total", Help: "Requests refused by the per-key rate limit.",
		}),
	}
	reg.MustRegister(m.HTTPDuration, m.SearchDuration, m.EnrollOutcomes, m.RateLimited,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	for _, o := range []string{"created", "existing", "rejected", "queued", "invalid"} {
		m.EnrollOutcomes.WithLabelValues(o)
	}
	return m
}

// IndexBytes reports the in-memory index's size at each scrape.
func (m *Metrics) IndexBytes(bytes func() int64) {
	m.Registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "biomatch_index_memory_bytes", Help: "Memory held by the in-memory exact index.",
	}, func() float64 { return float64(bytes()) }))
}

// Batching reports how many passes over the rows the in-memory index's
// searches made and how many queries they answered (queries per scan: the
// mean batch), how many group commits wrote how many audit entries, how
// many queries answered how many person lookups, and how many commits
// recorded how many accepted enrolls.
func (m *Metrics) Batching(scans, audits, lookups, records func() (int64, int64)) {
	for _, c := range []struct {
		name, help string
		value      func() float64
	}{
		{"biomatch_index_scans_total", "Passes over a gallery's rows by the in-memory index's searches.",
			func() float64 { n, _ := scans(); return float64(n) }},
		{"biomatch_index_queries_total", "Searches those passes answered (several per pass under load).",
			func() float64 { _, n := scans(); return float64(n) }},
		{"biomatch_audit_commits_total", "Group commits of identify and verify audit entries.",
			func() float64 { n, _ := audits(); return float64(n) }},
		{"biomatch_audit_entries_total", "Audit entries those commits wrote.",
			func() float64 { _, n := audits(); return float64(n) }},
		{"biomatch_person_lookup_queries_total", "Queries reading the persons identify found (one for all that wait).",
			func() float64 { n, _ := lookups(); return float64(n) }},
		{"biomatch_person_lookups_total", "Identifies those queries answered.",
			func() float64 { _, n := lookups(); return float64(n) }},
		{"biomatch_enroll_record_commits_total", "Group commits of accepted enroll requests.",
			func() float64 { n, _ := records(); return float64(n) }},
		{"biomatch_enroll_records_total", "Accepted enroll requests those commits recorded.",
			func() float64 { _, n := records(); return float64(n) }},
	} {
		m.Registry.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: c.name, Help: c.help}, c.value))
	}
}

// PoolConns reports the PostgreSQL pool's connections by state
// (acquired, idle, total) at each scrape.
func (m *Metrics) PoolConns(pool *pgxpool.Pool) {
	for state, value := range map[string]func(*pgxpool.Stat) int32{
		"acquired": (*pgxpool.Stat).AcquiredConns,
		"idle":     (*pgxpool.Stat).IdleConns,
		"total":    (*pgxpool.Stat).TotalConns,
	} {
		m.Registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "biomatch_db_pool_connections", Help: "PostgreSQL pool connections by state.",
			ConstLabels: prometheus.Labels{"state": state},
		}, func() float64 { return float64(value(pool.Stat())) }))
	}
}

// Galleries reports persons and templates per gallery from PostgreSQL at
// each scrape.
func (m *Metrics) Galleries(pool *pgxpool.Pool, log *slog.Logger) {
	m.Registry.MustRegister(&galleryCollector{pool: pool, log: log,
		persons:   prometheus.NewDesc("biomatch_gallery_persons", "Persons per gallery.", []string{"tenant", "version"}, nil),
		templates: prometheus.NewDesc("biomatch_gallery_templates", "Templates per gallery.", []string{"tenant", "version"}, nil),
	})
}

type galleryCollector struct {
	pool               *pgxpool.Pool
	log                *slog.Logger
	persons, templates *prometheus.Desc
}

func (c *galleryCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.persons; ch <- c.templates }

func (c *galleryCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	rows, err := c.pool.Query(ctx, `SELECT tenant, version, persons, templates FROM galleries`)
	if err != nil {
		c.log.Warn("metrics: gallery sizes", "err", err)
		return
	}
	defer rows.Close()
	for rows.Next() {
		var tenant, version string
		var persons, templates float64
		if rows.Scan(&tenant, &version, &persons, &templates) == nil {
			ch <- prometheus.MustNewConstMetric(c.persons, prometheus.GaugeValue, persons, tenant, version)
			ch <- prometheus.MustNewConstMetric(c.templates, prometheus.GaugeValue, templates, tenant, version)
		}
	}
}

// Queue reports each enroll queue's depth by state, and its processed and
// failed totals, from Redis at each scrape: one collector for all the
// queues (the shards of a sharded enroll queue).
func (m *Metrics) Queue(inspector *asynq.Inspector, queues []string, log *slog.Logger) {
	m.Registry.MustRegister(&queueCollector{inspector: inspector, queues: queues, log: log,
		depth:  prometheus.NewDesc("biomatch_queue_tasks", "Enroll tasks by state.", []string{"queue", "state"}, nil),
		totals: prometheus.NewDesc("biomatch_queue_tasks_total", "Enroll tasks processed and failed (each failed attempt, retries included) today.", []string{"queue", "result"}, nil),
	})
}

type queueCollector struct {
	inspector     *asynq.Inspector
	queues        []string
	log           *slog.Logger
	depth, totals *prometheus.Desc
}

func (c *queueCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.depth; ch <- c.totals }

func (c *queueCollector) Collect(ch chan<- prometheus.Metric) {
	for _, q := range c.queues {
		info, err := c.inspector.GetQueueInfo(q)
		if err != nil {
			// A queue nobody has used yet does not exist in Redis: report zeros.
			info = &asynq.QueueInfo{Queue: q}
		}
		for state, n := range map[string]int{"pending": info.Pending, "active": info.Active, "scheduled": info.Scheduled,
			"retry": info.Retry, "archived": info.Archived, "completed": info.Completed} {
			ch <- prometheus.MustNewConstMetric(c.depth, prometheus.GaugeValue, float64(n), q, state)
		}
		ch <- prometheus.MustNewConstMetric(c.totals, prometheus.GaugeValue, float64(info.Processed), q, "processed")
		ch <- prometheus.MustNewConstMetric(c.totals, prometheus.GaugeValue, float64(info.Failed), q, "failed")
	}
}

// Index times an engine.Index's searches under a backend label; backend is
// asked at each search, so Auto reports where the search really went.
func (m *Metrics) Index(inner engine.Index, backend func() string) engine.Index {
	return timedIndex{inner: inner, backend: backend, hist: m.SearchDuration}
}

type timedIndex struct {
	inner   engine.Index
	backend func() string
	hist    *prometheus.HistogramVec
}

func (t timedIndex) Nearest(ctx context.Context, g engine.Gallery, probe engine.Embedding, k int) ([]engine.Match, error) {
	start := time.Now()
	ms, err := t.inner.Nearest(ctx, g, probe, k)
	t.hist.WithLabelValues(t.backend()).Observe(time.Since(start).Seconds())
	return ms, err
}

package app

import (
	"encoding/hex"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/biomatch/biomatch/engine"
)

// Config is every environment variable the service reads. Each has a
// default that works with `make services`.
type Config struct {
	DatabaseURL      string
	RedisURL         string
	ListenAddr       string
	MetricsAddr      string // "" (METRICS_ADDR=off): no metrics listener
	CORSOrigins      []string
	MaxBodyBytes     int64
	ReadHeaderTO     time.Duration // a client slower than this sending its headers is cut off
	LogLevel         slog.Level
	Engine           engine.Config
	HNSWMinTemplates int
	HNSWEfSearch     int
	WorkerConc       int
	Queue            string
	ReconcileEvery   time.Duration
	StaleAfter       time.Duration
	SearchBackend    string // exact, pgvector, auto
	MemoryBudget     int64  // bytes the in-memory index may use under auto
	ExactInt8        string // auto, on, off
	AdminToken       string // opens the queue dashboard at /admin/queues; empty: no dashboard
	MasterKey        []byte // 32 bytes sealing the keys' v3 secrets; nil: no version 3
	RatePerSecond    int    // per API key, across replicas; 0: no limit
	RateBurst        int
	PlainRoutes      bool // serve /node/plainEnroll and /node/plainPredict
	AuthFailures     int  // failed authentications per client address per minute; 0: no limit
	TrustedProxies   []string
}

// EnvDefaults documents every variable with its default; README's table
// mirrors it (a test checks).
var EnvDefaults = map[string]string{
	"DATABASE_URL":             "postgres://biomatch:biomatch@127.0.0.1:54329/biomatch?sslmode=disable",
	"REDIS_URL":                "redis://127.0.0.1:63799/0",
	"LISTEN_ADDR":              "127.0.0.1:8000",
	"METRICS_ADDR":             "127.0.0.1:9464",
	"CORS_ORIGINS":             "*",
	"MAX_BODY_BYTES":           "16777216",
	"READ_HEADER_TIMEOUT":      "10s",
	"LOG_LEVEL":                "info",
	"ENROLL_WAIT":              "4s",
	"MATCH_THRESHOLD":          "0.5",
	"DEDUP_THRESHOLD":          "0.5",
	"VERSION_THRESHOLDS":       "",
	"MAX_TEMPLATES_PER_PERSON": "5",
	"HNSW_MIN_TEMPLATES":       "10000",
	"HNSW_EF_SEARCH":           "100",
	"WORKER_CONCURRENCY":       "4",
	"QUEUE_NAME":               "enroll",
	"RECONCILE_EVERY":          "30s",
	"RECONCILE_STALE_AFTER":    "1m",
	"SEARCH_BACKEND":           "auto",
	"SEARCH_MEMORY_BUDGET":     "8GiB",
	"EXACT_INT8":               "auto",
	"ADMIN_TOKEN":              "",
	"MASTER_KEY":               "",
	"RATE_LIMIT_PER_SECOND":    "50",
	"RATE_LIMIT_BURST":         "100",
	"PLAIN_ROUTES":             "false",
	"AUTH_FAILURES_PER_MINUTE": "30",
	"TRUSTED_PROXIES":          "",
}

// LoadConfig reads the environment; a bad value is an error naming the variable.
func LoadConfig(getenv func(string) string) (Config, error) {
	env := func(name string) string {
		if v := strings.TrimSpace(getenv(name)); v != "" {
			return v
		}
		return EnvDefaults[name]
	}
	var errs []string
	bad := func(name string, why string) { errs = append(errs, fmt.Sprintf("%s=%q: %s", name, env(name), why)) }
	intVar := func(name string, lo, hi int64) int64 {
		n, err := strconv.ParseInt(env(name), 10, 64)
		if err != nil || n < lo || n > hi {
			bad(name, fmt.Sprintf("want a whole number from %d to %d", lo, hi))
		}
		return n
	}
	floatVar := func(name string) float64 {
		f, err := strconv.ParseFloat(env(name), 64)
		if err != nil || f < -1 || f > 1 {
			bad(name, "want a cosine similarity from -1 to 1")
		}
		return f
	}
	durVar := func(name string) time.Duration {
		d, err := time.ParseDuration(env(name))
		if err != nil || d <= 0 {
			bad(name, "want a positive duration such as 10s")
		}
		return d
	}

	c := Config{
		DatabaseURL:      env("DATABASE_URL"),
		RedisURL:         env("REDIS_URL"),
		ListenAddr:       env("LISTEN_ADDR"),
		MetricsAddr:      env("METRICS_ADDR"),
		CORSOrigins:      parseList(env("CORS_ORIGINS")),
		MaxBodyBytes:     intVar("MAX_BODY_BYTES", 1024, 1<<30),
		ReadHeaderTO:     durVar("READ_HEADER_TIMEOUT"),
		HNSWMinTemplates: int(intVar("HNSW_MIN_TEMPLATES", 1, 1<<40)),
		HNSWEfSearch:     int(intVar("HNSW_EF_SEARCH", 1, 1000)),
		WorkerConc:       int(intVar("WORKER_CONCURRENCY", 1, 1000)),
		Queue:            env("QUEUE_NAME"),
		RatePerSecond:    int(intVar("RATE_LIMIT_PER_SECOND", 0, 1_000_000)),
		RateBurst:        int(intVar("RATE_LIMIT_BURST", 1, 1_000_000)),
		AuthFailures:     int(intVar("AUTH_FAILURES_PER_MINUTE", 0, 1_000_000)),
		TrustedProxies:   parseList(env("TRUSTED_PROXIES")),
		ReconcileEvery:   durVar("RECONCILE_EVERY"),
		StaleAfter:       durVar("RECONCILE_STALE_AFTER"),
	}
	if mk := env("MASTER_KEY"); mk != "" {
		if b, err := hex.DecodeString(mk); err != nil || len(b) != 32 {
			bad("MASTER_KEY", "want 64 hex digits (32 random bytes), e.g. from: openssl rand -hex 32")
		} else {
			c.MasterKey = b
		}
	}
	if plain, err := strconv.ParseBool(env("PLAIN_ROUTES")); err != nil {
		bad("PLAIN_ROUTES", "want true or false")
	} else {
		c.PlainRoutes = plain
	}
	if c.MetricsAddr == "off" {
		c.MetricsAddr = ""
	}
	c.AdminToken = env("ADMIN_TOKEN")
	if c.AdminToken != "" && len(c.AdminToken) < 16 {
		bad("ADMIN_TOKEN", "want at least 16 characters")
	}
	c.SearchBackend = env("SEARCH_BACKEND")
	if c.SearchBackend != "exact" && c.SearchBackend != "pgvector" && c.SearchBackend != "auto" {
		bad("SEARCH_BACKEND", "want exact, pgvector or auto")
	}
	c.ExactInt8 = env("EXACT_INT8")
	if c.ExactInt8 != "auto" && c.ExactInt8 != "on" && c.ExactInt8 != "off" {
		bad("EXACT_INT8", "want auto, on or off")
	}
	if c.MemoryBudget = parseBytes(env("SEARCH_MEMORY_BUDGET")); c.MemoryBudget <= 0 {
		bad("SEARCH_MEMORY_BUDGET", "want a size such as 8GiB, 512MiB or a number of bytes")
	}
	if err := c.LogLevel.UnmarshalText([]byte(env("LOG_LEVEL"))); err != nil {
		bad("LOG_LEVEL", "want debug, info, warn or error")
	}
	c.Engine = engine.Config{
		Default:               &engine.Thresholds{Match: floatVar("MATCH_THRESHOLD"), Dedup: floatVar("DEDUP_THRESHOLD")},
		PerVersion:            map[string]engine.Thresholds{},
		MaxTemplatesPerPerson: int(intVar("MAX_TEMPLATES_PER_PERSON", 1, 100)),
		EnrollWait:            durVar("ENROLL_WAIT"),
	}
	if c.Engine.EnrollWait > MaxEnrollWait {
		bad("ENROLL_WAIT", fmt.Sprintf("at most %s: the PrivateID SDKs give up on a request after 5 s, so a longer wait "+
			"answers nobody (an enroll still running is answered 202 queued, and completes anyway)", MaxEnrollWait))
	}
	// VERSION_THRESHOLDS: "FACE3_1=0.55/0.6,FACE4_2=0.4/0.45" (match/dedup).
	for _, item := range strings.Split(env("VERSION_THRESHOLDS"), ",") {
		if item = strings.TrimSpace(item); item == "" {
			continue
		}
		name, pair, ok1 := strings.Cut(item, "=")
		m, d, ok2 := strings.Cut(pair, "/")
		match, err1 := strconv.ParseFloat(m, 64)
		dedup, err2 := strconv.ParseFloat(d, 64)
		if !ok1 || !ok2 || err1 != nil || err2 != nil || name == "" {
			bad("VERSION_THRESHOLDS", "want VERSION=MATCH/DEDUP[,…], e.g. FACE3_1=0.55/0.6")
			break
		}
		if match < -1 || match > 1 || dedup < -1 || dedup > 1 {
			bad("VERSION_THRESHOLDS", fmt.Sprintf("%s: want cosine similarities from -1 to 1", name))
			break
		}
		c.Engine.PerVersion[name] = engine.Thresholds{Match: match, Dedup: dedup}
	}
	if len(errs) > 0 {
		return c, fmt.Errorf("configuration: %s", strings.Join(errs, "; "))
	}
	return c, nil
}

// MaxEnrollWait is the longest ENROLL_WAIT accepted: the reply must reach
// a CryptoNets SDK before its 5 s timeout.
const MaxEnrollWait = 4500 * time.Millisecond

// parseList splits a comma-separated list (CORS_ORIGINS, TRUSTED_PROXIES).
func parseList(s string) []string {
	var out []string
	for _, o := range strings.Split(s, ",") {
		if o = strings.TrimSpace(o); o != "" {
			out = append(out, o)
		}
	}
	return out
}

// parseBytes reads "123", "512MiB", "8GiB" (or KiB); -1 when malformed.
func parseBytes(s string) int64 {
	mult := int64(1)
	for suffix, m := range map[string]int64{"KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30} {
		if strings.HasSuffix(s, suffix) {
			s, mult = strings.TrimSuffix(s, suffix), m
			break
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 {
		return -1
	}
	return n * mult
}

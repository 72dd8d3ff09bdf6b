package app

import (
	"encoding/hex"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/biomatch/biomatch/calibration"
	"github.com/biomatch/biomatch/engine"
	"github.com/biomatch/biomatch/vectorstore"
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
	// SearchWindow is the longest an identify pass that follows another
	// waits for more probes (vectorstore.ExactConfig.Window); negative: off.
	SearchWindow     time.Duration
	AdminToken       string // opens the queue dashboard at /admin/queues; empty: no dashboard
	MasterKey        []byte // 32 bytes sealing the keys' v3 secrets; nil: no version 3
	RatePerSecond    int    // per API key, across replicas; 0: no limit
	RateBurst        int
	PlainRoutes      bool // serve /node/plainEnroll and /node/plainPredict
	AuthFailures     int  // failed authentications per client address per minute; 0: no limit
	TrustedProxies   []string
	QueueShards      int           // the enroll queue split over this many asynq queues
	WebhookPrivate   bool          // deliveries may go to private addresses and plain http
	WebhookRetryBase time.Duration // first retry delay of a failed delivery
	// MaxSearches bounds the searches (identify, verify) served at once;
	// SearchWait is the longest a search waits for a turn before a 503.
	MaxSearches int
	SearchWait  time.Duration
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
	"MAX_SEARCHES":             "auto",
	"SEARCH_WAIT":              "2s",
	"SECURITY_LEVEL":           "",
	"DEDUP_SECURITY_LEVEL":     "",
	"VERSION_SECURITY_LEVELS":  "",
	"VERSION_MODELS":           "",
	"CALIBRATION_FILE":         "",
	"MATCH_THRESHOLD":          "",
	"DEDUP_THRESHOLD":          "",
	"VERSION_THRESHOLDS":       "",
	"MAX_TEMPLATES_PER_PERSON": "5",
	"HNSW_MIN_TEMPLATES":       "10000",
	"HNSW_EF_SEARCH":           "100",
	"WORKER_CONCURRENCY":       "4",
	"QUEUE_NAME":               "enroll",
	"QUEUE_SHARDS":             "1",
	"RECONCILE_EVERY":          "30s",
	"RECONCILE_STALE_AFTER":    "1m",
	"SEARCH_BACKEND":           "auto",
	"SEARCH_MEMORY_BUDGET":     "8GiB",
	"EXACT_INT8":               "auto",
	"SEARCH_BATCH_WINDOW":      vectorstore.DefaultWindow.String(),
	"ADMIN_TOKEN":              "",
	"MASTER_KEY":               "",
	"RATE_LIMIT_PER_SECOND":    "50",
	"RATE_LIMIT_BURST":         "100",
	"PLAIN_ROUTES":             "false",
	"AUTH_FAILURES_PER_MINUTE": "30",
	"TRUSTED_PROXIES":          "",
	"WEBHOOK_ALLOW_PRIVATE":    "false",
	"WEBHOOK_RETRY_BASE":       "10s",
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
		QueueShards:      int(intVar("QUEUE_SHARDS", 1, 64)),
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
	if private, err := strconv.ParseBool(env("WEBHOOK_ALLOW_PRIVATE")); err != nil {
		bad("WEBHOOK_ALLOW_PRIVATE", "want true or false")
	} else {
		c.WebhookPrivate = private
	}
	c.WebhookRetryBase = durVar("WEBHOOK_RETRY_BASE")
	if plain, err := strconv.ParseBool(env("PLAIN_ROUTES")); err != nil {
		bad("PLAIN_ROUTES", "want true or false")
	} else {
		c.PlainRoutes = plain
	}
	if v := env("MAX_SEARCHES"); v == "auto" {
		c.MaxSearches = 32 * runtime.GOMAXPROCS(0)
	} else {
		c.MaxSearches = int(intVar("MAX_SEARCHES", 0, 1_000_000))
	}
	if c.SearchWait = durVar("SEARCH_WAIT"); c.SearchWait > MaxSearchWait {
		bad("SEARCH_WAIT", fmt.Sprintf("at most %s: a search let in after waiting still needs its own time before the "+
			"PrivateID SDKs give up at 5 s", MaxSearchWait))
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
	if w := env("SEARCH_BATCH_WINDOW"); w == "off" || w == "0" {
		c.SearchWindow = -1
	} else if d, err := time.ParseDuration(w); err != nil || d <= 0 || d > time.Second {
		bad("SEARCH_BATCH_WINDOW", "want a duration up to 1s such as 20ms, or off")
	} else {
		c.SearchWindow = d
	}
	if c.MemoryBudget = parseBytes(env("SEARCH_MEMORY_BUDGET")); c.MemoryBudget <= 0 {
		bad("SEARCH_MEMORY_BUDGET", "want a size such as 8GiB, 512MiB or a number of bytes")
	}
	if err := c.LogLevel.UnmarshalText([]byte(env("LOG_LEVEL"))); err != nil {
		bad("LOG_LEVEL", "want debug, info, warn or error")
	}
	c.Engine = engine.Config{
		PerVersion:            map[string]engine.Thresholds{},
		MaxTemplatesPerPerson: int(intVar("MAX_TEMPLATES_PER_PERSON", 1, 100)),
		EnrollWait:            durVar("ENROLL_WAIT"),
	}
	c.Engine.Levels = loadLevels(env, bad)
	// Bare thresholds replace the levels for every version (one of the two
	// set: both take it).
	if m, d := env("MATCH_THRESHOLD"), env("DEDUP_THRESHOLD"); m != "" || d != "" {
		t := engine.Thresholds{}
		if m != "" {
			t.Match = floatVar("MATCH_THRESHOLD")
		}
		if d != "" {
			t.Dedup = floatVar("DEDUP_THRESHOLD")
		}
		if m == "" {
			t.Match = t.Dedup
		}
		if d == "" {
			t.Dedup = t.Match
		}
		c.Engine.Default = &t
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

// BareThresholdWarning says, when the operator set bare thresholds, that
// their decisions carry no stated error rate ("" otherwise).
func (c Config) BareThresholdWarning() string {
	if c.Engine.Default == nil && len(c.Engine.PerVersion) == 0 {
		return ""
	}
	return "MATCH_THRESHOLD, DEDUP_THRESHOLD or VERSION_THRESHOLDS is set: those decisions use bare cosine thresholds, " +
		"not the calibrated security levels, so no false match rate can be stated for them (replies carry no x-fmr); " +
		"prefer SECURITY_LEVEL (docs/accuracy.md)"
}

// loadLevels reads the calibration (CALIBRATION_FILE, else the embedded
// one) and the level settings, each checked against it.
func loadLevels(env func(string) string, bad func(name, why string)) engine.Levels {
	cal, err := calibration.Embedded()
	if path := env("CALIBRATION_FILE"); path != "" {
		var b []byte
		if b, err = os.ReadFile(path); err == nil {
			cal, err = calibration.Parse(b)
		}
		if err != nil {
			bad("CALIBRATION_FILE", err.Error())
			return engine.Levels{}
		}
	} else if err != nil {
		bad("CALIBRATION_FILE", "the embedded calibration: "+err.Error())
		return engine.Levels{}
	}
	l := engine.Levels{Calibration: cal, PerVersion: map[string]string{}, Models: map[string]string{}}
	level := func(name, value string) bool {
		if _, ok := cal.Level(value); !ok {
			bad(name, fmt.Sprintf("unknown security level %q: want one of %s", value, cal.LevelNames()))
			return false
		}
		return true
	}
	if l.Match = env("SECURITY_LEVEL"); l.Match != "" {
		level("SECURITY_LEVEL", l.Match)
	}
	if l.Dedup = env("DEDUP_SECURITY_LEVEL"); l.Dedup != "" {
		level("DEDUP_SECURITY_LEVEL", l.Dedup)
	}
	for name, into := range map[string]map[string]string{"VERSION_SECURITY_LEVELS": l.PerVersion, "VERSION_MODELS": l.Models} {
		for _, item := range parseList(env(name)) {
			version, value, ok := strings.Cut(item, "=")
			if !ok || version == "" || value == "" {
				bad(name, "want VERSION=VALUE[,…], e.g. FACE3_1=high")
				break
			}
			if name == "VERSION_SECURITY_LEVELS" && !level(name, value) {
				break
			}
			if _, ok := cal.Models[value]; name == "VERSION_MODELS" && !ok {
				bad(name, fmt.Sprintf("%s: the calibration has no model %q (it has %s)", version, value, strings.Join(slices.Sorted(maps.Keys(cal.Models)), ", ")))
				break
			}
			into[version] = value
		}
	}
	return l
}

// MaxEnrollWait is the longest ENROLL_WAIT accepted: the reply must reach
// a CryptoNets SDK before its 5 s timeout.
const MaxEnrollWait = 4500 * time.Millisecond

// MaxSearchWait is the longest SEARCH_WAIT accepted.
const MaxSearchWait = 3 * time.Second

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

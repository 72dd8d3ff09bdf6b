// Package httpapi is biomatch's HTTP surface: the CryptoNets-compatible
// /node API, health and readiness, on gin. It maps requests to
// engine.Service calls and engine errors to statuses; it owns no business
// rule and no storage.
package httpapi

import (
	"context"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/gin-contrib/cors"
	"github.com/gin-gonic/gin"

	"github.com/biomatch/biomatch/engine"
	"github.com/biomatch/biomatch/keys"
	"github.com/biomatch/biomatch/metrics"
)

// Config is what the HTTP layer needs besides its dependencies.
type Config struct {
	CORSOrigins  []string // allowed origins; "*" allows any
	MaxBodyBytes int64    // larger bodies get 413
	// PlainRoutes serves /node/plainEnroll and /node/plainPredict (features
	// in clear, ids ROT13); off, they answer 404 saying so.
	PlainRoutes bool
}

// Check is one readiness probe: nil when the dependency is usable.
type Check func(ctx context.Context) error

// Deps are the dependencies of the handlers.
type Deps struct {
	Service *engine.Service
	Keys    *keys.Store
	Log     *slog.Logger
	Ready   map[string]Check // name → probe, for /ready
	Metrics *metrics.Metrics // nil: nothing observed (served by the caller, not here)
	// Limiter limits requests per API key; nil: no limit.
	Limiter RateLimiter
	// Replay refuses repeated v3 nonces; nil: not checked (tests only).
	Replay ReplayCache
	// Admin serves the queue dashboard under AdminPath; nil or an empty
	// AdminToken: no dashboard.
	Admin      http.Handler
	AdminToken string
}

// ReplayCache remembers v3 nonces across replicas (replay.Cache): Claim
// reports whether key is new.
type ReplayCache interface {
	Claim(ctx context.Context, key string, ttl time.Duration) (bool, error)
}

// RateLimiter takes one request from a key's allowance (ratelimit.Limiter).
type RateLimiter interface {
	Allow(ctx context.Context, key string) (ok bool, retryAfter time.Duration, err error)
}

// NewHandler returns the whole HTTP API.
func NewHandler(cfg Config, d Deps) http.Handler {
	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	r.HandleMethodNotAllowed = true
	r.Use(requestID(), recovery(d.Log), logRequests(d.Log, d.Metrics), corsMiddleware(cfg.CORSOrigins), limitBody(cfg.MaxBodyBytes))
	addRoutes(r, cfg, d)
	return r
}

// addRoutes lists every route.
func addRoutes(r *gin.Engine, cfg Config, d Deps) {
	r.GET("/health", handleHealth())
	r.GET("/ready", handleReady(d.Ready))
	addDocs(r)
	if d.Admin != nil && d.AdminToken != "" {
		admin := r.Group(AdminPath, requireAdmin(d.AdminToken))
		admin.Any("", gin.WrapH(d.Admin))
		admin.Any("/*rest", gin.WrapH(d.Admin))
	}

	node := r.Group("/node", sealReplies(d.Log))
	gate := nodeGate{keys: d.Keys, limiter: d.Limiter, replay: d.Replay, metrics: d.Metrics, log: d.Log}
	node.POST("/api-key/checkApiKeyValid", handleCheckKey(gate))
	node.POST("/addbillingrecord", handleBilling())
	for _, prefix := range []string{"", "/:version"} {
		node.POST(prefix+"/enroll", handleEnroll(d.Service, gate, d.Metrics))
		node.POST(prefix+"/predict", handlePredict(d.Service, gate))
		node.POST(prefix+"/deleteUser", handleDeleteUser(d.Service, gate))
		node.POST(prefix+"/syncUUID", handleSyncUUID(d.Service, gate))
		plainEnroll, plainPredict := plainDisabled, plainDisabled
		if cfg.PlainRoutes {
			plainGate := gate
			plainGate.plain = true
			plainEnroll, plainPredict = handleEnroll(d.Service, plainGate, d.Metrics), handlePredict(d.Service, plainGate)
		}
		node.POST(prefix+"/plainEnroll", plainEnroll)
		node.POST(prefix+"/plainPredict", plainPredict)
	}

	r.NoRoute(func(c *gin.Context) {
		c.JSON(http.StatusNotFound, statusReply{Status: -1, Message: "no such route: " + c.Request.URL.Path})
	})
	r.NoMethod(func(c *gin.Context) {
		c.JSON(http.StatusMethodNotAllowed, statusReply{Status: -1, Message: "method not allowed: use POST"})
	})
}

func plainDisabled(c *gin.Context) {
	c.JSON(http.StatusNotFound, statusReply{-1, "the plain routes are disabled on this server (the operator enables them with PLAIN_ROUTES=true)"})
}

func corsMiddleware(origins []string) gin.HandlerFunc {
	cfg := cors.Config{
		AllowMethods: []string{"POST", "OPTIONS", "GET"},
		AllowHeaders: []string{"content-type", "x-api-key", "x-encryption-version", "x-correlation-id", "requestID",
			"x-key-id", "x-timestamp"},
		ExposeHeaders: []string{headerRequestID, headerCorrelationID, headerEnrollRequest},
		MaxAge:        10 * time.Minute,
	}
	if len(origins) == 0 || (len(origins) == 1 && origins[0] == "*") {
		cfg.AllowAllOrigins = true
	} else {
		cfg.AllowOrigins = origins
	}
	return cors.New(cfg)
}

// ParseOrigins splits CORS_ORIGINS ("*" or comma-separated origins).
func ParseOrigins(s string) []string {
	var out []string
	for _, o := range strings.Split(s, ",") {
		if o = strings.TrimSpace(o); o != "" {
			out = append(out, o)
		}
	}
	return out
}

func handleHealth() gin.HandlerFunc {
	return func(c *gin.Context) { c.JSON(http.StatusOK, gin.H{"status": "ok"}) }
}

func handleReady(checks map[string]Check) gin.HandlerFunc {
	return func(c *gin.Context) {
		ctx, cancel := context.WithTimeout(c.Request.Context(), 2*time.Second)
		defer cancel()
		status, results := http.StatusOK, gin.H{}
		for name, check := range checks {
			if err := check(ctx); err != nil {
				status, results[name] = http.StatusServiceUnavailable, err.Error()
			} else {
				results[name] = "ok"
			}
		}
		word := "ready"
		if status != http.StatusOK {
			word = "not ready"
		}
		c.JSON(status, gin.H{"status": word, "checks": results})
	}
}

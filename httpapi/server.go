// Package httpapi is biomatch's HTTP surface: the CryptoNets-compatible
// /node API, health and readiness, on gin. The gate middleware settles who
// is calling (gate.go), the wire types and decoders are in wire.go, one
// table maps engine errors to replies (errors.go), and the handlers
// (node.go) map requests to engine.Service calls. It owns no business rule
// and no storage.
package httpapi

import (
	"context"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/gin-contrib/cors"
	"github.com/gin-gonic/gin"
	"github.com/hashicorp/golang-lru/v2/expirable"

	"github.com/biomatch/biomatch/engine"
	"github.com/biomatch/biomatch/metrics"
	"github.com/biomatch/biomatch/webhook"
)

// Config is what the HTTP layer needs besides its dependencies.
type Config struct {
	CORSOrigins  []string // allowed origins; "*" allows any
	MaxBodyBytes int64    // larger bodies get 413
	// PlainRoutes serves /node/plainEnroll and /node/plainPredict (features
	// in clear, ids ROT13); off, they answer 404 saying so.
	PlainRoutes bool
	// TrustedProxies are the addresses (or CIDR ranges) of reverse proxies
	// whose X-Forwarded-For names the client; none: the peer address is the
	// client (the failed-authentication limit counts by it).
	TrustedProxies []string
	// KeyCacheTTL is how long a valid key is remembered; 0: KeyCacheTTL.
	KeyCacheTTL time.Duration
	// MaxSearches bounds the searches (identify, verify) served at once;
	// one that finds them all running waits at most SearchWait, then is
	// refused with 503 and Retry-After. 0: no bound.
	MaxSearches int
	SearchWait  time.Duration
}

// Check is one readiness probe: nil when the dependency is usable.
type Check func(ctx context.Context) error

// Deps are the dependencies of the handlers.
type Deps struct {
	Service *engine.Service
	Keys    KeyLookup
	// Credentials mints session keys and access tokens; nil: no /v1 routes.
	Credentials Credentials
	// Webhooks registers webhook endpoints and lists their deliveries;
	// WebhookPolicy says which destinations are allowed.
	Webhooks      Webhooks
	WebhookPolicy webhook.Policy
	Log           *slog.Logger
	Ready         map[string]Check // name → probe, for /ready
	Metrics       *metrics.Metrics // nil: nothing observed (the metrics are served elsewhere: METRICS_ADDR)
	// Limiter limits requests per API key; nil: no limit.
	Limiter RateLimiter
	// AuthFailures limits failed authentications per client address; nil: no limit.
	AuthFailures RateLimiter
	// Replay refuses repeated v3 nonces; nil: not checked (tests only).
	Replay ReplayCache
	// Admin serves the queue dashboard under AdminPath; nil or an empty
	// AdminToken: no dashboard.
	Admin      http.Handler
	AdminToken string
}

// NewHandler returns the whole HTTP API. It fails only on a malformed
// TrustedProxies entry.
func NewHandler(cfg Config, d Deps) (http.Handler, error) {
	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	if err := r.SetTrustedProxies(cfg.TrustedProxies); err != nil {
		return nil, err
	}
	r.HandleMethodNotAllowed = true
	r.Use(requestID(), recovery(d.Log), logRequests(d.Log, d.Metrics), corsMiddleware(cfg.CORSOrigins), limitBody(cfg.MaxBodyBytes))
	addRoutes(r, cfg, d)
	return r, nil
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

	ttl := cfg.KeyCacheTTL
	if ttl <= 0 {
		ttl = KeyCacheTTL
	}
	g := gate{keys: newKeyCache(d.Keys, ttl), limiter: d.Limiter, failures: d.AuthFailures, replay: d.Replay,
		clean: expirable.NewLRU[string, struct{}](cleanAddresses, nil, CleanAddressTTL), metrics: d.Metrics, log: d.Log}
	plainGate := g
	plainGate.plain = true
	svc := d.Service

	r.POST("/node/addbillingrecord", handleBilling())
	searches := newSearchTurns(cfg.MaxSearches, cfg.SearchWait)
	node := r.Group("/node", sealReplies(d.Log), g.handler())
	// Searches take their turn before the gate decodes and opens the body:
	// a refusal costs next to nothing.
	nodeSearch := r.Group("/node", sealReplies(d.Log), searches.node(), g.handler())
	node.POST("/api-key/checkApiKeyValid", handleCheckKey())
	for _, prefix := range []string{"", "/:version"} {
		node.POST(prefix+"/enroll", handleEnroll(svc, d.Metrics))
		nodeSearch.POST(prefix+"/predict", handlePredict(svc))
		node.POST(prefix+"/deleteUser", handleDeleteUser(svc))
		node.POST(prefix+"/syncUUID", handleSyncUUID(svc))
		if cfg.PlainRoutes {
			r.POST("/node"+prefix+"/plainEnroll", plainGate.handler(), handleEnroll(svc, d.Metrics))
			r.POST("/node"+prefix+"/plainPredict", searches.node(), plainGate.handler(), handlePredict(svc))
		} else {
			r.POST("/node"+prefix+"/plainEnroll", plainDisabled)
			r.POST("/node"+prefix+"/plainPredict", plainDisabled)
		}
	}

	if d.Credentials != nil {
		addV1(r, g, svc, d.Credentials, searches)
		if d.Webhooks != nil {
			addWebhooks(r.Group("/v1/webhooks", g.v1Auth()), d.Webhooks, d.WebhookPolicy)
		}
	}

	r.NoRoute(func(c *gin.Context) {
		if strings.HasPrefix(c.Request.URL.Path, "/v1/") {
			writeProblem(c, http.StatusNotFound, "not-found", "no such route: "+c.Request.URL.Path)
			return
		}
		c.JSON(http.StatusNotFound, statusReply{Status: -1, Message: "no such route: " + c.Request.URL.Path})
	})
	r.NoMethod(func(c *gin.Context) {
		if strings.HasPrefix(c.Request.URL.Path, "/v1/") {
			writeProblem(c, http.StatusMethodNotAllowed, "method-not-allowed", "method not allowed on "+c.Request.URL.Path)
			return
		}
		c.JSON(http.StatusMethodNotAllowed, statusReply{Status: -1, Message: "method not allowed: use POST"})
	})
}

func corsMiddleware(origins []string) gin.HandlerFunc {
	cfg := cors.Config{
		AllowMethods: []string{"POST", "OPTIONS", "GET", "DELETE"},
		AllowHeaders: []string{"content-type", "x-api-key", "x-encryption-version", "x-correlation-id", "requestID",
			"x-key-id", "x-timestamp", headerSecurityLevel, "authorization"},
		ExposeHeaders: []string{headerRequestID, headerCorrelationID, headerEnrollRequest, headerSecurityLevel, headerThreshold, headerFMR, headerFPIR,
			headerGalleryTemplates, headerClamped},
		MaxAge: 10 * time.Minute,
	}
	if len(origins) == 0 || (len(origins) == 1 && origins[0] == "*") {
		cfg.AllowAllOrigins = true
	} else {
		cfg.AllowOrigins = origins
	}
	return cors.New(cfg)
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

package httpapi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/hashicorp/golang-lru/v2/expirable"

	"github.com/biomatch/biomatch/crypto"
	"github.com/biomatch/biomatch/engine"
	"github.com/biomatch/biomatch/httpapi/body"
	"github.com/biomatch/biomatch/metrics"
)

// DefaultVersion is the gallery version of routes without a {version}
// segment; DefaultPlainVersion that of the plain routes (COMPAT.md).
const (
	DefaultVersion      = "FACE3_1"
	DefaultPlainVersion = "FACE3_3"
)

// Freshness is how far a v3 request's x-timestamp may be from the server's
// clock; its nonce is remembered a little longer.
const Freshness = 120 * time.Second

// nodeCall is an authenticated, parsed /node request: what the gate leaves
// in the context for the handler (callFrom).
type nodeCall struct {
	req      body.Node
	key      engine.Key
	apiKey   string // v1/v2: the clear key from the body
	enc      crypto.Version
	gallery  engine.Gallery
	features []byte // v3: the features JSON, already opened
	plain    bool   // a plain route: features in clear, ids ROT13
}

const ctxCall = "node_call" // *nodeCall

// callFrom returns the call the gate admitted. Handlers behind the gate only.
func callFrom(c *gin.Context) *nodeCall { return c.MustGet(ctxCall).(*nodeCall) }

var versionPattern = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,64}$`)

// gate settles who is calling, once, for every authenticated /node route:
// it reads and decodes the body, refuses a client address with too many
// failed authentications, authenticates the key (v1/v2: api_key in the body
// or x-api-key; v3: the key id and the sealed envelope, its nonce claimed
// once), applies the key's encryption policy and rate limit, and reads the
// gallery version. It leaves a *nodeCall for callFrom, or answers and aborts.
type gate struct {
	keys     *keyCache
	limiter  RateLimiter                      // per key; nil: none
	failures RateLimiter                      // failed authentications per client address; nil: none
	clean    *expirable.LRU[string, struct{}] // addresses failures found unblocked, for CleanAddressTTL
	replay   ReplayCache                      // nil: nonces not checked (tests only)
	metrics  *metrics.Metrics
	log      *slog.Logger
	plain    bool // the plain routes: features in clear, no x-encryption-version
}

func (g gate) handler() gin.HandlerFunc {
	return func(c *gin.Context) {
		call, ok := g.admit(c)
		if !ok {
			c.Abort()
			return
		}
		c.Set(ctxCall, call)
		c.Next()
	}
}

func (g gate) admit(c *gin.Context) (*nodeCall, bool) {
	call := &nodeCall{plain: g.plain}
	raw, err := readBody(c)
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			c.JSON(http.StatusRequestEntityTooLarge, statusReply{-2, fmt.Sprintf("request body too large: the limit is %d bytes", tooBig.Limit)})
		} else {
			c.JSON(http.StatusBadRequest, statusReply{-2, "could not read the request body"})
		}
		return nil, false
	}
	if err := body.DecodeNode(raw, &call.req); err != nil {
		c.JSON(http.StatusBadRequest, statusReply{-2, "malformed JSON body: " + err.Error()})
		return nil, false
	}
	if call.plain {
		call.enc = crypto.V1 // for the key policy: as weak as version 1
	} else if call.enc, err = crypto.ParseVersion(c.GetHeader("x-encryption-version")); err != nil {
		c.JSON(http.StatusBadRequest, statusReply{-2, "x-encryption-version: " + err.Error()})
		return nil, false
	}
	if !g.addressAllowed(c) {
		return nil, false
	}
	if call.enc == crypto.V3 {
		if !g.openSealed(c, call) {
			return nil, false
		}
	} else if !g.authenticateBodyKey(c, call) {
		return nil, false
	}
	if call.plain && call.key.MinEncryption > 1 {
		c.JSON(http.StatusBadRequest, statusReply{-2, fmt.Sprintf("this key accepts only x-encryption-version %d or higher: the plain routes are refused", call.key.MinEncryption)})
		return nil, false
	}
	if int(call.enc) < call.key.MinEncryption {
		c.JSON(http.StatusBadRequest, statusReply{-2, fmt.Sprintf("this key accepts only x-encryption-version %d or higher", call.key.MinEncryption)})
		return nil, false
	}
	c.Set(ctxKeyPrefix, call.key.Prefix)
	c.Set(ctxTenant, call.key.CustomerID)
	if call.key.TokenExpires != nil { // OAuth2 access tokens are for /v1
		g.refuse(c)
		return nil, false
	}
	if call.key.Session != nil && !g.admitSession(c, call) {
		return nil, false
	}
	if !g.keyAllowed(c, call.key) {
		return nil, false
	}
	version := c.Param("version")
	if version == "" && call.plain {
		version = DefaultPlainVersion
	} else if version == "" {
		version = DefaultVersion
	}
	if !versionPattern.MatchString(version) {
		c.JSON(http.StatusBadRequest, statusReply{-2, "version must be 1 to 64 letters, digits, '_', '.' or '-'"})
		return nil, false
	}
	call.gallery = engine.Gallery{Tenant: call.key.CustomerID, Version: version}
	return call, true
}

// admitSession holds a session key to its scope: the route's operation
// must be one it allows (the key check is always allowed and uses
// nothing), a session bound to one person acts only for that person, and
// each request takes one of its uses. Out of scope, expired or used up:
// the generic 403. On failure it has answered.
func (g gate) admitSession(c *gin.Context, call *nodeCall) bool {
	sess := call.key.Session
	op := sessionOperation(c.FullPath())
	if op == "check" {
		return true
	}
	if !sess.Allows(op) {
		g.refuse(c)
		return false
	}
	if u := sess.UserIdentifier; u != "" {
		switch call.req.UserIdentifier {
		case "":
			call.req.UserIdentifier = u
		case u:
		default:
			g.refuse(c)
			return false
		}
	}
	if err := g.keys.keys.UseSession(c.Request.Context(), sess.ID); err != nil {
		g.lookupFailed(c, err)
		return false
	}
	return true
}

// sessionOperation names what a /node route does, in session terms.
func sessionOperation(route string) string {
	switch route[strings.LastIndex(route, "/")+1:] {
	case "checkApiKeyValid":
		return "check"
	case "enroll", "plainEnroll":
		return "enroll"
	case "predict", "plainPredict", "syncUUID":
		return "predict"
	}
	return "delete"
}

// overRate takes one request from the key's rate limit and reports how
// long to wait when the key is over it. A Redis outage fails open: it must
// not take identification down.
func (g gate) overRate(c *gin.Context, k engine.Key) (time.Duration, bool) {
	if g.limiter == nil {
		return 0, false
	}
	ok, wait, err := g.limiter.Allow(c.Request.Context(), "key:"+k.ID)
	if err != nil {
		g.log.WarnContext(c.Request.Context(), "rate limiter unavailable", "err", err)
		return 0, false
	}
	if !ok && g.metrics != nil {
		g.metrics.RateLimited.Inc()
	}
	return wait, !ok
}

// CleanAddressTTL is how long an address the failed-authentication limiter
// found unblocked is not asked about again: a busy client costs one Redis
// call a second instead of one per request. A failure counted by this
// process forgets the address at once; a block counted by another replica
// holds here within CleanAddressTTL.
const CleanAddressTTL = time.Second

// cleanAddresses bounds how many unblocked addresses one process remembers.
const cleanAddresses = 10_000

// addressBlocked reports whether the client address failed authentication
// too often, and for how long: a flood of guessed keys never reaches
// PostgreSQL. Fails open on a Redis outage.
func (g gate) addressBlocked(c *gin.Context) (time.Duration, bool) {
	if g.failures == nil {
		return 0, false
	}
	addr := c.ClientIP()
	if _, ok := g.clean.Get(addr); ok {
		return 0, false
	}
	ok, wait, err := g.failures.Peek(c.Request.Context(), "authfail:"+addr)
	if err != nil {
		g.log.WarnContext(c.Request.Context(), "failed-authentication limiter unavailable", "err", err)
		return 0, false
	}
	if ok {
		g.clean.Add(addr, struct{}{})
	}
	return wait, !ok
}

// countFailure counts a failed authentication against the client address.
func (g gate) countFailure(c *gin.Context) {
	if g.failures == nil {
		return
	}
	addr := c.ClientIP()
	g.clean.Remove(addr)
	if _, _, err := g.failures.Allow(c.Request.Context(), "authfail:"+addr); err != nil {
		g.log.WarnContext(c.Request.Context(), "failed-authentication limiter unavailable", "err", err)
	}
}

// keyAllowed is overRate answered in CryptoNets' terms.
func (g gate) keyAllowed(c *gin.Context, k engine.Key) bool {
	if wait, over := g.overRate(c, k); over {
		tooMany(c, wait, "rate limit exceeded for this key")
		return false
	}
	return true
}

// addressAllowed is addressBlocked answered in CryptoNets' terms.
func (g gate) addressAllowed(c *gin.Context) bool {
	if wait, blocked := g.addressBlocked(c); blocked {
		tooMany(c, wait, "too many failed authentications from this address")
		return false
	}
	return true
}

// refuse answers the generic 403 of an unknown or inactive key and counts
// the failure against the client's address.
func (g gate) refuse(c *gin.Context) {
	g.countFailure(c)
	c.JSON(http.StatusForbidden, statusReply{-1, "Failed to check api key"})
}

// lookupFailed answers a failed key or session lookup: an unknown one is
// the generic refusal (counted against the address), anything else the
// error's own reply (a 503 when the database cannot be reached).
func (g gate) lookupFailed(c *gin.Context, err error) {
	if errors.Is(err, engine.ErrNotFound) {
		g.refuse(c)
		return
	}
	nodeError(c, err)
}

// retryAfter sets Retry-After to wait in whole seconds (at least 1) and
// returns them.
func retryAfter(c *gin.Context, wait time.Duration) int {
	secs := max(int(math.Ceil(wait.Seconds())), 1)
	c.Header("Retry-After", strconv.Itoa(secs))
	return secs
}

func tooMany(c *gin.Context, wait time.Duration, why string) {
	secs := retryAfter(c, wait)
	c.JSON(http.StatusTooManyRequests, statusReply{-1, fmt.Sprintf("%s: retry after %d s", why, secs)})
}

// authenticateBodyKey checks a v1/v2 request's api_key (body, else the
// x-api-key header). On failure it has answered.
func (g gate) authenticateBodyKey(c *gin.Context, call *nodeCall) bool {
	call.apiKey = call.req.APIKey
	if call.apiKey == "" {
		call.apiKey = c.GetHeader("x-api-key") // only when the body has none (COMPAT.md)
	}
	if call.apiKey == "" {
		c.JSON(http.StatusBadRequest, statusReply{-1, "Missing api key"})
		return false
	}
	var err error
	if call.key, err = g.keys.bySecret(c.Request.Context(), call.apiKey); err != nil {
		g.lookupFailed(c, err)
		return false
	}
	return true
}

// openSealed authenticates a v3 request: key id, fresh timestamp, an
// envelope that opens for this method and path, a nonce never seen. It
// installs the reply sealer. On failure it has answered.
func (g gate) openSealed(c *gin.Context, call *nodeCall) bool {
	ctx := c.Request.Context()
	keyID, tsText := c.GetHeader("x-key-id"), c.GetHeader("x-timestamp")
	ts, err := strconv.ParseInt(tsText, 10, 64)
	if keyID == "" || err != nil {
		c.JSON(http.StatusBadRequest, statusReply{-2, "x-encryption-version 3 needs the x-key-id and x-timestamp (unix seconds) headers"})
		return false
	}
	if skew := time.Since(time.Unix(ts, 0)); skew > Freshness || skew < -Freshness {
		c.JSON(http.StatusBadRequest, statusReply{-2, fmt.Sprintf("x-timestamp is %s from the server's clock; at most %s is accepted", skew.Round(time.Second), Freshness)})
		return false
	}
	key, secret, err := g.keys.byID(ctx, keyID)
	if err != nil {
		g.lookupFailed(c, err)
		return false
	}
	if call.req.Sealed == "" {
		c.JSON(http.StatusBadRequest, statusReply{-2, `a version 3 body is {"sealed": "<base64url envelope>"}`})
		return false
	}
	plain, nonce, err := crypto.OpenV3Request(secret, c.Request.Method, c.Request.URL.Path, ts, call.req.Sealed)
	if err != nil {
		c.JSON(http.StatusBadRequest, statusReply{-2, err.Error()})
		return false
	}
	if g.replay != nil {
		fresh, err := g.replay.Claim(ctx, keyID+":"+nonce, 2*Freshness+time.Minute)
		if err != nil {
			nodeError(c, fmt.Errorf("%w: replay cache: %w", engine.ErrUnavailable, err)) // fail closed
			return false
		}
		if !fresh {
			c.JSON(http.StatusConflict, statusReply{-2, "this request's nonce was already used: a replay is refused"})
			return false
		}
	}
	var in body.V3
	if err := body.DecodeNode(plain, &in); err != nil {
		c.JSON(http.StatusBadRequest, statusReply{-2, "malformed sealed JSON: " + err.Error()})
		return false
	}
	call.key, call.features = key, in.Features
	call.req = body.Node{UserIdentifier: in.UserIdentifier, K: in.K, PUID: in.PUID, PUIDList: in.PUIDList}
	c.Set(ctxSealer, func(status int, reply []byte) (string, error) {
		return crypto.SealV3Response(secret, nonce, status, reply)
	})
	return true
}

// ReplayCache remembers v3 nonces across replicas (replay.Cache): Claim
// reports whether key is new.
type ReplayCache interface {
	Claim(ctx context.Context, key string, ttl time.Duration) (bool, error)
}

// RateLimiter is an allowance per key, shared across replicas
// (ratelimit.Limiter). Allow takes one request; Peek only looks. Both report
// how long to wait when none is left.
type RateLimiter interface {
	Allow(ctx context.Context, key string) (ok bool, retryAfter time.Duration, err error)
	Peek(ctx context.Context, key string) (ok bool, retryAfter time.Duration, err error)
}

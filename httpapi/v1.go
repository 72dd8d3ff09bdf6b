package httpapi

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/biomatch/biomatch/engine"
	"github.com/biomatch/biomatch/httpapi/body"
)

// The native API, /v1: JSON in and out, errors as RFC 9457 problems, the
// caller authenticated by its tenant's API key as a bearer token. What the
// CryptoNets routes cannot say lives here: session keys for browsers,
// enrollment status, person lookup and listing, 1:1 verify against a named
// person, gallery sizes.

// Credentials mints what /v1 hands out (postgres.Keys).
type Credentials interface {
	// CreateSession mints a short-lived session key: the clear key, shown
	// once, and its scope. Invalid options are ErrInvalid.
	CreateSession(ctx context.Context, parent engine.Key, o engine.SessionOptions) (string, engine.Session, error)
	// IssueToken authenticates an OAuth2 client (id and secret) and returns
	// an access token and its expiry; a wrong pair is ErrNotFound.
	IssueToken(ctx context.Context, clientID, clientSecret string) (string, time.Time, error)
}

// Session key defaults.
const (
	DefaultSessionUses = 10
	DefaultSessionTTL  = 10 * time.Minute
)

const ctxV1Key = "v1_key" // engine.Key

func v1KeyFrom(c *gin.Context) engine.Key { return c.MustGet(ctxV1Key).(engine.Key) }

// v1Auth authenticates a /v1 caller: `Authorization: Bearer <API key or
// OAuth2 access token>` (or x-api-key). Session keys are for the /node routes a browser calls and
// are refused here. A failed attempt counts against the client address.
func (g gate) v1Auth() gin.HandlerFunc {
	return func(c *gin.Context) {
		secret, ok := strings.CutPrefix(c.GetHeader("Authorization"), "Bearer ")
		if !ok {
			secret = c.GetHeader("x-api-key")
		}
		if strings.TrimSpace(secret) == "" {
			c.Header("WWW-Authenticate", `Bearer realm="biomatch"`)
			writeProblem(c, http.StatusUnauthorized, "unauthenticated", "send your API key as Authorization: Bearer <key>")
			return
		}
		if wait, blocked := g.addressBlocked(c); blocked {
			retryAfter(c, wait)
			writeProblem(c, http.StatusTooManyRequests, "rate-limited", "too many failed authentications from this address")
			return
		}
		key, err := g.keys.bySecret(c.Request.Context(), strings.TrimSpace(secret))
		switch {
		case errors.Is(err, engine.ErrNotFound):
			g.countFailure(c)
			c.Header("WWW-Authenticate", `Bearer realm="biomatch", error="invalid_token"`)
			writeProblem(c, http.StatusUnauthorized, "unauthenticated", "unknown, revoked or expired key")
			return
		case err != nil:
			v1Error(c, err)
			return
		case key.Session != nil:
			writeProblem(c, http.StatusForbidden, "forbidden", "a session key works only on the /node routes a browser SDK calls; /v1 takes the tenant's API key")
			return
		case key.TokenExpires != nil && time.Now().After(*key.TokenExpires):
			c.Header("WWW-Authenticate", `Bearer realm="biomatch", error="invalid_token"`)
			writeProblem(c, http.StatusUnauthorized, "unauthenticated", "the access token expired: request a new one")
			return
		}
		c.Set(ctxKeyPrefix, key.Prefix)
		c.Set(ctxTenant, key.CustomerID)
		if wait, over := g.overRate(c, key); over {
			retryAfter(c, wait)
			writeProblem(c, http.StatusTooManyRequests, "rate-limited", "rate limit exceeded for this key")
			return
		}
		c.Set(ctxV1Key, key)
		c.Next()
	}
}

// addV1 lists the /v1 routes.
func addV1(r *gin.Engine, g gate, svc *engine.Service, creds Credentials, searches *searchTurns) {
	r.POST("/v1/oauth/token", g.handleToken(creds))
	v1 := r.Group("/v1", g.v1Auth())
	v1.POST("/sessions", handleCreateSession(creds))
	v1.GET("/enrollments/:id", handleEnrollment(svc))
	v1.GET("/galleries", handleGalleries(svc))
	v1.GET("/galleries/:version/persons", handleListPersons(svc))
	v1.POST("/galleries/:version/persons", handleV1Enroll(svc))
	v1.POST("/galleries/:version/identify", searches.v1(), handleV1Identify(svc))
	v1.POST("/galleries/:version/verify", searches.v1(), handleV1Verify(svc))
	v1.GET("/persons", handleFindPersons(svc))
	v1.GET("/persons/:puid", handlePerson(svc))
	v1.DELETE("/persons/:puid", handleV1Delete(svc))
}

// ---- reply types (request bodies: package body) ----

type sessionReply struct {
	ID             string    `json:"id"`
	Key            string    `json:"key"`
	Operations     []string  `json:"operations"`
	UserIdentifier string    `json:"user_identifier,omitempty"`
	MaxUses        int       `json:"max_uses"`
	ExpiresAt      time.Time `json:"expires_at"`
}

type personJSON struct {
	PUID           string    `json:"puid"`
	GUID           string    `json:"guid"`
	UserIdentifier string    `json:"user_identifier,omitempty"`
	Gallery        string    `json:"gallery"`
	EnrollLevel    int       `json:"enroll_level"`
	CreatedAt      time.Time `json:"created_at"`
}

func toPersonJSON(p engine.Person) personJSON {
	return personJSON{PUID: p.PUID, GUID: p.GUID, UserIdentifier: p.ExternalID, Gallery: p.Gallery.Version,
		EnrollLevel: p.EnrollLevel, CreatedAt: p.CreatedAt}
}

type enrollmentJSON struct {
	ID        string      `json:"id"`
	Gallery   string      `json:"gallery"`
	State     string      `json:"state"` // pending, done, failed
	Outcome   string      `json:"outcome,omitempty"`
	Person    *personJSON `json:"person,omitempty"`
	Score     *float64    `json:"score,omitempty"`
	Reason    string      `json:"reason,omitempty"`
	CreatedAt time.Time   `json:"created_at"`
}

func toEnrollmentJSON(r engine.EnrollRequest) enrollmentJSON {
	e := enrollmentJSON{ID: r.ID, Gallery: r.Gallery.Version, State: string(r.State), CreatedAt: r.CreatedAt}
	if r.State != engine.Pending {
		e.Outcome, e.Reason = string(r.Result.Outcome), r.Result.Reason
	}
	if r.State == engine.Done {
		p := toPersonJSON(r.Result.Person)
		score := engine.RoundScore(r.Result.Score)
		e.Person, e.Score = &p, &score
	}
	return e
}

type decisionJSON struct {
	SecurityLevel string   `json:"security_level,omitempty"`
	Threshold     float64  `json:"threshold"`
	Compared      int      `json:"compared"`
	FMR           *float64 `json:"fmr,omitempty"`
	FPIR          *float64 `json:"fpir,omitempty"`
	Clamped       bool     `json:"beyond_calibration,omitempty"`
}

func toDecisionJSON(d engine.Decision) decisionJSON {
	out := decisionJSON{SecurityLevel: d.Level, Threshold: engine.RoundScore(d.Threshold), Compared: d.Compared, Clamped: d.Clamped}
	if d.Scored && d.Level != "" {
		out.FMR, out.FPIR = &d.FMR, &d.FPIR
	}
	return out
}

type candidateJSON struct {
	Person personJSON `json:"person"`
	Score  float64    `json:"score"`
}

// ---- handlers ----

func handleCreateSession(sessions Credentials) gin.HandlerFunc {
	return func(c *gin.Context) {
		var req body.Session
		if !bindJSON(c, &req) {
			return
		}
		o := engine.SessionOptions{Operations: req.Operations, UserIdentifier: req.UserIdentifier,
			MaxUses: DefaultSessionUses, TTL: DefaultSessionTTL}
		if req.MaxUses != nil {
			o.MaxUses = *req.MaxUses
		}
		if req.TTLSeconds != nil {
			o.TTL = time.Duration(*req.TTLSeconds) * time.Second
		}
		secret, sess, err := sessions.CreateSession(c.Request.Context(), v1KeyFrom(c), o)
		if err != nil {
			v1Error(c, err)
			return
		}
		c.JSON(http.StatusCreated, sessionReply{ID: sess.ID, Key: secret, Operations: sess.Operations,
			UserIdentifier: sess.UserIdentifier, MaxUses: sess.UsesLeft, ExpiresAt: sess.ExpiresAt.UTC()})
	}
}

func handleEnrollment(svc *engine.Service) gin.HandlerFunc {
	return func(c *gin.Context) {
		r, err := svc.Enrollment(c.Request.Context(), v1KeyFrom(c).CustomerID, c.Param("id"))
		if err != nil {
			v1Error(c, err)
			return
		}
		c.JSON(http.StatusOK, toEnrollmentJSON(r))
	}
}

func handleGalleries(svc *engine.Service) gin.HandlerFunc {
	type galleryJSON struct {
		Version   string `json:"version"`
		Persons   int    `json:"persons"`
		Templates int    `json:"templates"`
	}
	return func(c *gin.Context) {
		gs, err := svc.Galleries(c.Request.Context(), v1KeyFrom(c).CustomerID)
		if err != nil {
			v1Error(c, err)
			return
		}
		out := make([]galleryJSON, 0, len(gs))
		for _, g := range gs {
			out = append(out, galleryJSON{g.Version, g.Persons, g.Templates})
		}
		c.JSON(http.StatusOK, gin.H{"galleries": out})
	}
}

// v1Gallery reads the :version segment; on failure it has answered.
func v1Gallery(c *gin.Context) (engine.Gallery, bool) {
	version := c.Param("version")
	if !versionPattern.MatchString(version) {
		writeProblem(c, http.StatusBadRequest, "invalid-input", "version must be 1 to 64 letters, digits, '_', '.' or '-'")
		return engine.Gallery{}, false
	}
	return engine.Gallery{Tenant: v1KeyFrom(c).CustomerID, Version: version}, true
}

// Cursors are opaque to clients: the last person id of a page.
func encodeCursor(id int64) string {
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(id, 10)))
}

func decodeCursor(s string) (int64, error) {
	if s == "" {
		return 0, nil
	}
	b, err := base64.RawURLEncoding.DecodeString(s)
	id, err2 := strconv.ParseInt(string(b), 10, 64)
	if err != nil || err2 != nil || id < 0 {
		return 0, fmt.Errorf("%w: cursor: not one this server gave", engine.ErrInvalid)
	}
	return id, nil
}

func handleListPersons(svc *engine.Service) gin.HandlerFunc {
	return func(c *gin.Context) {
		g, ok := v1Gallery(c)
		if !ok {
			return
		}
		limit := 100
		if s := c.Query("limit"); s != "" {
			n, err := strconv.Atoi(s)
			if err != nil {
				v1Error(c, fmt.Errorf("%w: limit: want a whole number from 1 to %d", engine.ErrInvalid, engine.MaxListLimit))
				return
			}
			limit = n
		}
		after, err := decodeCursor(c.Query("cursor"))
		if err != nil {
			v1Error(c, err)
			return
		}
		ps, err := svc.ListPersons(c.Request.Context(), g, after, limit)
		if err != nil {
			v1Error(c, err)
			return
		}
		out := gin.H{"persons": personsJSON(ps)}
		if len(ps) == limit {
			out["next_cursor"] = encodeCursor(ps[len(ps)-1].ID)
		}
		c.JSON(http.StatusOK, out)
	}
}

func personsJSON(ps []engine.Person) []personJSON {
	out := make([]personJSON, 0, len(ps))
	for _, p := range ps {
		out = append(out, toPersonJSON(p))
	}
	return out
}

func handleFindPersons(svc *engine.Service) gin.HandlerFunc {
	return func(c *gin.Context) {
		version := c.Query("gallery")
		if version != "" && !versionPattern.MatchString(version) {
			writeProblem(c, http.StatusBadRequest, "invalid-input", "gallery must be 1 to 64 letters, digits, '_', '.' or '-'")
			return
		}
		ps, err := svc.FindPersons(c.Request.Context(), v1KeyFrom(c).CustomerID, c.Query("external_id"), version)
		if err != nil {
			v1Error(c, err)
			return
		}
		c.JSON(http.StatusOK, gin.H{"persons": personsJSON(ps)})
	}
}

func handlePerson(svc *engine.Service) gin.HandlerFunc {
	return func(c *gin.Context) {
		p, err := svc.PersonByPUID(c.Request.Context(), v1KeyFrom(c).CustomerID, c.Param("puid"))
		if err != nil {
			v1Error(c, err)
			return
		}
		c.JSON(http.StatusOK, toPersonJSON(p))
	}
}

func handleV1Delete(svc *engine.Service) gin.HandlerFunc {
	return func(c *gin.Context) {
		key := v1KeyFrom(c)
		_, err := svc.Delete(c.Request.Context(), key.CustomerID, c.Param("puid"),
			engine.AuditEntry{KeyID: key.ID, RequestID: c.GetString(ctxRequestID), Detail: "v1"})
		if err != nil {
			v1Error(c, err)
			return
		}
		c.Status(http.StatusNoContent)
	}
}

func handleV1Enroll(svc *engine.Service) gin.HandlerFunc {
	return func(c *gin.Context) {
		g, ok := v1Gallery(c)
		if !ok {
			return
		}
		var req body.Enroll
		if !bindJSON(c, &req) {
			return
		}
		vectors := req.Embeddings
		if len(req.Embedding) > 0 {
			vectors = append([][]float64{req.Embedding}, vectors...)
		}
		if len(vectors) == 0 {
			v1Error(c, fmt.Errorf("%w: embedding: required (or embeddings: several frames of one person)", engine.ErrInvalid))
			return
		}
		key := v1KeyFrom(c)
		r, err := svc.SubmitEnroll(c.Request.Context(), engine.EnrollInput{Gallery: g, KeyID: key.ID,
			RequestID: c.GetString(ctxRequestID), ExternalID: req.UserIdentifier, Vectors: vectors, Arrived: c.GetTime(ctxArrived)})
		if err != nil {
			v1Error(c, err)
			return
		}
		c.Header(headerEnrollRequest, r.ID)
		status := http.StatusOK
		if r.State == engine.Pending {
			status = http.StatusAccepted
			c.Header("Location", "/v1/enrollments/"+r.ID)
		}
		c.JSON(status, toEnrollmentJSON(r))
	}
}

// v1Probe reads a probe request; on failure it has answered.
func v1Probe(c *gin.Context, svc *engine.Service) (body.Probe, engine.Embedding, string, bool) {
	var req body.Probe
	if !bindJSON(c, &req) {
		return req, nil, "", false
	}
	if len(req.Embedding) == 0 {
		v1Error(c, fmt.Errorf("%w: embedding: required", engine.ErrInvalid))
		return req, nil, "", false
	}
	probe, err := engine.Probe([][]float64{req.Embedding})
	if err != nil {
		v1Error(c, err)
		return req, nil, "", false
	}
	level, err := matchLevel(svc, v1KeyFrom(c), req.SecurityLevel)
	if err != nil {
		v1Error(c, fmt.Errorf("security_level: %w", err))
		return req, nil, "", false
	}
	return req, probe, level, true
}

func handleV1Identify(svc *engine.Service) gin.HandlerFunc {
	return func(c *gin.Context) {
		g, ok := v1Gallery(c)
		if !ok {
			return
		}
		req, probe, level, ok := v1Probe(c, svc)
		if !ok {
			return
		}
		if req.Person != "" {
			v1Error(c, fmt.Errorf("%w: person: identify searches the whole gallery; use /verify for one person", engine.ErrInvalid))
			return
		}
		k := req.K
		if k == 0 {
			k = 1
		}
		if k < 1 || k > 50 {
			v1Error(c, fmt.Errorf("%w: k: want 1 to 50", engine.ErrInvalid))
			return
		}
		cands, d, err := svc.Identify(c.Request.Context(), g, probe, k, level)
		if err != nil {
			v1Error(c, err)
			return
		}
		reportDecision(c, d)
		puid := ""
		if len(cands) > 0 {
			puid = cands[0].Person.PUID
		}
		key := v1KeyFrom(c)
		if err := svc.Audit(c.Request.Context(), engine.AuditEntry{KeyID: key.ID, Tenant: key.CustomerID, Action: "identify",
			PUID: puid, RequestID: c.GetString(ctxRequestID), Detail: "v1"}); err != nil {
			v1Error(c, err)
			return
		}
		out := make([]candidateJSON, 0, len(cands))
		for _, cand := range cands {
			out = append(out, candidateJSON{toPersonJSON(cand.Person), cand.Score})
		}
		c.JSON(http.StatusOK, gin.H{"candidates": out, "decision": toDecisionJSON(d)})
	}
}

func handleV1Verify(svc *engine.Service) gin.HandlerFunc {
	return func(c *gin.Context) {
		g, ok := v1Gallery(c)
		if !ok {
			return
		}
		req, probe, level, ok := v1Probe(c, svc)
		if !ok {
			return
		}
		if req.Person == "" {
			v1Error(c, fmt.Errorf("%w: person: the puid or user_identifier to verify against is required", engine.ErrInvalid))
			return
		}
		if req.K != 0 {
			v1Error(c, fmt.Errorf("%w: k: verify compares with one person; use /identify for top-K", engine.ErrInvalid))
			return
		}
		cand, matched, d, err := svc.Verify(c.Request.Context(), g, req.Person, probe, level)
		if err != nil {
			v1Error(c, err)
			return
		}
		reportDecision(c, d)
		key := v1KeyFrom(c)
		detail := "v1 no match"
		if matched {
			detail = "v1 match"
		}
		if err := svc.Audit(c.Request.Context(), engine.AuditEntry{KeyID: key.ID, Tenant: key.CustomerID, Action: "verify",
			PUID: cand.Person.PUID, RequestID: c.GetString(ctxRequestID), Detail: detail}); err != nil {
			v1Error(c, err)
			return
		}
		c.JSON(http.StatusOK, gin.H{"match": matched, "score": cand.Score, "person": toPersonJSON(cand.Person), "decision": toDecisionJSON(d)})
	}
}

// handleToken is the OAuth2 token endpoint (RFC 6749 §4.4, client
// credentials): the client authenticates with HTTP Basic or the form's
// client_id and client_secret (§2.3.1), and gets a bearer access token for
// /v1. Replies and errors are RFC 6749's (§5.1, §5.2), not problems.
func (g gate) handleToken(creds Credentials) gin.HandlerFunc {
	type tokenError struct {
		Error       string `json:"error"`
		Description string `json:"error_description"`
	}
	return func(c *gin.Context) {
		c.Header("Cache-Control", "no-store")
		c.Header("Pragma", "no-cache")
		fail := func(status int, code, why string) {
			if status == http.StatusUnauthorized {
				c.Header("WWW-Authenticate", `Basic realm="biomatch"`)
			}
			c.JSON(status, tokenError{code, why})
		}
		if !strings.HasPrefix(c.ContentType(), "application/x-www-form-urlencoded") {
			fail(http.StatusBadRequest, "invalid_request", "send application/x-www-form-urlencoded (RFC 6749 §4.4.2)")
			return
		}
		if err := c.Request.ParseForm(); err != nil {
			fail(http.StatusBadRequest, "invalid_request", "the form does not parse")
			return
		}
		form := c.Request.PostForm
		if gt := form.Get("grant_type"); gt != "client_credentials" {
			fail(http.StatusBadRequest, "unsupported_grant_type", "only grant_type=client_credentials is supported")
			return
		}
		id, secret, basic := c.Request.BasicAuth()
		if fid, fsecret := form.Get("client_id"), form.Get("client_secret"); fid != "" || fsecret != "" {
			if basic {
				fail(http.StatusBadRequest, "invalid_request", "authenticate one way: HTTP Basic or the form, not both")
				return
			}
			id, secret = fid, fsecret
		}
		if id == "" || secret == "" {
			fail(http.StatusUnauthorized, "invalid_client", "client_id and client_secret are required")
			return
		}
		if wait, blocked := g.addressBlocked(c); blocked {
			retryAfter(c, wait)
			fail(http.StatusTooManyRequests, "invalid_client", "too many failed authentications from this address")
			return
		}
		token, expires, err := creds.IssueToken(c.Request.Context(), id, secret)
		switch {
		case errors.Is(err, engine.ErrNotFound):
			g.countFailure(c)
			fail(http.StatusUnauthorized, "invalid_client", "unknown client or wrong secret")
			return
		case err != nil:
			_ = c.Error(err)
			fail(http.StatusServiceUnavailable, "temporarily_unavailable", "retry in a few seconds")
			return
		}
		c.JSON(http.StatusOK, gin.H{"access_token": token, "token_type": "Bearer",
			"expires_in": int(time.Until(expires).Round(time.Second).Seconds())})
	}
}

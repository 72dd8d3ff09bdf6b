package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/biomatch/biomatch/crypto"
	"github.com/biomatch/biomatch/engine"
	"github.com/biomatch/biomatch/keys"
	"github.com/biomatch/biomatch/metrics"
)

// DefaultVersion is the gallery version of routes without a {version}
// segment; DefaultPlainVersion that of the plain routes (COMPAT.md).
const (
	DefaultVersion      = "FACE3_1"
	DefaultPlainVersion = "FACE3_3"
)

// nodeRequest is the body every /node route accepts. Unknown fields are
// ignored, as the reference server does.
type nodeRequest struct {
	APIKey         string          `json:"api_key"`
	Features       featuresField   `json:"features"`
	UserIdentifier string          `json:"user_identifier"`
	MultiUser      json.RawMessage `json:"multi_user"` // accepted, no effect
	K              flexInt         `json:"K"`
	PUID           string          `json:"puid"`
	PUIDList       []string        `json:"puid_list"`
	OriginalImage  json.RawMessage `json:"original_image"` // accepted, not stored
}

// featuresField is `features`: a string (hex ciphertext, or JSON text on
// the plain routes) or, on the plain routes only, the JSON itself.
type featuresField struct {
	text string
	json json.RawMessage
}

func (f *featuresField) UnmarshalJSON(b []byte) error {
	switch {
	case string(b) == "null":
		return nil
	case b[0] == '"':
		return json.Unmarshal(b, &f.text)
	case b[0] == '{' || b[0] == '[':
		f.json = append(json.RawMessage(nil), b...)
		return nil
	}
	return errors.New("features must be a string")
}

func (f featuresField) empty() bool { return f.text == "" && len(f.json) == 0 }

// flexInt accepts a JSON number, a numeric string or null.
type flexInt int

func (f *flexInt) UnmarshalJSON(b []byte) error {
	s := string(bytes.Trim(b, `"`))
	if s == "null" || s == "" {
		return nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 || n > 1000 {
		return fmt.Errorf("K must be a whole number from 0 to 1000")
	}
	*f = flexInt(n)
	return nil
}

// Replies: exactly the fields COMPAT.md allows.
type statusReply struct {
	Status  int    `json:"status"`
	Message string `json:"message"`
}

type checkKeyReply struct {
	Message string `json:"message"`
	Status  int    `json:"status"`
}

type personReply struct {
	Status      int     `json:"status"`
	Message     string  `json:"message"`
	EnrollLevel int     `json:"enroll_level"`
	PUID        string  `json:"puid"`
	GUID        string  `json:"guid"`
	Score       float64 `json:"score"`
}

type predictReply struct {
	personReply
	PIList []piEntry `json:"PI_list,omitempty"`
}

type piEntry struct {
	EnrollLevel int     `json:"enroll_level"`
	PUID        string  `json:"puid"`
	GUID        string  `json:"guid"`
	Score       float64 `json:"score"`
}

type notEnrolledReply struct {
	Status  int     `json:"status"`
	Message string  `json:"message"`
	PUID    string  `json:"puid"`
	GUID    string  `json:"guid"`
	Score   float64 `json:"score"`
}

var notEnrolled = notEnrolledReply{Status: -1, Message: "User not enrolled", PUID: "-1", GUID: "-1", Score: -1}

type syncReply struct {
	Status    int            `json:"status"`
	PUIDState map[string]int `json:"puid_state"`
}

// nodeCall is an authenticated, parsed /node request.
type nodeCall struct {
	req      nodeRequest
	key      keys.Key
	apiKey   string // v1/v2: the clear key from the body
	enc      crypto.Version
	gallery  engine.Gallery
	features []byte // v3: the features JSON, already opened
	bodyRaw  []byte
	plain    bool // a plain route: features in clear, ids ROT13
}

var versionPattern = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,64}$`)

// nodeGate is what every /node call passes: key check and rate limit.
type nodeGate struct {
	keys    *keys.Store
	limiter RateLimiter
	replay  ReplayCache
	metrics *metrics.Metrics
	log     *slog.Logger
	// plain: the plain routes (no payload encryption; the
	// x-encryption-version header is ignored).
	plain bool
}

// Freshness is how far a v3 request's x-timestamp may be from the server's
// clock; its nonce is remembered a little longer.
const Freshness = 120 * time.Second

// readNode parses the body, authenticates the key, applies the key's rate
// limit and reads the encryption version and gallery. On failure it has
// answered and returns false.
func readNode(c *gin.Context, gate nodeGate) (nodeCall, bool) {
	var call nodeCall
	body, err := io.ReadAll(c.Request.Body)
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			c.JSON(http.StatusRequestEntityTooLarge, statusReply{-2, fmt.Sprintf("request body too large: the limit is %d bytes", tooBig.Limit)})
		} else {
			c.JSON(http.StatusBadRequest, statusReply{-2, "could not read the request body"})
		}
		return call, false
	}
	if err := json.Unmarshal(body, &call.req); err != nil {
		c.JSON(http.StatusBadRequest, statusReply{-2, "malformed JSON body: " + jsonProblem(err)})
		return call, false
	}
	if key, dup := duplicateKey(body); dup {
		c.JSON(http.StatusBadRequest, statusReply{-2, fmt.Sprintf("malformed JSON body: the field %q appears twice", key)})
		return call, false
	}
	call.bodyRaw, call.plain = body, gate.plain
	if call.plain {
		call.enc = crypto.V1 // for the key policy: as weak as version 1
	} else if call.enc, err = crypto.ParseVersion(c.GetHeader("x-encryption-version")); err != nil {
		c.JSON(http.StatusBadRequest, statusReply{-2, "x-encryption-version: " + err.Error()})
		return call, false
	}
	if call.enc == crypto.V3 {
		if !openSealed(c, gate, &call) {
			return call, false
		}
	} else if !authenticateBodyKey(c, gate, &call) {
		return call, false
	}
	if call.plain && call.key.MinEncryption > 1 {
		c.JSON(http.StatusBadRequest, statusReply{-2, fmt.Sprintf("this key accepts only x-encryption-version %d or higher: the plain routes are refused", call.key.MinEncryption)})
		return call, false
	}
	if int(call.enc) < call.key.MinEncryption {
		c.JSON(http.StatusBadRequest, statusReply{-2, fmt.Sprintf("this key accepts only x-encryption-version %d or higher", call.key.MinEncryption)})
		return call, false
	}
	c.Set(ctxKeyPrefix, call.key.Prefix)
	c.Set(ctxTenant, call.key.CustomerID)
	if gate.limiter != nil {
		ok, wait, err := gate.limiter.Allow(c.Request.Context(), call.key.ID)
		if err != nil {
			// Fail open: a Redis outage must not take identification down.
			gate.log.WarnContext(c.Request.Context(), "rate limiter unavailable", "err", err)
		} else if !ok {
			if gate.metrics != nil {
				gate.metrics.RateLimited.Inc()
			}
			secs := max(int(math.Ceil(wait.Seconds())), 1)
			c.Header("Retry-After", strconv.Itoa(secs))
			c.JSON(http.StatusTooManyRequests, statusReply{-1, fmt.Sprintf("rate limit exceeded for this key: retry after %d s", secs)})
			return call, false
		}
	}
	version := c.Param("version")
	if version == "" && call.plain {
		version = DefaultPlainVersion
	} else if version == "" {
		version = DefaultVersion
	}
	if !versionPattern.MatchString(version) {
		c.JSON(http.StatusBadRequest, statusReply{-2, "version must be 1 to 64 letters, digits, '_', '.' or '-'"})
		return call, false
	}
	call.gallery = engine.Gallery{Tenant: call.key.CustomerID, Version: version}
	return call, true
}

// authenticateBodyKey checks a v1/v2 request's api_key (body, else the
// x-api-key header). On failure it has answered.
func authenticateBodyKey(c *gin.Context, gate nodeGate, call *nodeCall) bool {
	call.apiKey = call.req.APIKey
	if call.apiKey == "" {
		call.apiKey = c.GetHeader("x-api-key") // only when the body has none (COMPAT.md)
	}
	if call.apiKey == "" {
		c.JSON(http.StatusBadRequest, statusReply{-1, "Missing api key"})
		return false
	}
	var err error
	if call.key, err = gate.keys.Authenticate(c.Request.Context(), call.apiKey); err != nil {
		if errors.Is(err, engine.ErrNotFound) {
			c.JSON(http.StatusForbidden, statusReply{-1, "Failed to check api key"})
		} else {
			nodeError(c, err)
		}
		return false
	}
	return true
}

// sealedBody is a v3 request or reply body.
type sealedBody struct {
	Sealed string `json:"sealed"`
}

// v3Request is the opened body of a v3 request: no key, features as JSON.
type v3Request struct {
	Features       json.RawMessage `json:"features"`
	UserIdentifier string          `json:"user_identifier"`
	K              flexInt         `json:"K"`
	PUID           string          `json:"puid"`
	PUIDList       []string        `json:"puid_list"`
}

// openSealed authenticates a v3 request: key id, fresh timestamp, an
// envelope that opens for this method and path, a nonce never seen. It
// installs the reply sealer. On failure it has answered.
func openSealed(c *gin.Context, gate nodeGate, call *nodeCall) bool {
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
	key, secret, err := gate.keys.V3Secret(ctx, keyID)
	if err != nil {
		if errors.Is(err, engine.ErrNotFound) {
			c.JSON(http.StatusForbidden, statusReply{-1, "Failed to check api key"})
		} else {
			nodeError(c, err)
		}
		return false
	}
	var env sealedBody
	if err := json.Unmarshal(call.bodyRaw, &env); err != nil || env.Sealed == "" {
		c.JSON(http.StatusBadRequest, statusReply{-2, `a version 3 body is {"sealed": "<base64url envelope>"}`})
		return false
	}
	plain, nonce, err := crypto.OpenV3Request(secret, c.Request.Method, c.Request.URL.Path, ts, env.Sealed)
	if err != nil {
		c.JSON(http.StatusBadRequest, statusReply{-2, err.Error()})
		return false
	}
	if gate.replay != nil {
		fresh, err := gate.replay.Claim(ctx, keyID+":"+nonce, 2*Freshness+time.Minute)
		if err != nil {
			nodeError(c, fmt.Errorf("%w: replay cache: %w", engine.ErrUnavailable, err)) // fail closed
			return false
		}
		if !fresh {
			c.JSON(http.StatusConflict, statusReply{-2, "this request's nonce was already used: a replay is refused"})
			return false
		}
	}
	var in v3Request
	if err := json.Unmarshal(plain, &in); err != nil {
		c.JSON(http.StatusBadRequest, statusReply{-2, "malformed sealed JSON: " + jsonProblem(err)})
		return false
	}
	call.key, call.features = key, in.Features
	call.req = nodeRequest{UserIdentifier: in.UserIdentifier, K: in.K, PUID: in.PUID, PUIDList: in.PUIDList}
	c.Set(ctxSealer, func(status int, body []byte) (string, error) {
		return crypto.SealV3Response(secret, nonce, status, body)
	})
	return true
}

// duplicateKey reports a field that appears twice in a JSON object's top
// level (Go keeps the last silently; a body that says two things is refused).
// Field names compare case-insensitively, as encoding/json matches them.
func duplicateKey(data []byte) (string, bool) {
	if !json.Valid(data) {
		return "", false
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return "", false
	}
	seen := map[string]bool{}
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return "", false
		}
		key, _ := t.(string)
		if seen[strings.ToLower(key)] {
			return key, true
		}
		seen[strings.ToLower(key)] = true
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			return "", false
		}
	}
	return "", false
}

// jsonProblem describes a JSON error without echoing the input.
func jsonProblem(err error) string {
	var syntax *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syntax):
		return fmt.Sprintf("syntax error at byte %d", syntax.Offset)
	case errors.As(err, &typ) && typ.Field == "":
		return "the body must be a JSON object"
	case errors.As(err, &typ):
		return fmt.Sprintf("field %q has the wrong type (%s)", typ.Field, typ.Value)
	}
	return err.Error()
}

// featuresPayload is decrypted `features`: the SDKs' single object, or the
// document's list.
type featuresPayload struct {
	Type            string      `json:"type"`
	EmbeddingVector []float64   `json:"embedding_vector"`
	Features        []featureIn `json:"features"`
}

type featureIn struct {
	Type            string    `json:"type"`
	EmbeddingVector []float64 `json:"embedding_vector"`
}

// readVectors decrypts and parses `features` into raw frames. Errors wrap
// engine.ErrInvalid with a message the caller can act on.
func (call nodeCall) readVectors() ([][]float64, error) {
	plain := call.features
	switch {
	case call.plain && len(call.req.Features.json) > 0:
		plain = call.req.Features.json
	case call.plain:
		plain = []byte(call.req.Features.text)
	case call.enc != crypto.V3 && len(call.req.Features.json) > 0:
		return nil, fmt.Errorf("%w: features must be a hex string of ciphertext (clear JSON features are taken only by the plain routes)", engine.ErrInvalid)
	case call.enc != crypto.V3:
		if call.req.Features.text == "" {
			return nil, fmt.Errorf("%w: missing features", engine.ErrInvalid)
		}
		var err error
		if plain, err = crypto.Decrypt(call.enc, call.apiKey, call.req.Features.text); err != nil {
			return nil, fmt.Errorf("%w: features could not be decrypted with this api_key and x-encryption-version %d (%v)",
				engine.ErrInvalid, call.enc, err)
		}
	}
	if len(plain) == 0 {
		return nil, fmt.Errorf("%w: missing features", engine.ErrInvalid)
	}
	return decodeFeatures(plain)
}

// decodeFeatures parses opened features — the SDKs' single object or the
// document's list — into raw frames. Errors wrap engine.ErrInvalid.
func decodeFeatures(plain []byte) ([][]float64, error) {
	var p featuresPayload
	dec := json.NewDecoder(bytes.NewReader(plain))
	if err := dec.Decode(&p); err != nil {
		return nil, fmt.Errorf("%w: decrypted features are not valid JSON (%s)", engine.ErrInvalid, jsonProblem(err))
	}
	if key, dup := duplicateKey(plain); dup {
		return nil, fmt.Errorf("%w: decrypted features have the field %q twice", engine.ErrInvalid, key)
	}
	items := p.Features
	if len(p.EmbeddingVector) > 0 {
		items = append([]featureIn{{Type: p.Type, EmbeddingVector: p.EmbeddingVector}}, items...)
	}
	if len(items) == 0 {
		return nil, fmt.Errorf("%w: features hold no embedding_vector", engine.ErrInvalid)
	}
	var frames [][]float64
	for _, it := range items {
		if it.Type != "" && it.Type != "face" {
			return nil, fmt.Errorf("%w: features type %q is not supported (use \"face\")", engine.ErrInvalid, it.Type)
		}
		frames = append(frames, engine.SplitFrames(it.EmbeddingVector)...)
	}
	return frames, nil
}

// encryptID encrypts a puid/guid for the reply in the request's version
// (v3 replies are sealed whole: ids stay plain inside; the plain routes
// answer ROT13 of the id).
func (call nodeCall) encryptID(id string) string {
	if call.plain {
		return rot13(id)
	}
	if call.enc == crypto.V3 {
		return id
	}
	s, err := crypto.Encrypt(call.enc, call.apiKey, []byte(id), time.Now())
	if err != nil {
		panic(err) // enc was parsed by crypto.ParseVersion: cannot happen
	}
	return s
}

// decryptID reads a puid sent by a client: encrypted in the request's
// version, or plain.
func (call nodeCall) decryptID(s string) (string, bool) {
	if call.plain {
		id := rot13(s)
		return id, engine.IsID(id)
	}
	if call.enc == crypto.V3 {
		return s, engine.IsID(s)
	}
	if plain, err := crypto.Decrypt(call.enc, call.apiKey, s); err == nil && engine.IsID(string(plain)) {
		return string(plain), true
	}
	return s, engine.IsID(s)
}

// rot13 rotates ASCII letters by 13 (its own inverse): the plain routes'
// id obfuscation.
func rot13(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z':
			return 'a' + (r-'a'+13)%26
		case r >= 'A' && r <= 'Z':
			return 'A' + (r-'A'+13)%26
		}
		return r
	}, s)
}

func (call nodeCall) person(status int, message string, p engine.Person, score float64) personReply {
	return personReply{Status: status, Message: message, EnrollLevel: p.EnrollLevel,
		PUID: call.encryptID(p.PUID), GUID: call.encryptID(p.GUID), Score: score}
}

// nodeError answers an error from the engine in CryptoNets' terms. A 500
// says nothing internal and is logged once.
func nodeError(c *gin.Context, err error) {
	switch {
	case errors.Is(err, engine.ErrInvalid):
		c.JSON(http.StatusBadRequest, statusReply{-2, err.Error()})
	case errors.Is(err, engine.ErrRejected):
		c.JSON(http.StatusBadRequest, statusReply{152, err.Error()})
	case errors.Is(err, engine.ErrUnavailable), errors.Is(err, context.DeadlineExceeded):
		c.Header("Retry-After", "5")
		c.JSON(http.StatusServiceUnavailable, statusReply{-1, "service temporarily unavailable (its database or queue cannot be reached): retry in a few seconds"})
	case errors.Is(err, context.Canceled):
		c.JSON(499, statusReply{-1, "request canceled"})
	default:
		_ = c.Error(err)
		c.JSON(http.StatusInternalServerError, statusReply{-1, "internal error (request " + c.GetString(ctxRequestID) + ")"})
	}
}

func (call nodeCall) audit(c *gin.Context, action, puid, detail string) engine.AuditEntry {
	return engine.AuditEntry{KeyID: call.key.ID, Tenant: call.key.CustomerID, Action: action, PUID: puid,
		RequestID: c.GetString(ctxRequestID), Detail: detail}
}

func handleCheckKey(gate nodeGate) gin.HandlerFunc {
	return func(c *gin.Context) {
		if _, ok := readNode(c, gate); ok {
			c.JSON(http.StatusOK, checkKeyReply{Message: "API Key is valid", Status: 0})
		}
	}
}

func handleBilling() gin.HandlerFunc {
	return func(c *gin.Context) { c.JSON(http.StatusOK, statusReply{0, "Success"}) }
}

func handleEnroll(svc *engine.Service, gate nodeGate, m *metrics.Metrics) gin.HandlerFunc {
	count := func(outcome string) {
		if m != nil {
			m.EnrollOutcomes.WithLabelValues(outcome).Inc()
		}
	}
	return func(c *gin.Context) {
		call, ok := readNode(c, gate)
		if !ok {
			return
		}
		vectors, err := call.readVectors()
		if err != nil {
			count("invalid")
			nodeError(c, err)
			return
		}
		req, err := svc.SubmitEnroll(c.Request.Context(), engine.EnrollInput{
			Gallery: call.gallery, KeyID: call.key.ID, RequestID: c.GetString(ctxRequestID),
			ExternalID: call.req.UserIdentifier, Vectors: vectors,
		})
		if err != nil {
			if errors.Is(err, engine.ErrInvalid) {
				count("invalid")
			} else if errors.Is(err, engine.ErrRejected) {
				count("rejected")
			}
			nodeError(c, err)
			return
		}
		c.Header(headerEnrollRequest, req.ID)
		switch {
		case req.State == engine.Pending:
			count("queued")
			c.JSON(http.StatusAccepted, statusReply{0, "queued"})
		case req.Result.Outcome == engine.Rejected:
			count("rejected")
			c.JSON(http.StatusConflict, statusReply{152, "face enrollment failed: " + req.Result.Reason})
		case req.Result.Outcome == engine.Existing:
			count("existing")
			c.JSON(http.StatusOK, call.person(0, "User Already Enrolled", req.Result.Person, req.Result.Score))
		default:
			count("created")
			c.JSON(http.StatusOK, call.person(0, "Ok", req.Result.Person, req.Result.Score))
		}
	}
}

func handlePredict(svc *engine.Service, gate nodeGate) gin.HandlerFunc {
	return func(c *gin.Context) {
		call, ok := readNode(c, gate)
		if !ok {
			return
		}
		vectors, err := call.readVectors()
		if err != nil {
			nodeError(c, err)
			return
		}
		probe, err := engine.Probe(vectors)
		if err != nil {
			nodeError(c, err)
			return
		}
		ctx := c.Request.Context()
		if id := call.req.UserIdentifier; id != "" {
			cand, matched, err := svc.Verify(ctx, call.gallery, id, probe)
			switch {
			case errors.Is(err, engine.ErrNotFound):
				c.JSON(http.StatusOK, notEnrolled)
			case err != nil:
				nodeError(c, err)
			case !matched:
				_ = svc.Audit(ctx, call.audit(c, "verify", cand.Person.PUID, "no match"))
				c.JSON(http.StatusOK, notEnrolledReply{Status: 153, Message: "Face authentication failed", PUID: "-1", GUID: "-1", Score: -1})
			default:
				_ = svc.Audit(ctx, call.audit(c, "verify", cand.Person.PUID, "match"))
				c.JSON(http.StatusOK, call.person(0, "Ok", cand.Person, cand.Score))
			}
			return
		}
		k := int(call.req.K)
		cands, err := svc.Identify(ctx, call.gallery, probe, k)
		if err != nil {
			nodeError(c, err)
			return
		}
		if len(cands) == 0 {
			c.JSON(http.StatusOK, notEnrolled)
			return
		}
		if err := svc.Audit(ctx, call.audit(c, "identify", cands[0].Person.PUID, "")); err != nil {
			nodeError(c, err)
			return
		}
		reply := predictReply{personReply: call.person(0, "Ok", cands[0].Person, cands[0].Score)}
		if k > 1 {
			for _, cand := range cands {
				reply.PIList = append(reply.PIList, piEntry{EnrollLevel: cand.Person.EnrollLevel,
					PUID: call.encryptID(cand.Person.PUID), GUID: call.encryptID(cand.Person.GUID), Score: cand.Score})
			}
		}
		c.JSON(http.StatusOK, reply)
	}
}

func handleDeleteUser(svc *engine.Service, gate nodeGate) gin.HandlerFunc {
	return func(c *gin.Context) {
		call, ok := readNode(c, gate)
		if !ok {
			return
		}
		if call.req.PUID == "" {
			c.JSON(http.StatusBadRequest, statusReply{-2, "Missing PUID."})
			return
		}
		puid, ok := call.decryptID(call.req.PUID)
		if !ok {
			c.JSON(http.StatusBadRequest, statusReply{400, "delete failed"})
			return
		}
		_, err := svc.Delete(c.Request.Context(), call.key.CustomerID, puid, call.audit(c, "delete", puid, ""))
		switch {
		case errors.Is(err, engine.ErrNotFound):
			c.JSON(http.StatusBadRequest, statusReply{400, "delete failed"})
		case err != nil:
			nodeError(c, err)
		default:
			c.JSON(http.StatusOK, statusReply{0, "ok"})
		}
	}
}

func handleSyncUUID(svc *engine.Service, gate nodeGate) gin.HandlerFunc {
	return func(c *gin.Context) {
		call, ok := readNode(c, gate)
		if !ok {
			return
		}
		if len(call.req.PUIDList) > 1000 {
			c.JSON(http.StatusBadRequest, statusReply{-2, "puid_list holds more than 1000 entries"})
			return
		}
		plain := make([]string, len(call.req.PUIDList))
		for i, s := range call.req.PUIDList {
			plain[i], _ = call.decryptID(s)
		}
		levels, err := svc.EnrollLevels(c.Request.Context(), call.key.CustomerID, plain)
		if err != nil {
			nodeError(c, err)
			return
		}
		state := make(map[string]int, len(plain))
		for i, sent := range call.req.PUIDList {
			state[sent] = levels[plain[i]]
		}
		c.JSON(http.StatusOK, syncReply{Status: 0, PUIDState: state})
	}
}

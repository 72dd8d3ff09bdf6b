// Package client is a Go client of biomatch's /node API: it encrypts
// features and ids as a PrivateID SDK does (versions 1 and 2) and decrypts
// the ids in replies, or speaks biomatch's authenticated version 3 (the
// whole request and reply sealed; no key on the wire).
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/biomatch/biomatch/crypto"
)

// Client calls one server with one API key, gallery version and encryption
// version. The zero HTTP uses a client with a 60 s timeout.
type Client struct {
	BaseURL string // e.g. http://127.0.0.1:8000 (without /node)
	APIKey  string
	KeyID   string         // the key's id (biomatch apikey create prints it); needed for version 3
	Version string         // gallery version, e.g. FACE3_1; "" uses routes without a version segment
	Enc     crypto.Version // 1, 2 or 3; 0 means 2, as every SDK sends
	HTTP    *http.Client
	// Tries is how many times check, predict and sync are attempted on a
	// network error or a 503; 0 means 3, 1 turns retries off.
	Tries int
	// SecurityLevel, when set, asks for that level (x-security-level): no
	// laxer than the key's.
	SecurityLevel string
}

// Reply is a /node reply with puid and guid decrypted.
type Reply struct {
	HTTPStatus  int               `json:"http_status"`
	Status      int               `json:"status"`
	Message     string            `json:"message"`
	EnrollLevel int               `json:"enroll_level,omitempty"`
	PUID        string            `json:"puid,omitempty"`
	GUID        string            `json:"guid,omitempty"`
	Score       float64           `json:"score,omitempty"`
	PIList      []Candidate       `json:"PI_list,omitempty"`
	PUIDState   map[string]int    `json:"puid_state,omitempty"`
	Header      map[string]string `json:"headers,omitempty"` // replyHeaders that were set
}

// replyHeaders are what the server says beside a /node body: request ids
// and, on predict, how the match was decided.
var replyHeaders = []string{"x-request-id", "x-enroll-request-id", "x-security-level", "x-match-threshold",
	"x-fmr", "x-fpir", "x-gallery-templates", "x-match-threshold-clamped"}

// Candidate is one PI_list entry, ids decrypted.
type Candidate struct {
	EnrollLevel int     `json:"enroll_level"`
	PUID        string  `json:"puid"`
	GUID        string  `json:"guid"`
	Score       float64 `json:"score"`
}

// CheckKey calls api-key/checkApiKeyValid. It is retried like Predict.
func (c *Client) CheckKey(ctx context.Context) (Reply, error) {
	return c.retry(ctx, "/node/api-key/checkApiKeyValid", map[string]any{})
}

// Enroll enrolls one embedding, or several frames back to back (k × 512).
// userIdentifier may be "".
func (c *Client) Enroll(ctx context.Context, embedding []float32, userIdentifier string) (Reply, error) {
	return c.call(ctx, c.route("enroll"), map[string]any{"features": features(embedding),
		"user_identifier": userIdentifier, "multi_user": false, "K": 0})
}

// Predict identifies an embedding: the best match, and with k > 1 up to k
// candidates in PIList. With userIdentifier it verifies against that person
// only. Being read-only, it is retried (3 tries) on a network error or a 503;
// Enroll and Delete are not.
func (c *Client) Predict(ctx context.Context, embedding []float32, k int, userIdentifier string) (Reply, error) {
	return c.retry(ctx, c.route("predict"), map[string]any{"features": features(embedding),
		"user_identifier": userIdentifier, "multi_user": false, "K": k})
}

// Delete erases the person with that (plain) puid.
func (c *Client) Delete(ctx context.Context, puid string) (Reply, error) {
	return c.call(ctx, c.route("deleteUser"), map[string]any{"puid": puid})
}

// SyncUUID asks which puids are enrolled: PUIDState maps each to its
// enroll level, 0 when unknown. It is retried like Predict.
func (c *Client) SyncUUID(ctx context.Context, puids []string) (Reply, error) {
	return c.retry(ctx, c.route("syncUUID"), map[string]any{"puid_list": puids})
}

// AddBillingRecord calls addbillingrecord (the SDKs' billing mode); the
// server acknowledges it and records nothing.
func (c *Client) AddBillingRecord(ctx context.Context) (Reply, error) {
	return c.call(ctx, "/node/addbillingrecord", map[string]any{})
}

// retry calls an idempotent route up to Tries times, backing off 200 ms
// then 800 ms, while the network fails or the server answers 503.
func (c *Client) retry(ctx context.Context, path string, body map[string]any) (Reply, error) {
	tries := c.Tries
	if tries <= 0 {
		tries = 3
	}
	var r Reply
	var err error
	for attempt, wait := 1, 200*time.Millisecond; ; attempt, wait = attempt+1, wait*4 {
		r, err = c.call(ctx, path, body)
		if attempt >= tries || (err == nil && r.HTTPStatus != http.StatusServiceUnavailable) || ctx.Err() != nil {
			return r, err
		}
		select {
		case <-ctx.Done():
			return r, ctx.Err()
		case <-time.After(wait):
		}
	}
}

func (c *Client) enc() crypto.Version {
	if c.Enc == 0 {
		return crypto.V2
	}
	return c.Enc
}

func (c *Client) route(name string) string {
	if c.Version == "" {
		return "/node/" + name
	}
	return "/node/" + c.Version + "/" + name
}

func features(embedding []float32) map[string]any {
	return map[string]any{"type": "face", "embedding_vector": embedding}
}

// body encodes plain fields for the wire: v1/v2 encrypt features and puid
// and add the key; v3 seals them all. It returns the v3 nonce.
func (c *Client) body(method, path string, fields map[string]any, ts int64) ([]byte, string, error) {
	if c.enc() == crypto.V3 {
		if c.KeyID == "" {
			return nil, "", fmt.Errorf("encryption version 3 needs the key id (Client.KeyID)")
		}
		plain, err := json.Marshal(fields)
		if err != nil {
			return nil, "", err
		}
		env, nonce, err := crypto.SealV3Request(crypto.V3Secret(c.APIKey), method, path, ts, plain)
		if err != nil {
			return nil, "", err
		}
		b, err := json.Marshal(map[string]string{"sealed": env})
		return b, nonce, err
	}
	out := map[string]any{"api_key": c.APIKey}
	for k, v := range fields {
		out[k] = v
	}
	if f, ok := fields["features"]; ok {
		plain, err := json.Marshal(f)
		if err != nil {
			return nil, "", fmt.Errorf("features: %w", err)
		}
		if out["features"], err = crypto.Encrypt(c.enc(), c.APIKey, plain, time.Now()); err != nil {
			return nil, "", err
		}
	}
	if p, ok := fields["puid"].(string); ok {
		enc, err := crypto.Encrypt(c.enc(), c.APIKey, []byte(p), time.Now())
		if err != nil {
			return nil, "", err
		}
		out["puid"] = enc
	}
	b, err := json.Marshal(out)
	return b, "", err
}

// Prepared is a request encoded and encrypted ahead of sending, as a load
// generator wants its requests: then sending costs only the HTTP exchange.
// A version 3 request carries its timestamp: send it within the server's
// clock-skew window.
type Prepared struct {
	path, nonce string
	ts          int64
	payload     []byte
}

// PrepareEnroll is Enroll's request, for Send.
func (c *Client) PrepareEnroll(embedding []float32, userIdentifier string) (Prepared, error) {
	return c.prepare(c.route("enroll"), map[string]any{"features": features(embedding),
		"user_identifier": userIdentifier, "multi_user": false, "K": 0})
}

// PreparePredict is Predict's request, for Send.
func (c *Client) PreparePredict(embedding []float32, k int, userIdentifier string) (Prepared, error) {
	return c.prepare(c.route("predict"), map[string]any{"features": features(embedding),
		"user_identifier": userIdentifier, "multi_user": false, "K": k})
}

func (c *Client) prepare(path string, fields map[string]any) (Prepared, error) {
	ts := time.Now().Unix()
	payload, nonce, err := c.body(http.MethodPost, path, fields, ts)
	return Prepared{path: path, nonce: nonce, ts: ts, payload: payload}, err
}

func (c *Client) call(ctx context.Context, path string, fields map[string]any) (Reply, error) {
	p, err := c.prepare(path, fields)
	if err != nil {
		return Reply{}, err
	}
	return c.Send(ctx, p)
}

// Send sends a prepared request once (no retries).
func (c *Client) Send(ctx context.Context, p Prepared) (Reply, error) {
	path, nonce, ts := p.path, p.nonce, p.ts
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(c.BaseURL, "/")+path, bytes.NewReader(p.payload))
	if err != nil {
		return Reply{}, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("x-encryption-version", fmt.Sprint(int(c.enc())))
	if c.SecurityLevel != "" {
		req.Header.Set("x-security-level", c.SecurityLevel)
	}
	if c.enc() == crypto.V3 {
		req.Header.Set("x-key-id", c.KeyID)
		req.Header.Set("x-timestamp", strconv.FormatInt(ts, 10))
	}
	hc := c.HTTP
	if hc == nil {
		hc = &http.Client{Timeout: 60 * time.Second}
	}
	resp, err := hc.Do(req)
	if err != nil {
		return Reply{}, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return Reply{}, err
	}
	if c.enc() == crypto.V3 {
		var env struct {
			Sealed string `json:"sealed"`
		}
		if json.Unmarshal(raw, &env) == nil && env.Sealed != "" {
			if raw, err = crypto.OpenV3Response(crypto.V3Secret(c.APIKey), nonce, resp.StatusCode, env.Sealed); err != nil {
				return Reply{HTTPStatus: resp.StatusCode}, fmt.Errorf("reply: %w", err)
			}
		} else if resp.StatusCode < 300 {
			return Reply{HTTPStatus: resp.StatusCode}, fmt.Errorf("reply %d is not sealed", resp.StatusCode)
		}
	}
	r := Reply{HTTPStatus: resp.StatusCode, Header: map[string]string{}}
	for _, h := range replyHeaders {
		if v := resp.Header.Get(h); v != "" {
			r.Header[h] = v
		}
	}
	if err := json.Unmarshal(raw, &r); err != nil {
		return r, fmt.Errorf("reply %d is not JSON: %.200s", resp.StatusCode, raw)
	}
	if r.PUID, err = c.decryptID(r.PUID); err != nil {
		return r, err
	}
	if r.GUID, err = c.decryptID(r.GUID); err != nil {
		return r, err
	}
	for i := range r.PIList {
		if r.PIList[i].PUID, err = c.decryptID(r.PIList[i].PUID); err != nil {
			return r, err
		}
		if r.PIList[i].GUID, err = c.decryptID(r.PIList[i].GUID); err != nil {
			return r, err
		}
	}
	return r, nil
}

func (c *Client) decryptID(s string) (string, error) {
	if s == "" || s == "-1" || c.enc() == crypto.V3 {
		return s, nil
	}
	plain, err := crypto.Decrypt(c.enc(), c.APIKey, s)
	if err != nil {
		return "", fmt.Errorf("reply id %q: %w", s, err)
	}
	return string(plain), nil
}

// Package client is a Go client of biomatch's CryptoNets-compatible /node
// API: it encrypts features and ids as a PrivateID SDK does (versions 1 and
// 2) and decrypts the ids in replies.
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/biomatch/biomatch/crypto"
)

// Client calls one server with one API key, gallery version and encryption
// version. The zero HTTP uses a client with a 60 s timeout.
type Client struct {
	BaseURL string // e.g. http://127.0.0.1:8000 (without /node)
	APIKey  string
	Version string         // gallery version, e.g. FACE3_1; "" uses routes without a version segment
	Enc     crypto.Version // 1 or 2; 0 means 2, as every SDK sends
	HTTP    *http.Client
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
	Header      map[string]string `json:"headers,omitempty"` // x-request-id, x-enroll-request-id
}

// Candidate is one PI_list entry, ids decrypted.
type Candidate struct {
	EnrollLevel int     `json:"enroll_level"`
	PUID        string  `json:"puid"`
	GUID        string  `json:"guid"`
	Score       float64 `json:"score"`
}

// CheckKey calls api-key/checkApiKeyValid. It is retried like Predict.
func (c *Client) CheckKey(ctx context.Context) (Reply, error) {
	return c.retry(ctx, "/node/api-key/checkApiKeyValid", map[string]any{"api_key": c.APIKey})
}

// Enroll enrolls one embedding, or several frames back to back (k × 512).
// userIdentifier may be "".
func (c *Client) Enroll(ctx context.Context, embedding []float32, userIdentifier string) (Reply, error) {
	features, err := c.features(embedding)
	if err != nil {
		return Reply{}, err
	}
	return c.call(ctx, c.route("enroll"), map[string]any{"api_key": c.APIKey, "features": features,
		"user_identifier": userIdentifier, "multi_user": false, "K": 0})
}

// Predict identifies an embedding: the best match, and with k > 1 up to k
// candidates in PIList. With userIdentifier it verifies against that person
// only. Being read-only, it is retried (3 tries) on a network error or a 503;
// Enroll and Delete are not.
func (c *Client) Predict(ctx context.Context, embedding []float32, k int, userIdentifier string) (Reply, error) {
	features, err := c.features(embedding)
	if err != nil {
		return Reply{}, err
	}
	return c.retry(ctx, c.route("predict"), map[string]any{"api_key": c.APIKey, "features": features,
		"user_identifier": userIdentifier, "multi_user": false, "K": k})
}

// Delete erases the person with that (plain) puid.
func (c *Client) Delete(ctx context.Context, puid string) (Reply, error) {
	enc, err := crypto.Encrypt(c.enc(), c.APIKey, []byte(puid), time.Now())
	if err != nil {
		return Reply{}, err
	}
	return c.call(ctx, c.route("deleteUser"), map[string]any{"api_key": c.APIKey, "puid": enc})
}

// SyncUUID asks which puids are enrolled: PUIDState maps each to its
// enroll level, 0 when unknown. It is retried like Predict.
func (c *Client) SyncUUID(ctx context.Context, puids []string) (Reply, error) {
	return c.retry(ctx, c.route("syncUUID"), map[string]any{"api_key": c.APIKey, "puid_list": puids})
}

// retry calls an idempotent route up to 3 times, backing off 200 ms then
// 800 ms, while the network fails or the server answers 503.
func (c *Client) retry(ctx context.Context, path string, body map[string]any) (Reply, error) {
	var r Reply
	var err error
	for attempt, wait := 0, 200*time.Millisecond; ; attempt, wait = attempt+1, wait*4 {
		r, err = c.call(ctx, path, body)
		if attempt == 2 || (err == nil && r.HTTPStatus != http.StatusServiceUnavailable) || ctx.Err() != nil {
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

func (c *Client) features(embedding []float32) (string, error) {
	plain, err := json.Marshal(map[string]any{"type": "face", "embedding_vector": embedding})
	if err != nil {
		return "", fmt.Errorf("features: %w", err)
	}
	return crypto.Encrypt(c.enc(), c.APIKey, plain, time.Now())
}

func (c *Client) call(ctx context.Context, path string, body map[string]any) (Reply, error) {
	payload, err := json.Marshal(body)
	if err != nil {
		return Reply{}, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(c.BaseURL, "/")+path, bytes.NewReader(payload))
	if err != nil {
		return Reply{}, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("x-encryption-version", fmt.Sprint(int(c.enc())))
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
	r := Reply{HTTPStatus: resp.StatusCode, Header: map[string]string{}}
	for _, h := range []string{"x-request-id", "x-enroll-request-id"} {
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
	if s == "" || s == "-1" {
		return s, nil
	}
	plain, err := crypto.Decrypt(c.enc(), c.APIKey, s)
	if err != nil {
		return "", fmt.Errorf("reply id %q: %w", s, err)
	}
	return string(plain), nil
}

package client

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// V1 calls biomatch's native API (/v1) with a bearer token: the tenant's
// API key, or an OAuth2 access token (Token).
type V1 struct {
	BaseURL string // e.g. http://127.0.0.1:8000
	Token   string
	HTTP    *http.Client // nil: a client with a 60 s timeout
}

// Problem is an RFC 9457 error reply of /v1.
type Problem struct {
	Type     string `json:"type"`
	Title    string `json:"title"`
	Status   int    `json:"status"`
	Detail   string `json:"detail"`
	Instance string `json:"instance"`
}

func (p *Problem) Error() string { return fmt.Sprintf("%d %s: %s", p.Status, p.Title, p.Detail) }

// Person is a person of a gallery.
type Person struct {
	PUID           string    `json:"puid"`
	GUID           string    `json:"guid"`
	UserIdentifier string    `json:"user_identifier,omitempty"`
	Gallery        string    `json:"gallery"`
	EnrollLevel    int       `json:"enroll_level"`
	CreatedAt      time.Time `json:"created_at"`
}

// Enrollment is an enroll's state: pending, done or failed.
type Enrollment struct {
	ID        string    `json:"id"`
	Gallery   string    `json:"gallery"`
	State     string    `json:"state"`
	Outcome   string    `json:"outcome,omitempty"`
	Person    *Person   `json:"person,omitempty"`
	Score     *float64  `json:"score,omitempty"`
	Reason    string    `json:"reason,omitempty"`
	CreatedAt time.Time `json:"created_at"`
}

// Decision is how a match decision was taken.
type Decision struct {
	SecurityLevel string   `json:"security_level,omitempty"`
	Threshold     float64  `json:"threshold"`
	Compared      int      `json:"compared"`
	FMR           *float64 `json:"fmr,omitempty"`
	FPIR          *float64 `json:"fpir,omitempty"`
	Clamped       bool     `json:"beyond_calibration,omitempty"`
}

// Identified is identify's answer.
type Identified struct {
	Candidates []struct {
		Person Person  `json:"person"`
		Score  float64 `json:"score"`
	} `json:"candidates"`
	Decision Decision `json:"decision"`
}

// Verified is verify's answer.
type Verified struct {
	Match    bool     `json:"match"`
	Score    float64  `json:"score"`
	Person   Person   `json:"person"`
	Decision Decision `json:"decision"`
}

// Session is a session key (Key is shown once).
type Session struct {
	ID             string    `json:"id"`
	Key            string    `json:"key"`
	Operations     []string  `json:"operations"`
	UserIdentifier string    `json:"user_identifier,omitempty"`
	MaxUses        int       `json:"max_uses"`
	ExpiresAt      time.Time `json:"expires_at"`
}

// SessionOptions scope a session key; zero values take the server's defaults.
type SessionOptions struct {
	Operations     []string `json:"operations"`
	UserIdentifier string   `json:"user_identifier,omitempty"`
	MaxUses        int      `json:"max_uses,omitempty"`
	TTLSeconds     int      `json:"ttl_seconds,omitempty"`
}

// Webhook is a registered endpoint (Secret at registration only).
type Webhook struct {
	ID        string    `json:"id"`
	URL       string    `json:"url"`
	Events    []string  `json:"events"`
	Secret    string    `json:"secret,omitempty"`
	CreatedAt time.Time `json:"created_at"`
}

// Delivery is one event sent to a webhook, with its attempts.
type Delivery struct {
	ID       string `json:"id"`
	Event    string `json:"event"`
	State    string `json:"state"`
	Attempts []struct {
		Attempt    int       `json:"attempt"`
		At         time.Time `json:"at"`
		Status     int       `json:"status,omitempty"`
		Error      string    `json:"error,omitempty"`
		DurationMS int64     `json:"duration_ms"`
	} `json:"attempts"`
	CreatedAt   time.Time  `json:"created_at"`
	DeliveredAt *time.Time `json:"delivered_at,omitempty"`
}

// Gallery is a gallery's size.
type Gallery struct {
	Version   string `json:"version"`
	Persons   int    `json:"persons"`
	Templates int    `json:"templates"`
}

// Token exchanges OAuth2 client credentials for an access token (RFC 6749
// §4.4) and returns it with its lifetime.
func Token(ctx context.Context, baseURL, clientID, clientSecret string) (string, time.Duration, error) {
	form := url.Values{"grant_type": {"client_credentials"}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(baseURL, "/")+"/v1/oauth/token", strings.NewReader(form.Encode()))
	if err != nil {
		return "", 0, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(clientID, clientSecret)
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		return "", 0, err
	}
	defer resp.Body.Close()
	var out struct {
		AccessToken string `json:"access_token"`
		ExpiresIn   int    `json:"expires_in"`
		Error       string `json:"error"`
		Description string `json:"error_description"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&out); err != nil {
		return "", 0, fmt.Errorf("token reply %d: %w", resp.StatusCode, err)
	}
	if resp.StatusCode != http.StatusOK {
		return "", 0, fmt.Errorf("token: %d %s: %s", resp.StatusCode, out.Error, out.Description)
	}
	return out.AccessToken, time.Duration(out.ExpiresIn) * time.Second, nil
}

// do sends a request and decodes a 2xx reply into out (when not nil); a
// problem reply is returned as *Problem.
func (c *V1) do(ctx context.Context, method, path string, in, out any) (int, error) {
	var body io.Reader
	if in != nil {
		raw, err := json.Marshal(in)
		if err != nil {
			return 0, err
		}
		body = bytes.NewReader(raw)
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimRight(c.BaseURL, "/")+path, body)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+c.Token)
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	hc := c.HTTP
	if hc == nil {
		hc = &http.Client{Timeout: 60 * time.Second}
	}
	resp, err := hc.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return resp.StatusCode, err
	}
	if resp.StatusCode >= 300 {
		p := &Problem{Status: resp.StatusCode}
		if json.Unmarshal(raw, p) != nil || p.Detail == "" {
			p.Detail = fmt.Sprintf("%.200s", raw)
		}
		return resp.StatusCode, p
	}
	if out != nil && len(raw) > 0 {
		if err := json.Unmarshal(raw, out); err != nil {
			return resp.StatusCode, fmt.Errorf("reply %d: %w", resp.StatusCode, err)
		}
	}
	return resp.StatusCode, nil
}

// CreateSession mints a session key for a browser.
func (c *V1) CreateSession(ctx context.Context, o SessionOptions) (Session, error) {
	var s Session
	_, err := c.do(ctx, http.MethodPost, "/v1/sessions", o, &s)
	return s, err
}

// Enroll enrolls one or more frames of one person into gallery.
func (c *V1) Enroll(ctx context.Context, gallery string, frames [][]float32, userIdentifier string) (Enrollment, error) {
	var e Enrollment
	_, err := c.do(ctx, http.MethodPost, "/v1/galleries/"+url.PathEscape(gallery)+"/persons",
		map[string]any{"embeddings": frames, "user_identifier": userIdentifier}, &e)
	return e, err
}

// Enrollment reads an enrollment by id (pending ones change).
func (c *V1) Enrollment(ctx context.Context, id string) (Enrollment, error) {
	var e Enrollment
	_, err := c.do(ctx, http.MethodGet, "/v1/enrollments/"+url.PathEscape(id), nil, &e)
	return e, err
}

// Identify searches gallery for the probe's top k persons; level "" is the key's.
func (c *V1) Identify(ctx context.Context, gallery string, probe []float32, k int, level string) (Identified, error) {
	var out Identified
	_, err := c.do(ctx, http.MethodPost, "/v1/galleries/"+url.PathEscape(gallery)+"/identify",
		map[string]any{"embedding": probe, "k": k, "security_level": level}, &out)
	return out, err
}

// Verify compares the probe with one person (puid or user_identifier).
func (c *V1) Verify(ctx context.Context, gallery, person string, probe []float32, level string) (Verified, error) {
	var out Verified
	_, err := c.do(ctx, http.MethodPost, "/v1/galleries/"+url.PathEscape(gallery)+"/verify",
		map[string]any{"embedding": probe, "person": person, "security_level": level}, &out)
	return out, err
}

// Galleries lists the tenant's galleries and sizes.
func (c *V1) Galleries(ctx context.Context) ([]Gallery, error) {
	var out struct{ Galleries []Gallery }
	_, err := c.do(ctx, http.MethodGet, "/v1/galleries", nil, &out)
	return out.Galleries, err
}

// Persons lists a page of a gallery's persons; next is "" on the last page.
func (c *V1) Persons(ctx context.Context, gallery string, limit int, cursor string) (ps []Person, next string, err error) {
	var out struct {
		Persons    []Person `json:"persons"`
		NextCursor string   `json:"next_cursor"`
	}
	q := url.Values{"limit": {strconv.Itoa(limit)}, "cursor": {cursor}}
	_, err = c.do(ctx, http.MethodGet, "/v1/galleries/"+url.PathEscape(gallery)+"/persons?"+q.Encode(), nil, &out)
	return out.Persons, out.NextCursor, err
}

// FindPersons finds persons by user_identifier (gallery "": every gallery).
func (c *V1) FindPersons(ctx context.Context, externalID, gallery string) ([]Person, error) {
	var out struct{ Persons []Person }
	q := url.Values{"external_id": {externalID}}
	if gallery != "" {
		q.Set("gallery", gallery)
	}
	_, err := c.do(ctx, http.MethodGet, "/v1/persons?"+q.Encode(), nil, &out)
	return out.Persons, err
}

// Person reads one person by puid.
func (c *V1) Person(ctx context.Context, puid string) (Person, error) {
	var p Person
	_, err := c.do(ctx, http.MethodGet, "/v1/persons/"+url.PathEscape(puid), nil, &p)
	return p, err
}

// DeletePerson erases a person.
func (c *V1) DeletePerson(ctx context.Context, puid string) error {
	_, err := c.do(ctx, http.MethodDelete, "/v1/persons/"+url.PathEscape(puid), nil, nil)
	return err
}

// CreateWebhook registers an endpoint; the returned Secret is shown once.
func (c *V1) CreateWebhook(ctx context.Context, endpoint string, events []string) (Webhook, error) {
	var w Webhook
	_, err := c.do(ctx, http.MethodPost, "/v1/webhooks", map[string]any{"url": endpoint, "events": events}, &w)
	return w, err
}

// Webhooks lists the tenant's endpoints.
func (c *V1) Webhooks(ctx context.Context) ([]Webhook, error) {
	var out struct{ Webhooks []Webhook }
	_, err := c.do(ctx, http.MethodGet, "/v1/webhooks", nil, &out)
	return out.Webhooks, err
}

// DeleteWebhook removes an endpoint.
func (c *V1) DeleteWebhook(ctx context.Context, id string) error {
	_, err := c.do(ctx, http.MethodDelete, "/v1/webhooks/"+url.PathEscape(id), nil, nil)
	return err
}

// Deliveries lists an endpoint's newest deliveries and their attempts.
func (c *V1) Deliveries(ctx context.Context, id string) ([]Delivery, error) {
	var out struct{ Deliveries []Delivery }
	_, err := c.do(ctx, http.MethodGet, "/v1/webhooks/"+url.PathEscape(id)+"/deliveries", nil, &out)
	return out.Deliveries, err
}

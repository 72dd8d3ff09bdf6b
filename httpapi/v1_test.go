package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/biomatch/biomatch/internal/synth"
	"github.com/biomatch/biomatch/postgres"
)

// v1 sends a /v1 request with key as the bearer token and returns the
// status, the decoded JSON object (nil for no body) and the headers.
func (h *harness) v1(method, path, key string, body any) (int, map[string]any, http.Header) {
	h.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		raw, _ := json.Marshal(b)
		rd = bytes.NewReader(raw)
	}
	req, _ := http.NewRequest(method, h.url+path, rd)
	req.Header.Set("Content-Type", "application/json")
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, raw := h.do(req)
	var m map[string]any
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &m); err != nil {
			h.t.Fatalf("%s %s: reply %d is not a JSON object: %s", method, path, resp.StatusCode, raw)
		}
	}
	if resp.StatusCode >= 400 && resp.Header.Get("Content-Type") != "application/problem+json" {
		h.t.Errorf("%s %s: error %d with Content-Type %q, want application/problem+json", method, path, resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	return resp.StatusCode, m, resp.Header
}

func floats(v []float32) []float64 { return synth.Float64s(v) }

// TestV1Auth: /v1 wants the tenant's key as a bearer token; a missing or
// unknown key is 401 with WWW-Authenticate, a session key 403, all as
// problem details.
func TestV1Auth(t *testing.T) {
	h := newHarness(t)
	key := h.newKey("acme")
	if s, m, hd := h.v1("GET", "/v1/galleries", "", nil); s != 401 || hd.Get("WWW-Authenticate") == "" || m["status"] != 401.0 {
		t.Errorf("no key: %d %v", s, m)
	}
	if s, m, _ := h.v1("GET", "/v1/galleries", key+"x", nil); s != 401 || !strings.Contains(m["detail"].(string), "unknown") {
		t.Errorf("unknown key: %d %v", s, m)
	}
	_, sess, _ := h.v1("POST", "/v1/sessions", key, map[string]any{"operations": []string{"predict"}})
	if s, m, _ := h.v1("GET", "/v1/galleries", sess["key"].(string), nil); s != 403 || !strings.Contains(m["detail"].(string), "session key") {
		t.Errorf("session key on /v1: %d %v", s, m)
	}
	if s, m, _ := h.v1("GET", "/v1/nothing", key, nil); s != 404 || m["type"] == nil {
		t.Errorf("unknown route: %d %v", s, m)
	}
}

// TestV1PersonsAndEnrollments: enroll through /v1, read the enrollment and
// the person back (by id, by external id, by listing with a cursor), see
// the gallery's size, delete; another tenant sees none of it.
func TestV1PersonsAndEnrollments(t *testing.T) {
	h := newHarness(t)
	key, other := h.newKey("acme"), h.newKey("globex")
	alice, bob, carol := synth.Vector(512, 501, 0, 0), synth.Vector(512, 502, 0, 0), synth.Vector(512, 503, 0, 0)

	s, e, hd := h.v1("POST", "/v1/galleries/FACE3_1/persons", key, map[string]any{"embedding": floats(alice), "user_identifier": "alice"})
	if s != 200 || e["state"] != "done" || e["outcome"] != "created" || hd.Get("x-enroll-request-id") != e["id"] {
		t.Fatalf("enroll alice: %d %v", s, e)
	}
	puid := e["person"].(map[string]any)["puid"].(string)
	s, again, _ := h.v1("POST", "/v1/galleries/FACE3_1/persons", key, map[string]any{"embeddings": [][]float64{floats(synth.Vector(512, 501, 0.3, 1))}})
	if s != 200 || again["outcome"] != "existing" || again["person"].(map[string]any)["puid"] != puid {
		t.Fatalf("enroll alice again: %d %v", s, again)
	}
	h.v1("POST", "/v1/galleries/FACE3_1/persons", key, map[string]any{"embedding": floats(bob)})
	h.v1("POST", "/v1/galleries/FACE3_1/persons", key, map[string]any{"embedding": floats(carol)})

	// The enrollment, by the id every enroll returns; a /node enroll's too.
	if s, got, _ := h.v1("GET", "/v1/enrollments/"+e["id"].(string), key, nil); s != 200 || got["state"] != "done" || got["person"].(map[string]any)["puid"] != puid {
		t.Errorf("GET enrollment: %d %v", s, got)
	}
	r := mustOK(t)(h.client(key, "FACE3_2", 2).Enroll(context.Background(), alice, ""))
	if s, got, _ := h.v1("GET", "/v1/enrollments/"+r.Header["x-enroll-request-id"], key, nil); s != 200 || got["gallery"] != "FACE3_2" || got["outcome"] != "created" {
		t.Errorf("the /node enroll's enrollment: %d %v", s, got)
	}
	for _, id := range []string{e["id"].(string), "no-such-id", "00000000000000000000000000000000"} {
		if s, _, _ := h.v1("GET", "/v1/enrollments/"+id, other, nil); s != 404 {
			t.Errorf("another tenant reading enrollment %s: %d, want 404", id, s)
		}
	}

	// Persons: by puid, by external id, listed two at a time.
	if s, p, _ := h.v1("GET", "/v1/persons/"+puid, key, nil); s != 200 || p["user_identifier"] != "alice" || p["enroll_level"] != 2.0 {
		t.Errorf("GET person: %d %v", s, p)
	}
	if s, ps, _ := h.v1("GET", "/v1/persons?external_id=alice", key, nil); s != 200 || len(ps["persons"].([]any)) != 1 {
		t.Errorf("find alice: %d %v", s, ps)
	}
	if s, _, _ := h.v1("GET", "/v1/persons?external_id=", key, nil); s != 400 {
		t.Errorf("find without external_id: %d, want 400", s)
	}
	var seen []string
	cursor := ""
	for page := 0; page < 5; page++ {
		s, l, _ := h.v1("GET", "/v1/galleries/FACE3_1/persons?limit=2&cursor="+cursor, key, nil)
		if s != 200 {
			t.Fatalf("list: %d %v", s, l)
		}
		for _, p := range l["persons"].([]any) {
			seen = append(seen, p.(map[string]any)["puid"].(string))
		}
		next, _ := l["next_cursor"].(string)
		if next == "" {
			break
		}
		cursor = next
	}
	if len(seen) != 3 || seen[0] != puid {
		t.Errorf("listed %v, want alice, bob, carol in enroll order", seen)
	}
	for _, q := range []string{"limit=0", "limit=5000", "limit=x", "cursor=!!!", "cursor=bm90LWEtbnVtYmVy"} {
		if s, _, _ := h.v1("GET", "/v1/galleries/FACE3_1/persons?"+q, key, nil); s != 400 {
			t.Errorf("list ?%s: %d, want 400", q, s)
		}
	}
	if s, g, _ := h.v1("GET", "/v1/galleries", key, nil); s != 200 || len(g["galleries"].([]any)) != 2 {
		t.Errorf("galleries: %d %v", s, g)
	} else if first := g["galleries"].([]any)[0].(map[string]any); first["version"] != "FACE3_1" || first["persons"] != 3.0 || first["templates"] != 4.0 {
		t.Errorf("FACE3_1: %v, want 3 persons, 4 templates", first)
	}

	// Another tenant: nothing to see or delete.
	if s, _, _ := h.v1("GET", "/v1/persons/"+puid, other, nil); s != 404 {
		t.Errorf("another tenant reading alice: %d", s)
	}
	if s, _, _ := h.v1("DELETE", "/v1/persons/"+puid, other, nil); s != 404 {
		t.Errorf("another tenant deleting alice: %d", s)
	}
	if s, _, _ := h.v1("DELETE", "/v1/persons/"+puid, key, nil); s != 204 {
		t.Errorf("delete alice: %d", s)
	}
	if s, _, _ := h.v1("GET", "/v1/persons/"+puid, key, nil); s != 404 {
		t.Errorf("alice after delete: %d", s)
	}
	if n := h.count("audit_log WHERE action = 'delete'"); n != 1 {
		t.Errorf("%d delete audit entries, want 1", n)
	}
}

// TestV1IdentifyAndVerify: top-K over the gallery and 1:1 against a named
// person, each with the decision that was taken; bad input is 400.
func TestV1IdentifyAndVerify(t *testing.T) {
	h := newHarness(t)
	key := h.newKey("acme")
	alice, bob := synth.Vector(512, 601, 0, 0), synth.Vector(512, 602, 0, 0)
	h.v1("POST", "/v1/galleries/FACE3_1/persons", key, map[string]any{"embedding": floats(alice), "user_identifier": "alice"})
	h.v1("POST", "/v1/galleries/FACE3_1/persons", key, map[string]any{"embedding": floats(bob), "user_identifier": "bob"})
	probe := floats(synth.Vector(512, 601, 0.3, 9))

	s, id, hd := h.v1("POST", "/v1/galleries/FACE3_1/identify", key, map[string]any{"embedding": probe, "k": 2})
	cands, _ := id["candidates"].([]any)
	if s != 200 || len(cands) != 1 || cands[0].(map[string]any)["person"].(map[string]any)["user_identifier"] != "alice" {
		t.Fatalf("identify alice: %d %v", s, id)
	}
	if d := id["decision"].(map[string]any); d["security_level"] != "high" || d["compared"] != 2.0 || d["fmr"] == nil || hd.Get("x-security-level") != "high" {
		t.Errorf("identify decision: %v (headers %v)", d, hd)
	}
	for person, want := range map[string]bool{"alice": true, "bob": false} {
		s, v, _ := h.v1("POST", "/v1/galleries/FACE3_1/verify", key, map[string]any{"embedding": probe, "person": person})
		if s != 200 || v["match"] != want {
			t.Errorf("verify against %s: %d %v, want match %v", person, s, v, want)
		}
	}
	if s, _, _ := h.v1("POST", "/v1/galleries/FACE3_1/verify", key, map[string]any{"embedding": probe, "person": "nobody"}); s != 404 {
		t.Errorf("verify against an unknown person: %d, want 404", s)
	}
	for name, body := range map[string]any{
		"malformed JSON":      `{"embedding": [1, 2`,
		"not an object":       `[1, 2, 3]`,
		"unknown field":       map[string]any{"embedding": probe, "treshold": 0.1},
		"wrong type":          map[string]any{"embedding": "0.1,0.2"},
		"no embedding":        map[string]any{"k": 1},
		"k too large":         map[string]any{"embedding": probe, "k": 500},
		"NaN-free zero":       map[string]any{"embedding": make([]float64, 512)},
		"short vector":        map[string]any{"embedding": []float64{1, 2, 3}},
		"unknown level":       map[string]any{"embedding": probe, "security_level": "paranoid"},
		"person on /identify": map[string]any{"embedding": probe, "person": "alice"},
	} {
		s, m, _ := h.v1("POST", "/v1/galleries/FACE3_1/identify", key, body)
		if s != 400 || m["detail"] == nil || m["detail"] == "" {
			t.Errorf("%s: %d %v, want 400 with a detail", name, s, m)
		}
	}
	if s, _, _ := h.v1("POST", "/v1/galleries/bad%20version/identify", key, map[string]any{"embedding": probe}); s != 400 {
		t.Errorf("bad version: %d", s)
	}
}

// TestSessionKeys: a session key minted with the tenant's key works as a
// CryptoNets api_key for what it allows, only for its user when bound to
// one, never for delete, and stops when used up or expired (the generic 403).
func TestSessionKeys(t *testing.T) {
	h := newHarness(t)
	key := h.newKey("acme")
	ctx := context.Background()
	alice := synth.Vector(512, 701, 0, 0)

	for name, body := range map[string]any{
		"delete":        map[string]any{"operations": []string{"enroll", "delete"}},
		"none":          map[string]any{"operations": []string{}},
		"zero uses":     map[string]any{"operations": []string{"predict"}, "max_uses": 0},
		"too long":      map[string]any{"operations": []string{"predict"}, "ttl_seconds": 86400},
		"unknown field": map[string]any{"operations": []string{"predict"}, "scope": "all"},
		"malformed":     `{"operations": `,
	} {
		if s, m, _ := h.v1("POST", "/v1/sessions", key, body); s != 400 || m["detail"] == "" {
			t.Errorf("session with %s: %d %v, want 400", name, s, m)
		}
	}

	s, sess, _ := h.v1("POST", "/v1/sessions", key, map[string]any{"operations": []string{"enroll", "predict"}, "user_identifier": "alice", "max_uses": 4})
	if s != 201 || sess["max_uses"] != 4.0 || !strings.HasPrefix(sess["key"].(string), "bms_") {
		t.Fatalf("create session: %d %v", s, sess)
	}
	exp, err := time.Parse(time.RFC3339, sess["expires_at"].(string))
	if err != nil || time.Until(exp) < 9*time.Minute || time.Until(exp) > 11*time.Minute {
		t.Errorf("expires_at %v, want 10 minutes from now", sess["expires_at"])
	}
	c := h.client(sess["key"].(string), "FACE3_1", 2)
	if r := mustOK(t)(c.CheckKey(ctx)); r.Status != 0 {
		t.Errorf("check with a session key: %+v", r)
	}
	r := mustOK(t)(c.Enroll(ctx, alice, "")) // use 1: bound to alice
	if r.Status != 0 {
		t.Fatalf("enroll with the session: %+v", r)
	}
	if _, ps, _ := h.v1("GET", "/v1/persons?external_id=alice", key, nil); len(ps["persons"].([]any)) != 1 {
		t.Errorf("the session's enroll is not alice's: %v", ps)
	}
	if r := mustOK(t)(c.Predict(ctx, synth.Vector(512, 701, 0.3, 1), 0, "")); r.Status != 0 || r.PUID == "" { // use 2: verify against alice
		t.Errorf("predict with the session: %+v", r)
	}
	if r, _ := c.Predict(ctx, alice, 0, "bob"); r.HTTPStatus != 403 { // another person: refused, no use taken
		t.Errorf("predict for bob on alice's session: %+v", r)
	}
	if r, _ := c.Delete(ctx, r.PUID); r.HTTPStatus != 403 {
		t.Errorf("delete with a session key: %+v, want 403", r)
	}
	mustOK(t)(c.Predict(ctx, alice, 0, "")) // use 3
	mustOK(t)(c.Predict(ctx, alice, 0, "")) // use 4
	if r, _ := c.Predict(ctx, alice, 0, ""); r.HTTPStatus != 403 || r.Message != "Failed to check api key" {
		t.Errorf("fifth use of a 4-use session: %+v, want the generic 403", r)
	}

	// Expired: refused even while its key is still cached.
	_, sess, _ = h.v1("POST", "/v1/sessions", key, map[string]any{"operations": []string{"predict"}})
	c = h.client(sess["key"].(string), "FACE3_1", 2)
	mustOK(t)(c.Predict(ctx, alice, 0, ""))
	if _, err := h.pool.Exec(ctx, `UPDATE session_keys SET expires_at = now() - interval '1 second' WHERE id = $1`, sess["id"]); err != nil {
		t.Fatal(err)
	}
	if r, _ := c.Predict(ctx, alice, 0, ""); r.HTTPStatus != 403 {
		t.Errorf("expired session: %+v, want 403", r)
	}
	// A predict-only session may not enroll.
	_, sess, _ = h.v1("POST", "/v1/sessions", key, map[string]any{"operations": []string{"predict"}})
	if r, _ := h.client(sess["key"].(string), "FACE3_1", 2).Enroll(ctx, alice, ""); r.HTTPStatus != 403 {
		t.Errorf("enroll on a predict-only session: %+v", r)
	}
	if n := h.count("audit_log WHERE action = 'session.create'"); n != 3 {
		t.Errorf("%d session.create audit entries, want 3", n)
	}
}

// TestOAuthClientCredentials: a key's id and secret, as OAuth2 client
// credentials (Basic or form), buy a short-lived bearer token for /v1,
// which the /node routes refuse; wrong pairs and grants get RFC 6749
// errors; an expired token is refused.
func TestOAuthClientCredentials(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	secret, k, err := h.keys.Create(ctx, postgres.KeyOptions{CustomerID: "acme"})
	if err != nil {
		t.Fatal(err)
	}
	token := func(form url.Values, basicID, basicSecret, contentType string) (int, map[string]any, http.Header) {
		req, _ := http.NewRequest("POST", h.url+"/v1/oauth/token", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", contentType)
		if basicID != "" {
			req.SetBasicAuth(basicID, basicSecret)
		}
		resp, raw := h.do(req)
		var m map[string]any
		json.Unmarshal(raw, &m)
		return resp.StatusCode, m, resp.Header
	}
	const form = "application/x-www-form-urlencoded"
	cc := url.Values{"grant_type": {"client_credentials"}}
	s, tok, hd := token(cc, k.ID, secret, form)
	if s != 200 || tok["token_type"] != "Bearer" || tok["expires_in"].(float64) < 800 || hd.Get("Cache-Control") != "no-store" {
		t.Fatalf("token by Basic: %d %v %v", s, tok, hd)
	}
	access := tok["access_token"].(string)
	if s, _, _ := h.v1("GET", "/v1/galleries", access, nil); s != 200 {
		t.Errorf("/v1 with the access token: %d", s)
	}
	withForm := url.Values{"grant_type": {"client_credentials"}, "client_id": {k.ID}, "client_secret": {secret}}
	if s, tok, _ := token(withForm, "", "", form); s != 200 || tok["access_token"] == "" {
		t.Errorf("token by form: %d %v", s, tok)
	}
	if r, _ := h.client(access, "FACE3_1", 2).Predict(ctx, synth.Vector(512, 1, 0, 0), 0, ""); r.HTTPStatus != 403 {
		t.Errorf("/node with an access token: %+v, want the generic 403", r)
	}
	for name, tc := range map[string]struct {
		form           url.Values
		id, sec, ctype string
		status         int
		code           string
	}{
		"wrong secret":     {cc, k.ID, secret + "x", form, 401, "invalid_client"},
		"another key's id": {cc, "00000000-0000-0000-0000-000000000000", secret, form, 401, "invalid_client"},
		"token as secret":  {cc, k.ID, access, form, 401, "invalid_client"},
		"no credentials":   {cc, "", "", form, 401, "invalid_client"},
		"password grant":   {url.Values{"grant_type": {"password"}}, k.ID, secret, form, 400, "unsupported_grant_type"},
		"JSON body":        {cc, k.ID, secret, "application/json", 400, "invalid_request"},
		"Basic and form":   {withForm, k.ID, secret, form, 400, "invalid_request"},
	} {
		s, m, _ := token(tc.form, tc.id, tc.sec, tc.ctype)
		if s != tc.status || m["error"] != tc.code || m["error_description"] == "" {
			t.Errorf("%s: %d %v, want %d %s", name, s, m, tc.status, tc.code)
		}
	}
	// A token past its expiry (made so in the database before its first
	// use; a cached one is checked against its expiry too).
	_, tok, _ = token(cc, k.ID, secret, form)
	if _, err := h.pool.Exec(ctx, `UPDATE access_tokens SET expires_at = now() - interval '1 second'`); err != nil {
		t.Fatal(err)
	}
	if s, m, _ := h.v1("GET", "/v1/galleries", tok["access_token"].(string), nil); s != 401 {
		t.Errorf("/v1 with an expired token: %d %v, want 401", s, m)
	}
}

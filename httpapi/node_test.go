package httpapi_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/biomatch/biomatch/client"
	"github.com/biomatch/biomatch/crypto"
	"github.com/biomatch/biomatch/httpapi"
	"github.com/biomatch/biomatch/internal/synth"
)

func cryptoVersion(enc int) crypto.Version { return crypto.Version(enc) }

func keysOf(m map[string]any) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

func TestCheckAPIKey(t *testing.T) {
	h := newHarness(t)
	key := h.newKey("acme")
	revoked := h.newKey("acme")
	if _, err := h.keys.Revoke(context.Background(), crypto.KeyPrefix(revoked)); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name       string
		body       string
		header     string
		wantStatus int
		want       map[string]any
	}{
		{"valid", fmt.Sprintf(`{"api_key":%q}`, key), "", 200, map[string]any{"message": "API Key is valid", "status": 0.0}},
		{"header when body has none", `{}`, key, 200, map[string]any{"message": "API Key is valid", "status": 0.0}},
		{"body wins over header", fmt.Sprintf(`{"api_key":%q}`, key), "x-api-key", 200, map[string]any{"message": "API Key is valid", "status": 0.0}},
		{"missing", `{}`, "", 400, map[string]any{"status": -1.0, "message": "Missing api key"}},
		{"unknown", `{"api_key":"no-such-key-0000000"}`, "", 403, map[string]any{"status": -1.0, "message": "Failed to check api key"}},
		{"revoked", fmt.Sprintf(`{"api_key":%q}`, revoked), "", 403, map[string]any{"status": -1.0, "message": "Failed to check api key"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			headers := map[string]string{}
			if tc.header != "" {
				headers["x-api-key"] = tc.header
			}
			status, got := h.post("/node/api-key/checkApiKeyValid", []byte(tc.body), headers)
			if status != tc.wantStatus || !cmp.Equal(got, tc.want) {
				t.Errorf("check = %d %v, want %d %v", status, got, tc.wantStatus, tc.want)
			}
		})
	}
}

// TestEnrollPredictDelete walks the SDK's flow under every route form and
// encryption version.
func TestEnrollPredictDelete(t *testing.T) {
	h := newHarness(t)
	key := h.newKey("acme")
	ctx := context.Background()
	for i, tc := range []struct {
		version string
		enc     int
	}{{"FACE3_1", 2}, {"FACE3_2", 1}, {"", 2}, {"", 1}} {
		t.Run(fmt.Sprintf("version=%q/enc=%d", tc.version, tc.enc), func(t *testing.T) {
			must := mustOK(t)
			c := h.client(key, tc.version, tc.enc)
			alice, bob := uint64(100+10*i), uint64(101+10*i)

			r := must(c.Enroll(ctx, synth.Vector(512, alice, 0, 0), ""))
			if r.HTTPStatus != 200 || r.Status != 0 || r.Message != "Ok" || r.EnrollLevel != 1 || r.PUID == "" {
				t.Fatalf("enroll alice = %+v", r)
			}
			puid := r.PUID
			r = must(c.Enroll(ctx, synth.Vector(512, alice, 0.3, 1), ""))
			if r.Message != "User Already Enrolled" || r.PUID != puid || r.EnrollLevel != 2 || r.Score < 0.9 {
				t.Fatalf("enroll alice again = %+v, want User Already Enrolled %s level 2", r, puid)
			}
			bobPUID := must(c.Enroll(ctx, synth.Vector(512, bob, 0, 0), "")).PUID
			if bobPUID == puid || bobPUID == "" {
				t.Fatalf("bob got puid %q (alice %q)", bobPUID, puid)
			}

			r = must(c.Predict(ctx, synth.Vector(512, alice, 0.3, 2), 0, ""))
			if r.Status != 0 || r.PUID != puid || len(r.PIList) != 0 {
				t.Fatalf("predict alice K=0 = %+v, want puid %s without PI_list", r, puid)
			}
			r = must(c.Predict(ctx, synth.Vector(512, alice, 0.3, 3), 2, ""))
			if r.PUID != puid || len(r.PIList) != 1 || r.PIList[0].PUID != puid {
				// bob is far below the match threshold: only alice qualifies
				t.Fatalf("predict alice K=2 = %+v", r)
			}

			r = must(c.SyncUUID(ctx, []string{puid, "nope"}))
			if r.Status != 0 || r.PUIDState[puid] != 2 || r.PUIDState["nope"] != 0 {
				t.Fatalf("syncUUID = %+v", r)
			}

			r = must(c.Delete(ctx, puid))
			if r.HTTPStatus != 200 || r.Status != 0 || r.Message != "ok" {
				t.Fatalf("delete = %+v", r)
			}
			r = must(c.Predict(ctx, synth.Vector(512, alice, 0.3, 4), 0, ""))
			if r.Status != -1 || r.Message != "User not enrolled" || r.PUID != "-1" {
				t.Fatalf("predict after delete = %+v", r)
			}
			r = must(c.Delete(ctx, puid))
			if r.HTTPStatus != 400 || r.Status != 400 || r.Message != "delete failed" {
				t.Fatalf("second delete = %+v", r)
			}
			if r := must(c.Predict(ctx, synth.Vector(512, bob, 0.2, 5), 0, "")); r.PUID != bobPUID {
				t.Fatalf("bob after alice's delete = %+v", r)
			}
		})
	}
}

// TestReplyFields checks that replies carry exactly COMPAT.md's fields: the
// 4.x SDK fails on any other.
func TestReplyFields(t *testing.T) {
	h := newHarness(t)
	key := h.newKey("acme")
	body := func(v []float32, k int) []byte {
		plain, _ := json.Marshal(map[string]any{"type": "face", "embedding_vector": v})
		f, _ := crypto.Encrypt(crypto.V2, key, plain, time.Now())
		b, _ := json.Marshal(map[string]any{"api_key": key, "features": f, "K": k, "user_identifier": ""})
		return b
	}
	v2 := map[string]string{"x-encryption-version": "2"}
	enrollFields := []string{"enroll_level", "guid", "message", "puid", "score", "status"}

	_, got := h.post("/node/FACE3_1/predict", body(synth.Vector(512, 1, 0, 0), 0), v2)
	if diff := cmp.Diff([]string{"guid", "message", "puid", "score", "status"}, keysOf(got)); diff != "" {
		t.Errorf("not-enrolled fields (-want +got):\n%s", diff)
	}
	if got["puid"] != "-1" || got["guid"] != "-1" || got["score"] != -1.0 || got["status"] != -1.0 {
		t.Errorf("not-enrolled reply = %v", got)
	}
	_, got = h.post("/node/FACE3_1/enroll", body(synth.Vector(512, 1, 0, 0), 0), v2)
	if diff := cmp.Diff(enrollFields, keysOf(got)); diff != "" {
		t.Errorf("enroll fields (-want +got):\n%s", diff)
	}
	if s, _ := got["puid"].(string); !regexpHex(s) {
		t.Errorf("enroll puid %q is not hex ciphertext", s)
	}
	_, got = h.post("/node/FACE3_1/predict", body(synth.Vector(512, 1, 0.2, 1), 0), v2)
	if diff := cmp.Diff(enrollFields, keysOf(got)); diff != "" {
		t.Errorf("predict K=0 fields (-want +got):\n%s", diff)
	}
	_, got = h.post("/node/FACE3_1/predict", body(synth.Vector(512, 1, 0.2, 1), 3), v2)
	if diff := cmp.Diff(append([]string{"PI_list"}, enrollFields...), keysOf(got)); diff != "" {
		t.Errorf("predict K=3 fields (-want +got):\n%s", diff)
	}
	entry := got["PI_list"].([]any)[0].(map[string]any)
	if diff := cmp.Diff([]string{"enroll_level", "guid", "puid", "score"}, keysOf(entry)); diff != "" {
		t.Errorf("PI_list entry fields (-want +got):\n%s", diff)
	}
	_, got = h.post("/node/addbillingrecord", []byte(`{}`), nil)
	if !cmp.Equal(got, map[string]any{"status": 0.0, "message": "Success"}) {
		t.Errorf("addbillingrecord = %v", got)
	}
	status, got := h.post("/node/FACE3_1/deleteUser", []byte(fmt.Sprintf(`{"api_key":%q}`, key)), v2)
	if status != 400 || !cmp.Equal(got, map[string]any{"status": -2.0, "message": "Missing PUID."}) {
		t.Errorf("deleteUser without puid = %d %v", status, got)
	}
}

func regexpHex(s string) bool {
	if s == "" || len(s)%2 != 0 {
		return false
	}
	return strings.Trim(s, "0123456789abcdefABCDEF") == ""
}

func TestMultiFrameEnroll(t *testing.T) {
	must := mustOK(t)
	h := newHarness(t)
	c := h.client(h.newKey("acme"), "FACE3_1", 2)
	ctx := context.Background()

	r := must(c.Enroll(ctx, synth.Frames(512, 7, 0.2, 5), ""))
	if r.Status != 0 || r.EnrollLevel != 5 {
		t.Fatalf("5-frame enroll = %+v, want level 5", r)
	}
	// One frame of another face among four: it is dropped.
	frames := append(synth.Frames(512, 8, 0.2, 4), synth.Vector(512, 9, 0, 0)...)
	r = must(c.Enroll(ctx, frames, ""))
	if r.Status != 0 || r.Message != "Ok" || r.EnrollLevel != 4 {
		t.Fatalf("enroll with an outlier frame = %+v, want a new person at level 4", r)
	}
	// Two different faces: no frame agrees with the other.
	before := h.count("enroll_requests")
	r = must(c.Enroll(ctx, append(synth.Vector(512, 10, 0, 0), synth.Vector(512, 11, 0, 0)...), ""))
	if r.HTTPStatus != 400 || r.Status != 152 {
		t.Fatalf("enroll of two faces = %+v, want 400 status 152", r)
	}
	if after := h.count("enroll_requests"); after != before {
		t.Errorf("rejected enroll wrote %d requests", after-before)
	}
}

func TestUserIdentifier(t *testing.T) {
	must := mustOK(t)
	h := newHarness(t)
	c := h.client(h.newKey("acme"), "FACE3_1", 2)
	ctx := context.Background()
	puid := must(c.Enroll(ctx, synth.Vector(512, 20, 0, 0), "user-20")).PUID

	if r := must(c.Predict(ctx, synth.Vector(512, 20, 0.3, 1), 0, "user-20")); r.Status != 0 || r.PUID != puid {
		t.Errorf("verify same face = %+v", r)
	}
	if r := must(c.Predict(ctx, synth.Vector(512, 20, 0.3, 1), 0, puid)); r.Status != 0 || r.PUID != puid {
		t.Errorf("verify by puid = %+v", r)
	}
	if r := must(c.Predict(ctx, synth.Vector(512, 21, 0, 0), 0, "user-20")); r.Status != 153 || r.PUID != "-1" {
		t.Errorf("verify other face = %+v, want status 153", r)
	}
	if r := must(c.Predict(ctx, synth.Vector(512, 20, 0, 0), 0, "user-unknown")); r.Status != -1 || r.Message != "User not enrolled" {
		t.Errorf("verify unknown identifier = %+v", r)
	}
	// Another face may not take an enrolled identifier.
	if r := must(c.Enroll(ctx, synth.Vector(512, 22, 0, 0), "user-20")); r.HTTPStatus != 409 || r.Status != 152 {
		t.Errorf("enroll another face as user-20 = %+v, want 409 status 152", r)
	}
}

// TestConcurrentEnrollOneFace: ten enrolls of one face at once make one person.
func TestConcurrentEnrollOneFace(t *testing.T) {
	h := newHarness(t)
	c := h.client(h.newKey("acme"), "FACE3_1", 2)
	var wg sync.WaitGroup
	replies := make([]client.Reply, 10)
	errs := make([]error, 10)
	for i := range replies {
		wg.Go(func() {
			replies[i], errs[i] = c.Enroll(context.Background(), synth.Vector(512, 30, 0.2, uint64(i)), "")
		})
	}
	wg.Wait()
	for i, r := range replies {
		if errs[i] != nil || r.Status != 0 || r.PUID != replies[0].PUID || r.PUID == "" {
			t.Errorf("enroll %d = %+v, %v; want puid %s", i, r, errs[i], replies[0].PUID)
		}
	}
	if n := h.count("persons"); n != 1 {
		t.Errorf("persons = %d, want 1", n)
	}
	created := 0
	for _, r := range replies {
		if r.Message == "Ok" {
			created++
		}
	}
	if created != 1 {
		t.Errorf("%d replies say created, want 1", created)
	}
}

// TestTenantIsolation: tenant B's key never reaches tenant A's persons.
func TestTenantIsolation(t *testing.T) {
	must := mustOK(t)
	h := newHarness(t)
	ctx := context.Background()
	a := h.client(h.newKey("tenant-a"), "FACE3_1", 2)
	b := h.client(h.newKey("tenant-b"), "FACE3_1", 2)
	face := synth.Vector(512, 40, 0, 0)
	puid := must(a.Enroll(ctx, face, "shared-id")).PUID

	if r := must(b.Predict(ctx, face, 5, "")); r.Status != -1 {
		t.Errorf("B identifies A's face: %+v", r)
	}
	for _, ident := range []string{"shared-id", puid} {
		if r := must(b.Predict(ctx, face, 0, ident)); r.Status != -1 {
			t.Errorf("B verifies A's person by %q: %+v", ident, r)
		}
	}
	if r := must(b.SyncUUID(ctx, []string{puid})); r.PUIDState[puid] != 0 {
		t.Errorf("B syncs A's puid: %+v", r)
	}
	if r := must(b.Delete(ctx, puid)); r.Status != 400 {
		t.Errorf("B deletes A's person: %+v", r)
	}
	// B enrolling the same face makes B's own person.
	if r := must(b.Enroll(ctx, face, "")); r.Message != "Ok" || r.PUID == puid {
		t.Errorf("B enrolls the face: %+v, want a new person", r)
	}
	if r := must(a.Predict(ctx, face, 0, "")); r.PUID != puid {
		t.Errorf("A's person after B's attempts: %+v", r)
	}
}

func TestCORSPreflight(t *testing.T) {
	h := newHarness(t)
	req, _ := http.NewRequest(http.MethodOptions, h.url+"/node/FACE3_1/enroll", nil)
	req.Header.Set("Origin", "http://app.example")
	req.Header.Set("Access-Control-Request-Method", "POST")
	// The version-3 headers too: a browser client of version 3 sends them.
	req.Header.Set("Access-Control-Request-Headers", "content-type,x-api-key,x-encryption-version,x-key-id,x-timestamp")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 || resp.Header.Get("Access-Control-Allow-Origin") != "http://app.example" {
		t.Fatalf("preflight = %d, allow-origin %q", resp.StatusCode, resp.Header.Get("Access-Control-Allow-Origin"))
	}
	allowed := strings.ToLower(resp.Header.Get("Access-Control-Allow-Headers"))
	for _, want := range []string{"content-type", "x-api-key", "x-encryption-version", "x-key-id", "x-timestamp"} {
		if !strings.Contains(allowed, want) {
			t.Errorf("Access-Control-Allow-Headers = %q, missing %s", allowed, want)
		}
	}
	if m := resp.Header.Get("Access-Control-Allow-Methods"); !strings.Contains(m, "POST") {
		t.Errorf("Access-Control-Allow-Methods = %q", m)
	}
	req.Header.Set("Origin", "http://evil.example")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := resp.Header.Get("Access-Control-Allow-Origin"); got != "" {
		t.Errorf("preflight from an unlisted origin allowed: %q", got)
	}
}

// TestEnrollQueued: an enroll the worker has not finished within the wait is
// answered "queued" (202) with its request id, and completes later.
func TestEnrollQueued(t *testing.T) {
	h := newHarnessWith(t, options{enrollWait: 50 * time.Millisecond, noWorker: true})
	must := mustOK(t)
	c := h.client(h.newKey("acme"), "FACE3_1", 2)
	ctx := context.Background()
	r := must(c.Enroll(ctx, synth.Vector(512, 50, 0, 0), ""))
	if r.HTTPStatus != 202 || r.Status != 0 || r.Message != "queued" || r.Header["x-enroll-request-id"] == "" {
		t.Fatalf("enroll with no worker = %+v, want 202 queued with x-enroll-request-id", r)
	}
	if r := must(c.Predict(ctx, synth.Vector(512, 50, 0, 0), 0, "")); r.Status != -1 {
		t.Fatalf("predict before the worker ran = %+v", r)
	}
	h.startWorker()
	eventually(t, "the queued enroll", func() bool {
		return must(c.Predict(ctx, synth.Vector(512, 50, 0.2, 1), 0, "")).Status == 0
	})
}

// TestDocumentFeaturesShape: the CryptoNets document's {"features":[…]}
// shape enrolls and predicts like the SDKs' single object.
func TestDocumentFeaturesShape(t *testing.T) {
	h := newHarness(t)
	key := h.newKey("acme")
	body := func(vs ...[]float32) []byte {
		var items []map[string]any
		for _, v := range vs {
			items = append(items, map[string]any{"type": "face", "embedding_vector": v})
		}
		plain, _ := json.Marshal(map[string]any{"features": items})
		f, _ := crypto.Encrypt(crypto.V1, key, plain, time.Now())
		b, _ := json.Marshal(map[string]any{"api_key": key, "features": f})
		return b
	}
	status, got := h.post("/node/FACE3_1/enroll", body(synth.Vector(256, 60, 0.2, 1), synth.Vector(256, 60, 0.2, 2)), nil)
	if status != 200 || got["status"] != 0.0 || got["enroll_level"] != 2.0 {
		t.Fatalf("enroll with a features list = %d %v, want level 2", status, got)
	}
	status, got = h.post("/node/FACE3_1/predict", body(synth.Vector(256, 60, 0.2, 3)), nil)
	if status != 200 || got["status"] != 0.0 || got["puid"] == "-1" {
		t.Fatalf("predict with a features list = %d %v", status, got)
	}
}

// TestRateLimit: a key over its rate gets 429 with Retry-After; another
// key is not affected. The limit lives in Redis.
func TestRateLimit(t *testing.T) {
	h := newHarnessWith(t, options{rate: 2})
	busy, calm := h.newKey("acme"), h.newKey("acme")
	check := func(key string) (int, string) {
		req, _ := http.NewRequest(http.MethodPost, h.url+"/node/api-key/checkApiKeyValid", strings.NewReader(`{"api_key":"`+key+`"}`))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode, resp.Header.Get("Retry-After")
	}
	var limited bool
	for range 6 {
		status, retry := check(busy)
		if status == http.StatusTooManyRequests {
			limited = true
			if retry == "" {
				t.Error("429 without Retry-After")
			}
		}
	}
	if !limited {
		t.Fatal("6 immediate calls at 2/s were never limited")
	}
	if status, _ := check(calm); status != 200 {
		t.Errorf("another key got %d while the first was limited", status)
	}
}

// TestHealthReadyAndCorrelation: /health and /ready answer JSON, /ready
// 503 naming the failing dependency; a caller's x-correlation-id is echoed.
func TestHealthReadyAndCorrelation(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	h, err := httpapi.NewHandler(httpapi.Config{}, httpapi.Deps{Log: log, Ready: map[string]httpapi.Check{
		"postgres": func(context.Context) error { return nil },
		"redis":    func(context.Context) error { return errors.New("dial tcp 127.0.0.1:1: connection refused") },
	}})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	get := func(path string, header map[string]string) (*http.Response, map[string]any) {
		req, _ := http.NewRequest("GET", srv.URL+path, nil)
		for k, v := range header {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var m map[string]any
		json.NewDecoder(resp.Body).Decode(&m)
		return resp, m
	}
	if resp, m := get("/health", nil); resp.StatusCode != 200 || m["status"] != "ok" {
		t.Errorf("/health = %d %v", resp.StatusCode, m)
	}
	resp, m := get("/ready", map[string]string{"x-correlation-id": "trace-123"})
	checks, _ := m["checks"].(map[string]any)
	if resp.StatusCode != 503 || m["status"] != "not ready" || checks["postgres"] != "ok" || !strings.Contains(fmt.Sprint(checks["redis"]), "refused") {
		t.Errorf("/ready = %d %v, want 503 naming redis", resp.StatusCode, m)
	}
	if resp.Header.Get("x-correlation-id") != "trace-123" || resp.Header.Get("x-request-id") != "trace-123" {
		t.Errorf("correlation id not echoed: %v", resp.Header)
	}
	if resp, _ := get("/health", nil); len(resp.Header.Get("x-request-id")) < 16 {
		t.Errorf("no request id generated: %q", resp.Header.Get("x-request-id"))
	}
}

// TestFailedAuthenticationLimit: an address that keeps sending unknown keys
// is refused (429) before any lookup, while another address with a valid
// key is served; behind a trusted proxy X-Forwarded-For names the client,
// and from an untrusted peer it is ignored (it cannot be used to evade).
func TestFailedAuthenticationLimit(t *testing.T) {
	h := newHarnessWith(t, options{env: map[string]string{"AUTH_FAILURES_PER_MINUTE": "5", "TRUSTED_PROXIES": "127.0.0.1"}})
	key := h.newKey("acme")
	// Each run is an address of its own (the limit is held in the shared Redis).
	addr := func() string { return fmt.Sprintf("2001:db8::%x:%x", rand.Uint32()>>16, rand.Uint32()>>16) }
	flooder, honest := addr(), addr()
	check := func(apiKey, from string) (int, map[string]any) {
		return h.post("/node/api-key/checkApiKeyValid", fmt.Appendf(nil, `{"api_key":%q}`, apiKey), map[string]string{"X-Forwarded-For": from})
	}
	for i := range 5 {
		if status, _ := check(fmt.Sprintf("bm_guessed-key-%010d", i), flooder); status != 403 {
			t.Fatalf("guess %d: %d, want 403", i, status)
		}
	}
	status, reply := check("bm_guessed-key-9999999999", flooder)
	if status != 429 || !strings.Contains(reply["message"].(string), "failed authentications") {
		t.Fatalf("sixth guess = %d %v, want 429 naming the reason", status, reply)
	}
	if status, _ := check(key, flooder); status != 429 {
		t.Errorf("valid key from the blocked address = %d, want 429", status)
	}
	if status, _ := check(key, honest); status != 200 {
		t.Errorf("valid key from another address = %d, want 200", status)
	}

	// Another replica (same Redis) that found an address clean remembers
	// that for httpapi.CleanAddressTTL at most: a block counted elsewhere holds
	// there once it has passed.
	replica := newHarnessWith(t, options{env: map[string]string{"AUTH_FAILURES_PER_MINUTE": "5", "TRUSTED_PROXIES": "127.0.0.1"}})
	roaming, replicaKey := addr(), replica.newKey("acme")
	if status, _ := replica.post("/node/api-key/checkApiKeyValid", fmt.Appendf(nil, `{"api_key":%q}`, replicaKey), map[string]string{"X-Forwarded-For": roaming}); status != 200 {
		t.Fatalf("valid key on the replica = %d, want 200", status)
	}
	for i := range 6 {
		check(fmt.Sprintf("bm_guessed-key-%010d", i), roaming)
	}
	time.Sleep(httpapi.CleanAddressTTL + 100*time.Millisecond)
	if status, _ := replica.post("/node/api-key/checkApiKeyValid", fmt.Appendf(nil, `{"api_key":%q}`, replicaKey), map[string]string{"X-Forwarded-For": roaming}); status != 429 {
		t.Errorf("valid key on the replica, %s after the address was blocked on another = %d, want 429", httpapi.CleanAddressTTL, status)
	}

	// Without trusted proxies, X-Forwarded-For is the caller's word: ignored.
	// The peer is a loopback address of this run's own (127.x.y.z), so the
	// count, held in the shared Redis, touches no other test.
	direct := newHarnessWith(t, options{env: map[string]string{"AUTH_FAILURES_PER_MINUTE": "3"}})
	peer := &net.TCPAddr{IP: net.IPv4(127, byte(1+rand.IntN(250)), byte(rand.IntN(256)), byte(1+rand.IntN(250)))}
	from := &http.Client{Transport: &http.Transport{DialContext: (&net.Dialer{LocalAddr: peer}).DialContext}}
	blocked := false
	for i := range 10 {
		req, _ := http.NewRequest(http.MethodPost, direct.url+"/node/api-key/checkApiKeyValid",
			strings.NewReader(fmt.Sprintf(`{"api_key":"bm_guessed-key-%010d"}`, i)))
		req.Header.Set("X-Forwarded-For", fmt.Sprintf("192.0.2.%d", i))
		resp, err := from.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode == 429 {
			blocked = i == 3
			break
		}
	}
	if !blocked {
		t.Error("spoofed X-Forwarded-For evaded the limit (3 per minute) of an untrusted peer")
	}
}

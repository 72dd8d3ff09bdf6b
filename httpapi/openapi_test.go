package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/pb33f/libopenapi"
	validator "github.com/pb33f/libopenapi-validator"

	"github.com/biomatch/biomatch/crypto"
	"github.com/biomatch/biomatch/httpapi"
	"github.com/biomatch/biomatch/internal/synth"
	"github.com/biomatch/biomatch/postgres"
)

func openAPIValidator(t *testing.T) validator.Validator {
	t.Helper()
	doc, err := libopenapi.NewDocument(httpapi.OpenAPI)
	if err != nil {
		t.Fatalf("openapi.yaml does not parse: %v", err)
	}
	v, errs := validator.NewValidator(doc)
	if len(errs) > 0 {
		t.Fatalf("validator: %v", errs)
	}
	if ok, errs := v.ValidateDocument(); !ok {
		for _, e := range errs {
			t.Errorf("openapi.yaml: %s (%s)", e.Message, e.Reason)
			for _, se := range e.SchemaValidationErrors {
				t.Errorf("    %s at %s", se.Reason, se.KeywordLocation)
			}
		}
		t.FailNow()
	}
	return v
}

// validateExchange validates a copy of one request/response pair against
// the document (bodies are streams: body and raw are what was sent and read).
func validateExchange(t *testing.T, v validator.Validator, name string, req *http.Request, body string, resp *http.Response, raw []byte) {
	t.Helper()
	vreq, _ := http.NewRequest(req.Method, "http://127.0.0.1:8000"+req.URL.RequestURI(), strings.NewReader(body))
	vreq.Header = req.Header.Clone()
	vresp := &http.Response{StatusCode: resp.StatusCode, Header: resp.Header, Body: io.NopCloser(bytes.NewReader(raw)), Request: vreq}
	if ok, errs := v.ValidateHttpResponse(vreq, vresp); !ok {
		for _, e := range errs {
			t.Errorf("%s %s %s → %d: %s: %s", name, req.Method, req.URL.RequestURI(), resp.StatusCode, e.Message, e.Reason)
			for _, se := range e.SchemaValidationErrors {
				t.Errorf("    %s", se.Reason)
			}
		}
	}
}

// TestOpenAPIMatchesResponses sends real requests to every route and
// validates each request/response pair against the served document, so the
// document cannot drift from the code.
func TestOpenAPIMatchesResponses(t *testing.T) {
	v := openAPIValidator(t)
	h := newHarness(t)
	key, other := h.newKey("acme"), h.newKey("other")
	features := func(k string, vec []float32) string {
		plain, _ := json.Marshal(map[string]any{"type": "face", "embedding_vector": vec})
		f, _ := crypto.Encrypt(crypto.V2, k, plain, time.Now())
		return f
	}
	body := func(fields map[string]any) string { b, _ := json.Marshal(fields); return string(b) }
	alice := features(key, synth.Vector(512, 70, 0, 0))
	aliceAgain := features(key, synth.Vector(512, 70, 0.3, 1))
	stranger := features(key, synth.Vector(512, 71, 0, 0))
	v2 := map[string]string{"x-encryption-version": "2", "Content-Type": "application/json"}

	type call struct {
		method, path, body string
		headers            map[string]string
		want               int
	}
	var enrolledPUID string
	calls := []call{
		{"GET", "/health", "", nil, 200},
		{"GET", "/ready", "", nil, 200},
		{"GET", "/openapi.yaml", "", nil, 200},
		{"POST", "/node/api-key/checkApiKeyValid", body(map[string]any{"api_key": key}), v2, 200},
		{"POST", "/node/api-key/checkApiKeyValid", `{}`, v2, 400},
		{"POST", "/node/api-key/checkApiKeyValid", body(map[string]any{"api_key": "unknown-key-000000"}), v2, 403},
		{"POST", "/node/addbillingrecord", `{}`, v2, 200},
		{"POST", "/node/FACE3_1/enroll", body(map[string]any{"api_key": key, "features": alice, "user_identifier": "alice"}), v2, 200},
		{"POST", "/node/FACE3_1/enroll", body(map[string]any{"api_key": key, "features": aliceAgain}), v2, 200},
		{"POST", "/node/FACE3_1/enroll", body(map[string]any{"api_key": key, "features": stranger, "user_identifier": "alice"}), v2, 409},
		{"POST", "/node/FACE3_1/enroll", body(map[string]any{"api_key": key, "features": "zz"}), v2, 400},
		{"POST", "/node/enroll", body(map[string]any{"api_key": key, "features": stranger}), v2, 200},
		{"POST", "/node/FACE3_1/enroll", body(map[string]any{"api_key": key, "original_image": strings.Repeat("A", 2<<20)}), v2, 413},
		{"POST", "/node/FACE3_1/predict", body(map[string]any{"api_key": key, "features": aliceAgain, "K": 2}), v2, 200},
		{"POST", "/node/FACE3_1/predict", body(map[string]any{"api_key": key, "features": stranger, "K": 0}), v2, 200},
		{"POST", "/node/FACE3_1/predict", body(map[string]any{"api_key": key, "features": stranger, "user_identifier": "alice"}), v2, 200},
		{"POST", "/node/predict", body(map[string]any{"api_key": key, "features": aliceAgain}), v2, 200},
		{"POST", "/node/FACE3_1/predict", body(map[string]any{"api_key": other, "features": features(other, synth.Vector(512, 70, 0, 0))}), v2, 200},
		{"POST", "/node/FACE3_1/syncUUID", "", v2, 200}, // body filled in below
		{"POST", "/node/syncUUID", body(map[string]any{"api_key": key, "puid_list": []string{"x"}}), v2, 200},
		{"POST", "/node/FACE3_1/deleteUser", "", v2, 200}, // body filled in below
		{"POST", "/node/deleteUser", body(map[string]any{"api_key": key, "puid": "unknown"}), v2, 400},
		{"POST", "/node/FACE3_1/deleteUser", body(map[string]any{"api_key": key}), v2, 400},
		{"POST", "/node/plainEnroll", body(map[string]any{"api_key": key, "features": map[string]any{"embedding_vector": synth.Vector(512, 72, 0, 0)}}), nil, 404},
	}
	for i, c := range calls {
		switch {
		case strings.HasSuffix(c.path, "FACE3_1/syncUUID"):
			c.body = body(map[string]any{"api_key": key, "puid_list": []string{enrolledPUID, "unknown"}})
		case strings.HasSuffix(c.path, "FACE3_1/deleteUser") && c.want == 200:
			c.body = body(map[string]any{"api_key": key, "puid": enrolledPUID})
		}
		req, _ := http.NewRequest(c.method, h.url+c.path, strings.NewReader(c.body))
		for k, val := range c.headers {
			req.Header.Set(k, val)
		}
		resp, raw := h.do(req)
		if resp.StatusCode != c.want {
			t.Fatalf("call %d %s %s = %d, want %d: %.200s", i, c.method, c.path, resp.StatusCode, c.want, raw)
		}
		if i == 7 { // the first enroll: keep its puid (encrypted, as clients send it back)
			var r map[string]any
			json.Unmarshal(raw, &r)
			enrolledPUID, _ = r["puid"].(string)
		}
		validateExchange(t, v, fmt.Sprintf("call %d", i), req, c.body, resp, raw)
	}
}

// TestOpenAPIRejectsExtraField: the document's reply schemas are closed, so
// the validator above can fail.
func TestOpenAPIRejectsExtraField(t *testing.T) {
	v := openAPIValidator(t)
	req, _ := http.NewRequest("POST", "http://127.0.0.1:8000/node/FACE3_1/enroll", strings.NewReader(`{"api_key":"k"}`))
	req.Header.Set("Content-Type", "application/json")
	raw := `{"status":0,"message":"Ok","enroll_level":1,"puid":"00","guid":"00","score":1,"request_id":"x"}`
	resp := &http.Response{StatusCode: 200, Header: http.Header{"Content-Type": {"application/json"}},
		Body: io.NopCloser(strings.NewReader(raw)), Request: req}
	if ok, _ := v.ValidateHttpResponse(req, resp); ok {
		t.Error(fmt.Sprintf("a reply with an extra field validated: %s", raw))
	}
}

// TestDocsPage: /docs serves Swagger UI from the binary (no CDN) pointing at
// /openapi.yaml.
func TestDocsPage(t *testing.T) {
	h := newHarness(t)
	for path, want := range map[string]string{"/docs/": "/openapi.yaml", "/docs/swagger-ui-bundle.js": "SwaggerUIBundle"} {
		resp, err := http.Get(h.url + path)
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !bytes.Contains(raw, []byte(want)) {
			t.Errorf("GET %s = %d (%d bytes), want 200 containing %q", path, resp.StatusCode, len(raw), want)
		}
		if bytes.Contains(raw, []byte("cdn.jsdelivr")) || bytes.Contains(raw, []byte("unpkg.com")) {
			t.Errorf("GET %s refers to a CDN", path)
		}
	}
}

// TestOpenAPIMatchesV1 calls every /v1 route, successes and problems, and
// validates each exchange against the document.
func TestOpenAPIMatchesV1(t *testing.T) {
	v := openAPIValidator(t)
	h := newHarness(t)
	key, k, err := h.keys.Create(context.Background(), postgres.KeyOptions{CustomerID: "acme"})
	if err != nil {
		t.Fatal(err)
	}
	keyID := k.ID
	alice := synth.Float64s(synth.Vector(512, 80, 0, 0))
	probe := synth.Float64s(synth.Vector(512, 80, 0.3, 1))
	js := func(v any) string { b, _ := json.Marshal(v); return string(b) }
	type call struct {
		method, path, body string
		want               int
	}
	var enrollment, puid, hook string
	calls := []call{
		{"POST", "/v1/galleries/FACE3_1/persons", js(map[string]any{"embedding": alice, "user_identifier": "alice"}), 200},
		{"POST", "/v1/galleries/FACE3_1/persons", js(map[string]any{"embeddings": [][]float64{probe}}), 200},
		{"POST", "/v1/galleries/FACE3_1/persons", js(map[string]any{"embedding": []float64{1, 2}}), 400},
		{"POST", "/v1/galleries/FACE3_1/persons", js(map[string]any{"embedding": synth.Float64s(synth.Vector(512, 81, 0, 0)), "user_identifier": "alice"}), 200}, // failed: alice has another face
		{"GET", "/v1/enrollments/{enrollment}", "", 200},
		{"GET", "/v1/enrollments/unknown", "", 404},
		{"GET", "/v1/galleries", "", 200},
		{"GET", "/v1/galleries/FACE3_1/persons?limit=1", "", 200},
		{"GET", "/v1/galleries/FACE3_1/persons?limit=0", "", 400},
		{"GET", "/v1/persons?external_id=alice", "", 200},
		{"GET", "/v1/persons", "", 400},
		{"GET", "/v1/persons/{puid}", "", 200},
		{"POST", "/v1/galleries/FACE3_1/identify", js(map[string]any{"embedding": probe, "k": 3}), 200},
		{"POST", "/v1/galleries/FACE3_1/identify", `{"embedding": 5}`, 400},
		{"POST", "/v1/galleries/FACE3_1/verify", js(map[string]any{"embedding": probe, "person": "alice"}), 200},
		{"POST", "/v1/galleries/FACE3_1/verify", js(map[string]any{"embedding": probe, "person": "nobody"}), 404},
		{"POST", "/v1/sessions", js(map[string]any{"operations": []string{"predict"}, "ttl_seconds": 60}), 201},
		{"POST", "/v1/sessions", js(map[string]any{"operations": []string{"delete"}}), 400},
		{"DELETE", "/v1/persons/{puid}", "", 204},
		{"DELETE", "/v1/persons/{puid}", "", 404},
		{"GET", "/v1/galleries?unauthenticated", "", 401},
		{"POST", "/v1/webhooks", js(map[string]any{"url": "https://93.184.216.34/hook", "events": []string{"person.deleted"}}), 201},
		{"POST", "/v1/webhooks", js(map[string]any{"url": "https://127.0.0.1/hook", "events": []string{"person.deleted"}}), 400},
		{"GET", "/v1/webhooks", "", 200},
		{"GET", "/v1/webhooks/{webhook}/deliveries", "", 200},
		{"GET", "/v1/webhooks/00000000-0000-0000-0000-000000000000/deliveries", "", 404},
		{"DELETE", "/v1/webhooks/{webhook}", "", 204},
		{"POST", "/v1/oauth/token", "grant_type=client_credentials", 200},
		{"POST", "/v1/oauth/token", "grant_type=password", 400},
	}
	for i, c := range calls {
		c.path = strings.NewReplacer("{enrollment}", enrollment, "{puid}", puid, "{webhook}", hook).Replace(c.path)
		req, _ := http.NewRequest(c.method, h.url+c.path, strings.NewReader(c.body))
		req.Header.Set("Content-Type", "application/json")
		switch {
		case strings.HasSuffix(c.path, "/oauth/token"):
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.SetBasicAuth(keyID, key)
		case !strings.Contains(c.path, "unauthenticated"):
			req.Header.Set("Authorization", "Bearer "+key)
		}
		resp, raw := h.do(req)
		if resp.StatusCode != c.want {
			t.Fatalf("call %d %s %s = %d, want %d: %.300s", i, c.method, c.path, resp.StatusCode, c.want, raw)
		}
		if i == 0 {
			var e map[string]any
			json.Unmarshal(raw, &e)
			enrollment = e["id"].(string)
			puid = e["person"].(map[string]any)["puid"].(string)
		}
		if c.path == "/v1/webhooks" && c.want == 201 {
			var w map[string]any
			json.Unmarshal(raw, &w)
			hook = w["id"].(string)
		}
		validateExchange(t, v, fmt.Sprintf("call %d", i), req, c.body, resp, raw)
	}
}

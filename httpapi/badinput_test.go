package httpapi_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/biomatch/biomatch/crypto"
	"github.com/biomatch/biomatch/internal/synth"
)

// TestBadInput: each malformed request gets a 4xx with a message, never a
// 5xx, and writes nothing.
func TestBadInput(t *testing.T) {
	h := newHarness(t)
	key := h.newKey("acme")
	other := h.newKey("other")
	enc := func(k, plain string) string {
		c, _ := crypto.Encrypt(crypto.V2, k, []byte(plain), time.Now())
		return c
	}
	vec := func(values string) string { return enc(key, `{"type":"face","embedding_vector":[`+values+`]}`) }
	floats := func(n int, x string) string { return strings.TrimSuffix(strings.Repeat(x+",", n), ",") }
	good, _ := json.Marshal(synth.Vector(512, 1, 0, 0))
	goodValues := strings.Trim(string(good), "[]")
	body := func(features string, extra ...string) string {
		return fmt.Sprintf(`{"api_key":%q,"features":%q%s}`, key, features, strings.Join(extra, ""))
	}
	v2 := map[string]string{"x-encryption-version": "2"}
	// flip inverts one hex digit of a ciphertext at position i.
	flip := func(c string, i int) string {
		b := []byte(c)
		if b[i] == '0' {
			b[i] = 'F'
		} else {
			b[i] = '0'
		}
		return string(b)
	}

	tests := []struct {
		name    string
		path    string
		body    string
		headers map[string]string
		want    int // HTTP status
	}{
		{"truncated JSON", "/node/FACE3_1/enroll", `{"api_key":`, v2, 400},
		{"JSON array body", "/node/FACE3_1/enroll", `[]`, v2, 400},
		{"empty body", "/node/FACE3_1/enroll", ``, v2, 400},
		{"features not a string", "/node/FACE3_1/enroll", fmt.Sprintf(`{"api_key":%q,"features":[1,2]}`, key), v2, 400},
		{"missing features", "/node/FACE3_1/enroll", fmt.Sprintf(`{"api_key":%q}`, key), v2, 400},
		{"features not hex", "/node/FACE3_1/enroll", body("zzzz"), v2, 400},
		{"features odd length", "/node/FACE3_1/enroll", body(vec(goodValues)[1:]), v2, 400},
		{"features truncated", "/node/FACE3_1/enroll", body(vec(goodValues)[:100]), v2, 400},
		{"features under another key", "/node/FACE3_1/enroll", body(enc(other, `{"embedding_vector":[`+goodValues+`]}`)), v2, 400},
		{"features as version 1 sent as 2", "/node/FACE3_1/predict", body(func() string {
			c, _ := crypto.Encrypt(crypto.V1, key, []byte(`{"embedding_vector":[1]}`), time.Now())
			return c
		}()), v2, 400},
		{"plaintext not JSON", "/node/FACE3_1/enroll", body(enc(key, "hello")), v2, 400},
		{"unknown JSON shape", "/node/FACE3_1/enroll", body(enc(key, `{"foo":1}`)), v2, 400},
		{"empty vector", "/node/FACE3_1/enroll", body(vec("")), v2, 400},
		{"127 values", "/node/FACE3_1/enroll", body(vec(floats(127, "0.1"))), v2, 400},
		{"513 values", "/node/FACE3_1/enroll", body(vec(floats(513, "0.1"))), v2, 400},
		{"11 frames", "/node/FACE3_1/enroll", body(vec(floats(11*512, "0.1"))), v2, 400},
		{"NaN", "/node/FACE3_1/enroll", body(vec("NaN," + floats(511, "0.1"))), v2, 400},
		{"Infinity", "/node/FACE3_1/predict", body(vec("Infinity," + floats(511, "0.1"))), v2, 400},
		{"beyond float32", "/node/FACE3_1/enroll", body(vec("1e39," + floats(511, "0.1"))), v2, 400},
		{"beyond float64", "/node/FACE3_1/enroll", body(vec("1e400," + floats(511, "0.1"))), v2, 400},
		{"zero vector", "/node/FACE3_1/enroll", body(vec(floats(512, "0"))), v2, 400},
		{"string values", "/node/FACE3_1/enroll", body(vec(floats(512, `"0.1"`))), v2, 400},
		{"mixed dimensions", "/node/FACE3_1/enroll", body(enc(key, `{"features":[{"type":"face","embedding_vector":[`+floats(128, "0.1")+`]},{"type":"face","embedding_vector":[`+floats(256, "0.1")+`]}]}`)), v2, 400},
		{"unsupported type", "/node/FACE3_1/enroll", body(enc(key, `{"type":"iris","embedding_vector":[`+goodValues+`]}`)), v2, 400},
		{"encryption version 3", "/node/FACE3_1/enroll", body(vec(goodValues)), map[string]string{"x-encryption-version": "3"}, 400},
		{"encryption version garbage", "/node/FACE3_1/predict", body(vec(goodValues)), map[string]string{"x-encryption-version": "two"}, 400},
		{"K not a number", "/node/FACE3_1/predict", body(vec(goodValues), `,"K":"many"`), v2, 400},
		{"K negative", "/node/FACE3_1/predict", body(vec(goodValues), `,"K":-1`), v2, 400},
		{"K huge", "/node/FACE3_1/predict", body(vec(goodValues), `,"K":1e30`), v2, 400},
		{"bad version segment", "/node/FACE%20ONE/enroll", body(vec(goodValues)), v2, 400},
		{"SQL in version", "/node/x';DROP%20TABLE%20persons;--/enroll", body(vec(goodValues)), v2, 400},
		{"SQL in user_identifier", "/node/FACE3_1/predict", body(vec(goodValues), `,"user_identifier":"' OR 1=1; --"`), v2, 200},
		{"oversized body", "/node/FACE3_1/enroll", fmt.Sprintf(`{"api_key":%q,"original_image":{"data":%q}}`, key, strings.Repeat("A", 2<<20)), v2, 413},
		{"deleteUser garbage puid", "/node/FACE3_1/deleteUser", fmt.Sprintf(`{"api_key":%q,"puid":"not-a-puid"}`, key), v2, 400},
		{"deleteUser puid of wrong type", "/node/FACE3_1/deleteUser", fmt.Sprintf(`{"api_key":%q,"puid":12}`, key), v2, 400},
		{"syncUUID list of numbers", "/node/FACE3_1/syncUUID", fmt.Sprintf(`{"api_key":%q,"puid_list":[1,2]}`, key), v2, 400},
		{"wrong key type", "/node/api-key/checkApiKeyValid", `{"api_key":42}`, nil, 400},
		{"deeply nested body", "/node/FACE3_1/enroll", `{"api_key":` + strings.Repeat("[", 5000) + strings.Repeat("]", 5000) + `}`, v2, 400},
		{"deeply nested features", "/node/FACE3_1/enroll", body(enc(key, `{"embedding_vector":`+strings.Repeat("[", 3000)+strings.Repeat("]", 3000)+`}`)), v2, 400},
		{"duplicate api_key", "/node/FACE3_1/enroll", fmt.Sprintf(`{"api_key":"nope-0000000000000","api_key":%q,"features":%q}`, key, vec(goodValues)), v2, 400},
		{"duplicate key, other case", "/node/FACE3_1/predict", fmt.Sprintf(`{"api_key":%q,"features":%q,"k":1,"K":5}`, key, vec(goodValues)), v2, 400},
		{"duplicate embedding_vector", "/node/FACE3_1/enroll", body(enc(key, `{"embedding_vector":[`+goodValues+`],"embedding_vector":[`+goodValues+`]}`)), v2, 400},
		{"-Infinity", "/node/FACE3_1/enroll", body(vec("-Infinity," + floats(511, "0.1"))), v2, 400},
		{"nan lower case", "/node/FACE3_1/enroll", body(vec("nan," + floats(511, "0.1"))), v2, 400},
		{"NaN as a string", "/node/FACE3_1/enroll", body(vec(`"NaN",` + floats(511, "0.1"))), v2, 400},
		{"a million values", "/node/FACE3_1/enroll", body(vec(floats(1_000_000, "0"))), v2, 413},
		{"K huge number", "/node/FACE3_1/predict", body(vec(goodValues), `,"K":1e400`), v2, 400},
		{"bit-flipped ciphertext", "/node/FACE3_1/enroll", body(flip(vec(goodValues), 200)), v2, 400},
		{"missing encryption version on v2 ciphertext", "/node/FACE3_1/enroll", body(vec(goodValues)), nil, 400},
		{"empty encryption version header", "/node/FACE3_1/predict", body(vec(goodValues)), map[string]string{"x-encryption-version": " "}, 400},
		{"SQL in api_key", "/node/FACE3_1/enroll", `{"api_key":"' OR '1'='1' --","features":"00"}`, v2, 403},
		{"SQL in features", "/node/FACE3_1/enroll", body("'; DROP TABLE templates; --"), v2, 400},
		{"SQL in puid", "/node/FACE3_1/deleteUser", fmt.Sprintf(`{"api_key":%q,"puid":"x' OR 1=1; DELETE FROM persons; --"}`, key), v2, 400},
		{"SQL in puid_list", "/node/FACE3_1/syncUUID", fmt.Sprintf(`{"api_key":%q,"puid_list":["' OR 1=1 --"]}`, key), v2, 200},
		{"SQL in x-api-key header", "/node/api-key/checkApiKeyValid", `{}`, map[string]string{"x-api-key": "'; DROP TABLE api_keys; --"}, 403},
		{"GET on a POST route", "/node/FACE3_1/enroll", "", nil, 405},
		{"unknown route", "/node/FACE3_1/enrol", body(vec(goodValues)), v2, 404},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var status int
			var got map[string]any
			if tc.want == 405 {
				status, got = h.get(tc.path)
			} else {
				status, got = h.post(tc.path, []byte(tc.body), tc.headers)
			}
			msg, _ := got["message"].(string)
			t.Logf("%d %s", status, msg)
			if status != tc.want || (status >= 400 && msg == "") {
				t.Errorf("status %d message %q, want %d (with a message when 4xx) (reply %v)", status, msg, tc.want, got)
			}
			if strings.Contains(msg, "0.1,") || strings.Contains(msg, goodValues[:20]) {
				t.Errorf("message echoes the template: %q", msg)
			}
		})
	}
	for _, table := range []string{"persons", "templates", "enroll_requests"} {
		if n := h.count(table); n != 0 {
			t.Errorf("bad input wrote %d rows to %s", n, table)
		}
	}
}

// TestBadInputV1: each malformed /v1 request gets a 4xx problem with a
// detail, never a 5xx, and writes nothing.
func TestBadInputV1(t *testing.T) {
	h := newHarness(t)
	key := h.newKey("acme")
	vector := func(n int, x string) string { return "[" + strings.TrimSuffix(strings.Repeat(x+",", n), ",") + "]" }
	good, _ := json.Marshal(synth.Vector(512, 1, 0, 0))
	goodValues := strings.Trim(string(good), "[]")
	tests := []struct {
		name, method, path, body, auth string
		want                           int
	}{
		{"no key", "GET", "/v1/galleries", "", "", 401},
		{"forged key", "GET", "/v1/galleries", "", "Bearer bm_forged-key-00000000000", 401},
		{"forged session key", "GET", "/v1/galleries", "", "Bearer bms_bm_forged-00000000000000", 401},
		{"basic auth", "GET", "/v1/galleries", "", "Basic YWxhZGRpbjpvcGVuc2VzYW1l", 401},
		{"truncated JSON", "POST", "/v1/galleries/FACE3_1/identify", `{"embedding":`, "", 400},
		{"array body", "POST", "/v1/galleries/FACE3_1/identify", `[]`, "", 400},
		{"empty body", "POST", "/v1/galleries/FACE3_1/persons", ``, "", 400},
		{"unknown field", "POST", "/v1/galleries/FACE3_1/persons", `{"embedding":` + string(good) + `,"api_key":"x"}`, "", 400},
		{"field in another case", "POST", "/v1/galleries/FACE3_1/identify", `{"Embedding":` + string(good) + `}`, "", 400},
		{"duplicate field", "POST", "/v1/galleries/FACE3_1/identify", `{"embedding":` + string(good) + `,"embedding":` + string(good) + `}`, "", 400},
		{"embedding as string", "POST", "/v1/galleries/FACE3_1/identify", `{"embedding":"` + goodValues[:40] + `"}`, "", 400},
		{"strings in embedding", "POST", "/v1/galleries/FACE3_1/persons", `{"embedding":` + vector(512, `"0.1"`) + `}`, "", 400},
		{"NaN literal", "POST", "/v1/galleries/FACE3_1/persons", `{"embedding":[NaN,` + goodValues + `]}`, "", 400},
		{"beyond float64", "POST", "/v1/galleries/FACE3_1/persons", `{"embedding":[1e400,` + goodValues + `]}`, "", 400},
		{"127 values", "POST", "/v1/galleries/FACE3_1/persons", `{"embedding":` + vector(127, "0.1") + `}`, "", 400},
		{"zero vector", "POST", "/v1/galleries/FACE3_1/identify", `{"embedding":` + vector(512, "0") + `}`, "", 400},
		{"frames of two sizes", "POST", "/v1/galleries/FACE3_1/persons", `{"embeddings":[` + vector(128, "0.1") + `,` + vector(256, "0.1") + `]}`, "", 400},
		{"k negative", "POST", "/v1/galleries/FACE3_1/identify", `{"embedding":` + string(good) + `,"k":-1}`, "", 400},
		{"k fractional", "POST", "/v1/galleries/FACE3_1/identify", `{"embedding":` + string(good) + `,"k":1.5}`, "", 400},
		{"verify without person", "POST", "/v1/galleries/FACE3_1/verify", `{"embedding":` + string(good) + `}`, "", 400},
		{"SQL in version", "POST", "/v1/galleries/x';DROP%20TABLE%20persons;--/identify", `{"embedding":` + string(good) + `}`, "", 400},
		{"SQL in external_id", "GET", "/v1/persons?external_id=%27%20OR%201%3D1%20--", "", "", 200},
		{"SQL in puid", "DELETE", "/v1/persons/x'%20OR%201=1;--", "", "", 404},
		{"another tenant's enrollment id", "GET", "/v1/enrollments/" + strings.Repeat("a", 36), "", "", 404},
		{"forged cursor", "GET", "/v1/galleries/FACE3_1/persons?cursor=LTE", "", "", 400},
		{"session for delete", "POST", "/v1/sessions", `{"operations":["delete"]}`, "", 400},
		{"session uses as string", "POST", "/v1/sessions", `{"operations":["predict"],"max_uses":"10"}`, "", 400},
		{"session forever", "POST", "/v1/sessions", `{"operations":["predict"],"ttl_seconds":31536000}`, "", 400},
		{"oversized body", "POST", "/v1/galleries/FACE3_1/persons", `{"embedding":` + vector(300_000, "0.1") + `}`, "", 413},
		{"deeply nested", "POST", "/v1/galleries/FACE3_1/identify", `{"embedding":` + strings.Repeat("[", 5000) + strings.Repeat("]", 5000) + `}`, "", 400},
		{"PUT", "PUT", "/v1/galleries", "", "", 405},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			auth := tc.auth
			switch {
			case strings.HasPrefix(tc.name, "no key"):
			case auth == "":
				auth = "Bearer " + key
			}
			req, _ := http.NewRequest(tc.method, h.url+tc.path, strings.NewReader(tc.body))
			req.Header.Set("Content-Type", "application/json")
			if auth != "" {
				req.Header.Set("Authorization", auth)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			raw, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			var p map[string]any
			json.Unmarshal(raw, &p)
			detail, _ := p["detail"].(string)
			if resp.StatusCode != tc.want {
				t.Errorf("status %d, want %d: %.300s", resp.StatusCode, tc.want, raw)
			}
			if resp.StatusCode >= 400 && (detail == "" || resp.Header.Get("Content-Type") != "application/problem+json") {
				t.Errorf("a %d without a problem detail: %.300s", resp.StatusCode, raw)
			}
			if strings.Contains(detail, "0.1,") || strings.Contains(detail, goodValues[:20]) {
				t.Errorf("detail echoes the template: %q", detail)
			}
		})
	}
	for _, table := range []string{"persons", "templates", "enroll_requests", "session_keys"} {
		if n := h.count(table); n != 0 {
			t.Errorf("bad input wrote %d rows to %s", n, table)
		}
	}
}

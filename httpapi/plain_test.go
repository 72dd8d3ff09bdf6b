package httpapi_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/biomatch/biomatch/engine"
	"github.com/biomatch/biomatch/internal/synth"
	"github.com/biomatch/biomatch/postgres"
)

// rot13 is the plain routes' id obfuscation, written independently of the server's.
func rot13(s string) string {
	b := []byte(s)
	for i, c := range b {
		switch {
		case c >= 'a' && c <= 'z':
			b[i] = 'a' + (c-'a'+13)%26
		case c >= 'A' && c <= 'Z':
			b[i] = 'A' + (c-'A'+13)%26
		}
	}
	return string(b)
}

// plainFeatures is the SDKs' features object in clear.
func plainFeatures(identity uint64, noise float64, sample uint64) string {
	v := synth.Vector(512, identity, noise, sample)
	parts := make([]string, len(v))
	for i, x := range v {
		parts[i] = fmt.Sprint(x)
	}
	return `{"type":"face","embedding_vector":[` + strings.Join(parts, ",") + `]}`
}

func TestPlainRoutesOffByDefault(t *testing.T) {
	h := newHarness(t)
	key := h.newKey("acme")
	for _, path := range []string{"/node/plainEnroll", "/node/plainPredict", "/node/FACE3_1/plainEnroll"} {
		body := fmt.Sprintf(`{"api_key":%q,"features":%s}`, key, plainFeatures(1, 0, 0))
		status, m := h.post(path, []byte(body), nil)
		if status != 404 || !strings.Contains(fmt.Sprint(m["message"]), "PLAIN_ROUTES=true") {
			t.Errorf("%s = %d %v, want 404 naming PLAIN_ROUTES", path, status, m)
		}
	}
	if n := h.count("enroll_requests"); n != 0 {
		t.Errorf("enroll_requests = %d, want nothing written", n)
	}
}

func TestPlainRoutes(t *testing.T) {
	h := newHarnessWith(t, options{plain: true})
	key := h.newKey("acme")
	post := func(path, features string) (int, map[string]any) {
		t.Helper()
		return h.post(path, fmt.Appendf(nil, `{"api_key":%q,"features":%s}`, key, features), nil)
	}

	status, m := post("/node/plainEnroll", plainFeatures(1, 0, 0))
	puid, _ := m["puid"].(string)
	if status != 200 || m["message"] != "Ok" || !engine.IsID(rot13(puid)) || rot13(puid) == puid {
		t.Fatalf("plainEnroll = %d %v, want Ok with a ROT13 id", status, m)
	}
	var version string
	if err := h.pool.QueryRow(context.Background(), `SELECT version FROM persons WHERE puid = $1`, rot13(puid)).Scan(&version); err != nil || version != "FACE3_3" {
		t.Fatalf("person %s: version %q, %v; want FACE3_3", rot13(puid), version, err)
	}

	// features as a JSON string is the same request
	status, m = post("/node/plainEnroll", fmt.Sprintf("%q", plainFeatures(1, 0.3, 1)))
	if status != 200 || m["message"] != "User Already Enrolled" || m["puid"] != puid {
		t.Errorf("plainEnroll again (string features) = %d %v, want User Already Enrolled %s", status, m, puid)
	}
	if status, m = post("/node/plainPredict", plainFeatures(1, 0.3, 2)); status != 200 || m["puid"] != puid || m["status"] != 0.0 {
		t.Errorf("plainPredict = %d %v, want %s", status, m, puid)
	}
	if status, m = post("/node/FACE3_1/plainPredict", plainFeatures(1, 0.3, 2)); status != 200 || m["message"] != "User not enrolled" {
		t.Errorf("plainPredict in FACE3_1 = %d %v, want not enrolled (the person is in FACE3_3)", status, m)
	}

	// the encrypted routes see the same person, under its real id
	r := mustOK(t)(h.client(key, "FACE3_3", 2).Predict(context.Background(), synth.Vector(512, 1, 0.3, 3), 0, ""))
	if r.PUID != rot13(puid) {
		t.Errorf("v2 predict in FACE3_3 = %+v, want %s", r, rot13(puid))
	}

	for _, tc := range []struct{ name, path, features, want string }{
		{"hex on a plain route", "/node/plainEnroll", `"0A1B2C"`, "not valid JSON"},
		{"clear JSON on an encrypted route", "/node/FACE3_3/enroll", plainFeatures(2, 0, 0), "hex string"},
		{"no features", "/node/plainPredict", `""`, "missing features"},
	} {
		if status, m := post(tc.path, tc.features); status != 400 || !strings.Contains(fmt.Sprint(m["message"]), tc.want) {
			t.Errorf("%s = %d %v, want 400 saying %q", tc.name, status, m, tc.want)
		}
	}

	strict, _ := h.newKeyWith(postgres.KeyOptions{CustomerID: "acme", MinEncryption: 2})
	status, m = h.post("/node/plainEnroll", fmt.Appendf(nil, `{"api_key":%q,"features":%s}`, strict, plainFeatures(3, 0, 0)), nil)
	if status != 400 || !strings.Contains(fmt.Sprint(m["message"]), "plain routes are refused") {
		t.Errorf("plainEnroll with a min-encryption 2 key = %d %v, want 400", status, m)
	}
	if n := h.count("persons"); n != 1 {
		t.Errorf("persons = %d, want 1", n)
	}
}

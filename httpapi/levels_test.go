package httpapi_test

import (
	"context"
	"strconv"
	"strings"
	"testing"

	"github.com/biomatch/biomatch/internal/synth"
	"github.com/biomatch/biomatch/internal/testenv"
	"github.com/biomatch/biomatch/postgres"
)

// TestSecurityLevelsEndToEnd: through the real router, a key's level
// decides its predicts, a request may ask for a stricter level but not a
// laxer one, and the reply's headers say the level, threshold and rates.
func TestSecurityLevelsEndToEnd(t *testing.T) {
	logs := newSyncWriter()
	h := newHarnessWith(t, options{logs: logs})
	ctx := context.Background()
	keyOf := func(level string) string {
		secret, _, err := h.keys.Create(ctx, postgres.KeyOptions{CustomerID: "acme", SecurityLevel: level})
		if err != nil {
			t.Fatal(err)
		}
		return secret
	}
	low, plain, highest := keyOf("low"), keyOf(""), keyOf("highest")
	must := mustOK(t)
	alice := synth.Vector(512, 4242, 0, 0)
	puid := must(h.client(plain, "FACE3_1", 2).Enroll(ctx, alice, "")).PUID

	// A probe between the low and medium thresholds of a one-template
	// gallery: low matches it, the default (high) and highest do not.
	tLow, tMedium := testenv.LowAndMedium(t)
	probe := synth.AtCosine(alice, (tLow+tMedium)/2, 77)

	for _, tc := range []struct {
		key, ask, wantLevel string
		match               bool
	}{
		{low, "", "low", true},
		{plain, "", "high", false}, // the server's default level
		{highest, "", "highest", false},
		{low, "highest", "highest", false}, // stricter than the key's: allowed
		{plain, "low", "low", true},        // a key without a level may ask for any
	} {
		c := h.client(tc.key, "FACE3_1", 2)
		c.SecurityLevel = tc.ask
		r := must(c.Predict(ctx, probe, 0, ""))
		if matched := r.Status == 0 && r.PUID == puid; matched != tc.match || r.HTTPStatus != 200 {
			t.Errorf("key %s asking %q: %+v, want match %v", tc.wantLevel, tc.ask, r, tc.match)
		}
		if r.Header["x-security-level"] != tc.wantLevel || r.Header["x-gallery-templates"] != "1" {
			t.Errorf("key asking %q: headers %v, want level %s over 1 template", tc.ask, r.Header, tc.wantLevel)
		}
		fmr, err1 := strconv.ParseFloat(r.Header["x-fmr"], 64)
		th, err2 := strconv.ParseFloat(r.Header["x-match-threshold"], 64)
		if err1 != nil || err2 != nil || fmr <= 0 || fmr > 1e-2 || th < tLow-1e-4 {
			t.Errorf("key asking %q: x-fmr %q, x-match-threshold %q", tc.ask, r.Header["x-fmr"], r.Header["x-match-threshold"])
		}
	}

	// The request's log line says how it decided, and carries no vector.
	var decided int
	for _, line := range strings.Split(logs.String(), "\n") {
		if strings.Contains(line, `"route":"/node/:version/predict"`) && strings.Contains(line, `"decision":{"level":"`) {
			decided++
			if !strings.Contains(line, `"fmr":`) || !strings.Contains(line, `"fpir":`) || !strings.Contains(line, `"threshold":`) {
				t.Errorf("predict log line without the decision's rates: %s", line)
			}
		}
	}
	if decided != 5 {
		t.Errorf("%d predict log lines carry a decision, want 5:\n%s", decided, logs.String())
	}

	// Laxer than the key's level, or unknown: refused, saying why.
	c := h.client(highest, "FACE3_1", 2)
	c.SecurityLevel = "low"
	if r, _ := c.Predict(ctx, probe, 0, ""); r.HTTPStatus != 403 || !strings.Contains(r.Message, "requires security level highest") || r.Status != -1 {
		t.Errorf("highest key asking low: %+v, want 403 saying the key requires highest", r)
	}
	c.SecurityLevel = "paranoid"
	if r, _ := c.Predict(ctx, probe, 0, ""); r.HTTPStatus != 400 || r.Status != -2 || !strings.Contains(r.Message, `unknown security level "paranoid"`) {
		t.Errorf("unknown level: %+v, want 400", r)
	}

	// 1:1 (user_identifier) decides at the same level over alice's templates.
	c = h.client(low, "FACE3_1", 2)
	if r := must(c.Predict(ctx, probe, 0, puid)); r.Status != 0 || r.Header["x-security-level"] != "low" {
		t.Errorf("verify at low: %+v", r)
	}
	if r := must(h.client(highest, "FACE3_1", 2).Predict(ctx, probe, 0, puid)); r.Status != 153 {
		t.Errorf("verify at highest: %+v, want 153 Face authentication failed", r)
	}
}

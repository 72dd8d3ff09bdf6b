package httpapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/biomatch/biomatch/client"
	"github.com/biomatch/biomatch/crypto"
	"github.com/biomatch/biomatch/internal/synth"
	"github.com/biomatch/biomatch/postgres"
)

func (h *harness) newKeyWith(o postgres.KeyOptions) (secret, id string) {
	h.t.Helper()
	secret, k, err := h.keys.Create(context.Background(), o)
	if err != nil {
		h.t.Fatal(err)
	}
	return secret, k.ID
}

// sealedPost sends a v3 request built by hand and returns the status and body.
func sealedPost(t *testing.T, url, sealedFor, sendTo, keyID, secretKey string, ts int64, fields map[string]any) (int, string) {
	t.Helper()
	plain, _ := json.Marshal(fields)
	env, _, err := crypto.SealV3Request(crypto.V3Secret(secretKey), "POST", sealedFor, ts, plain)
	if err != nil {
		t.Fatal(err)
	}
	return rawV3(t, url+sendTo, keyID, ts, `{"sealed":"`+env+`"}`)
}

func rawV3(t *testing.T, url, keyID string, ts int64, body string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("POST", url, strings.NewReader(body))
	req.Header.Set("x-encryption-version", "3")
	if keyID != "" {
		req.Header.Set("x-key-id", keyID)
		req.Header.Set("x-timestamp", strconv.FormatInt(ts, 10))
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(raw)
}

func TestEncryptionV3(t *testing.T) {
	h := newHarness(t)
	must := mustOK(t)
	key, id := h.newKeyWith(postgres.KeyOptions{CustomerID: "acme"})
	c := &client.Client{BaseURL: h.url, APIKey: key, KeyID: id, Version: "FACE3_1", Enc: crypto.V3}
	ctx := context.Background()

	if r := must(c.CheckKey(ctx)); r.Status != 0 || r.Message != "API Key is valid" {
		t.Fatalf("v3 check = %+v", r)
	}
	r := must(c.Enroll(ctx, synth.Vector(512, 80, 0, 0), "v3-user"))
	if r.Status != 0 || r.Message != "Ok" || r.PUID == "" {
		t.Fatalf("v3 enroll = %+v", r)
	}
	puid := r.PUID
	if r := must(c.Predict(ctx, synth.Vector(512, 80, 0.3, 1), 2, "")); r.PUID != puid || len(r.PIList) != 1 {
		t.Fatalf("v3 predict = %+v, want %s", r, puid)
	}
	if r := must(c.SyncUUID(ctx, []string{puid})); r.PUIDState[puid] != 1 {
		t.Fatalf("v3 sync = %+v", r)
	}
	// A v2 client of the same key sees the same person (same tenant).
	v2 := &client.Client{BaseURL: h.url, APIKey: key, Version: "FACE3_1", Enc: crypto.V2}
	if r := must(v2.Predict(ctx, synth.Vector(512, 80, 0.3, 2), 0, "")); r.PUID != puid {
		t.Fatalf("v2 predict of the v3 enroll = %+v", r)
	}
	if r := must(c.Delete(ctx, puid)); r.Status != 0 {
		t.Fatalf("v3 delete = %+v", r)
	}

	// On the wire: no key, no ids, no vector in clear; the reply is sealed.
	now := time.Now().Unix()
	vec := synth.Vector(512, 81, 0, 0)
	fields := map[string]any{"features": map[string]any{"type": "face", "embedding_vector": vec}}
	status, body := sealedPost(t, h.url, "/node/FACE3_1/enroll", "/node/FACE3_1/enroll", id, key, now, fields)
	var reply map[string]any
	json.Unmarshal([]byte(body), &reply)
	if status != 200 || len(reply) != 1 || reply["sealed"] == nil {
		t.Fatalf("v3 enroll reply = %d %s, want 200 with only a sealed field", status, body)
	}
	if strings.Contains(body, key) || strings.Contains(body, fmt.Sprint(vec[0])) {
		t.Error("the sealed reply leaks the key or the vector")
	}

	tests := []struct {
		name      string
		sealedFor string
		sendTo    string
		keyID     string
		ts        int64
		want      int
	}{
		{"replayed", "", "", "", 0, 409},
		{"sealed for another path", "/node/FACE3_1/enroll", "/node/FACE3_1/predict", id, now, 400},
		{"stale timestamp", "/node/FACE3_1/predict", "/node/FACE3_1/predict", id, now - 300, 400},
		{"future timestamp", "/node/FACE3_1/predict", "/node/FACE3_1/predict", id, now + 300, 400},
		{"unknown key id", "/node/FACE3_1/predict", "/node/FACE3_1/predict", "00000000-0000-4000-8000-000000000000", now, 403},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var status int
			var body string
			if tc.name == "replayed" {
				plain, _ := json.Marshal(fields)
				env, _, _ := crypto.SealV3Request(crypto.V3Secret(key), "POST", "/node/FACE3_1/predict", now, plain)
				rawV3(t, h.url+"/node/FACE3_1/predict", id, now, `{"sealed":"`+env+`"}`)
				status, body = rawV3(t, h.url+"/node/FACE3_1/predict", id, now, `{"sealed":"`+env+`"}`)
			} else {
				status, body = sealedPost(t, h.url, tc.sealedFor, tc.sendTo, tc.keyID, key, tc.ts, fields)
			}
			if status != tc.want || !strings.Contains(body, "message") {
				t.Errorf("status %d %s, want %d with a message", status, body, tc.want)
			}
		})
	}
	if status, body := rawV3(t, h.url+"/node/FACE3_1/predict", "", 0, `{"sealed":"x"}`); status != 400 {
		t.Errorf("v3 without x-key-id = %d %s, want 400", status, body)
	}
	if status, body := rawV3(t, h.url+"/node/FACE3_1/predict", id, now, `{"api_key":"`+key+`"}`); status != 400 {
		t.Errorf("v3 with a plain body = %d %s, want 400", status, body)
	}
}

// TestMinEncryptionPolicy: a key made v3-only refuses versions 1 and 2.
func TestMinEncryptionPolicy(t *testing.T) {
	h := newHarness(t)
	must := mustOK(t)
	key, id := h.newKeyWith(postgres.KeyOptions{CustomerID: "acme", MinEncryption: 3})
	ctx := context.Background()
	for _, enc := range []crypto.Version{crypto.V1, crypto.V2} {
		c := &client.Client{BaseURL: h.url, APIKey: key, Version: "FACE3_1", Enc: enc}
		if r := must(c.Enroll(ctx, synth.Vector(512, 90, 0, 0), "")); r.HTTPStatus != 400 || !strings.Contains(r.Message, "version 3") {
			t.Errorf("v%d with a v3-only key = %+v, want 400", enc, r)
		}
	}
	c := &client.Client{BaseURL: h.url, APIKey: key, KeyID: id, Version: "FACE3_1", Enc: crypto.V3}
	if r := must(c.Enroll(ctx, synth.Vector(512, 90, 0, 0), "")); r.Status != 0 {
		t.Errorf("v3 with a v3-only key = %+v", r)
	}
	if n := h.count("persons"); n != 1 {
		t.Errorf("persons = %d, want only the v3 enroll", n)
	}
}

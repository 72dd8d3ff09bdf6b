package httpapi_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/biomatch/biomatch/crypto"
	"github.com/biomatch/biomatch/internal/synth"
)

// syncWriter is a log sink the test reads while the server writes.
type syncWriter struct {
	mu  chan struct{}
	buf strings.Builder
}

func newSyncWriter() *syncWriter { return &syncWriter{mu: make(chan struct{}, 1)} }

func (w *syncWriter) Write(p []byte) (int, error) {
	w.mu <- struct{}{}
	defer func() { <-w.mu }()
	return w.buf.Write(p)
}

func (w *syncWriter) String() string {
	w.mu <- struct{}{}
	defer func() { <-w.mu }()
	return w.buf.String()
}

// TestInternalErrorIsLogged: a 500 says nothing internal to the caller, and
// the error behind it is logged once, with the request id.
func TestInternalErrorIsLogged(t *testing.T) {
	logs := newSyncWriter()
	h := newHarnessWith(t, options{logs: logs})
	key := h.newKey("acme")
	ctx := context.Background()
	c := h.client(key, "FACE3_1", 2)
	mustOK(t)(c.Enroll(ctx, synth.Vector(512, 1, 0, 0), ""))
	// Break the audit log: the identify's audit write then fails.
	if _, err := h.pool.Exec(ctx, `ALTER TABLE audit_log RENAME TO audit_log_gone`); err != nil {
		t.Fatal(err)
	}
	status, reply := h.post("/node/FACE3_1/predict", predictBody(t, key, synth.Vector(512, 1, 0, 0)),
		map[string]string{"x-encryption-version": "2", "x-correlation-id": "req-internal-1"})
	if status != 500 || !strings.Contains(reply["message"].(string), "req-internal-1") || strings.Contains(reply["message"].(string), "audit_log") {
		t.Fatalf("predict with a broken audit log = %d %v, want 500 naming the request id and nothing internal", status, reply)
	}
	var lines []string
	for _, line := range strings.Split(logs.String(), "\n") {
		if strings.Contains(line, `"request_id":"req-internal-1"`) {
			lines = append(lines, line)
		}
	}
	if len(lines) != 1 || !strings.Contains(lines[0], `"level":"ERROR"`) || !strings.Contains(lines[0], "audit_log") {
		t.Errorf("log lines of the failed request = %q, want one ERROR line with the cause", lines)
	}
}

// TestPredictFramesThatCancelOut: a predict whose frames are a vector and
// its negation has no direction: 400 status 152, not a match, not a 500.
func TestPredictFramesThatCancelOut(t *testing.T) {
	h := newHarness(t)
	key := h.newKey("acme")
	ctx := context.Background()
	c := h.client(key, "FACE3_1", 2)
	v := synth.Vector(512, 7, 0, 0)
	mustOK(t)(c.Enroll(ctx, v, ""))
	frames := append([]float32(nil), v...)
	for _, x := range v {
		frames = append(frames, -x)
	}
	for _, k := range []int{1, 3} {
		r := mustOK(t)(c.Predict(ctx, frames, k, ""))
		if r.HTTPStatus != 400 || r.Status != 152 || !strings.Contains(r.Message, "do not show one face") {
			t.Errorf("predict K=%d of cancelling frames = %+v, want 400 status 152", k, r)
		}
	}
}

// predictBody is a version-2 predict body for key.
func predictBody(t *testing.T, key string, v []float32) []byte {
	t.Helper()
	plain, _ := json.Marshal(map[string]any{"type": "face", "embedding_vector": v})
	f, err := crypto.Encrypt(crypto.V2, key, plain, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	body, _ := json.Marshal(map[string]any{"api_key": key, "features": f})
	return body
}

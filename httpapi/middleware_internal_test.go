package httpapi

import (
	"bytes"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gin-gonic/gin"
)

// TestPanicInSealedRequest: a panic while a version-3 reply is being
// buffered still answers the client's 500 (sealReplies restores the writer
// on every path), and the panic is logged once with the request id.
func TestPanicInSealedRequest(t *testing.T) {
	var logs bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&logs, nil))
	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	r.Use(requestID(), recovery(log))
	r.POST("/node/predict", sealReplies(log), func(c *gin.Context) {
		c.Set(ctxSealer, func(status int, body []byte) (string, error) { return "sealed", nil })
		panic("boom")
	})
	req := httptest.NewRequest(http.MethodPost, "/node/predict", strings.NewReader(`{}`))
	req.Header.Set("x-encryption-version", "3")
	req.Header.Set(headerCorrelationID, "req-panic-1")
	w := httptest.NewRecorder()
	r.ServeHTTP(w, req)
	if w.Code != http.StatusInternalServerError || !strings.Contains(w.Body.String(), "internal error") {
		t.Errorf("panic in a v3 request answered %d %q, want 500 internal error", w.Code, w.Body.String())
	}
	if n := strings.Count(logs.String(), `"request_id":"req-panic-1"`); n != 1 || !strings.Contains(logs.String(), "boom") {
		t.Errorf("panic logged %d times with its request id, want once:\n%s", n, logs.String())
	}
}

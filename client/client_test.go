package client

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
)

// TestRetriesOnlyIdempotentCalls: predict is retried through two 503s,
// enroll is sent once.
func TestRetriesOnlyIdempotentCalls(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if calls.Add(1) <= 2 {
			w.WriteHeader(http.StatusServiceUnavailable)
			w.Write([]byte(`{"status":-1,"message":"service temporarily unavailable: retry later"}`))
			return
		}
		w.Write([]byte(`{"status":-1,"message":"User not enrolled","puid":"-1","guid":"-1","score":-1}`))
	}))
	defer srv.Close()
	c := &Client{BaseURL: srv.URL, APIKey: "k-0000000000000000", Version: "FACE3_1"}
	v := make([]float32, 128)
	v[0] = 1

	r, err := c.Predict(context.Background(), v, 1, "")
	if err != nil || r.HTTPStatus != 200 || calls.Load() != 3 {
		t.Fatalf("Predict = %+v, %v after %d calls; want 200 after 3", r, err, calls.Load())
	}
	calls.Store(0)
	r, err = c.Enroll(context.Background(), v, "")
	if err != nil || r.HTTPStatus != 503 || calls.Load() != 1 {
		t.Errorf("Enroll = %d after %d calls; want the 503 after 1 (enroll is not retried)", r.HTTPStatus, calls.Load())
	}
}

package httpapi_test

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/biomatch/biomatch/client"
	"github.com/biomatch/biomatch/internal/testenv"
	"github.com/biomatch/biomatch/internal/teststack"
	"github.com/biomatch/biomatch/postgres"
)

// harness is the real stack, wired as the binary wires it (internal/app
// through teststack): router, service, PostgreSQL store, asynq queue and an
// in-process worker, on a fresh database and queue.
type harness struct {
	t     *testing.T
	url   string // of the server
	stack *teststack.Stack
	pool  *pgxpool.Pool
	keys  *postgres.Keys
	// startWorker starts a worker (for harnesses made without one).
	startWorker func()
}

// options vary the harness.
type options struct {
	enrollWait time.Duration     // 0: the default
	noWorker   bool              // start no worker (h.startWorker starts one later)
	rate       int               // per-key requests per second (and burst); 0: no limit
	plain      bool              // serve the plain routes
	logs       io.Writer         // the service's JSON log; nil: discarded
	env        map[string]string // more configuration
}

func newHarness(t *testing.T) *harness { return newHarnessWith(t, options{}) }

func newHarnessWith(t *testing.T, o options) *harness {
	t.Helper()
	env := map[string]string{"CORS_ORIGINS": "http://app.example", "MAX_BODY_BYTES": "1048576",
		"MASTER_KEY": hex.EncodeToString(testMasterKey)}
	if o.enrollWait > 0 {
		env["ENROLL_WAIT"] = o.enrollWait.String()
	}
	if o.rate > 0 {
		env["RATE_LIMIT_PER_SECOND"], env["RATE_LIMIT_BURST"] = strconv.Itoa(o.rate), strconv.Itoa(o.rate)
	}
	if o.plain {
		env["PLAIN_ROUTES"] = "true"
	}
	for k, v := range o.env {
		env[k] = v
	}
	stack, err := teststack.Start(testenv.Env(t, "DATABASE_URL"), testenv.Env(t, "REDIS_URL"),
		teststack.Options{Env: env, NoWorker: o.noWorker, Log: o.logs})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stack.Stop)
	return &harness{t: t, url: stack.URL, stack: stack, pool: stack.App.Pool, keys: stack.Keys,
		startWorker: stack.StartWorker}
}

// testMasterKey seals the keys' v3 secrets in tests.
var testMasterKey = bytes.Repeat([]byte{42}, 32)

// newKey creates an API key for customer and returns it in clear.
func (h *harness) newKey(customer string) string {
	h.t.Helper()
	secret, _, err := h.keys.Create(context.Background(), postgres.KeyOptions{CustomerID: customer})
	if err != nil {
		h.t.Fatal(err)
	}
	return secret
}

// client returns a Go client for key, gallery version and encryption version.
func (h *harness) client(key, version string, enc int) *client.Client {
	return &client.Client{BaseURL: h.url, APIKey: key, Version: version, Enc: cryptoVersion(enc)}
}

// post sends a raw body and returns the status and the decoded JSON object.
func (h *harness) post(path string, body []byte, headers map[string]string) (int, map[string]any) {
	h.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, h.url+path, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, raw := h.do(req)
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		h.t.Fatalf("POST %s: reply %d is not a JSON object: %s", path, resp.StatusCode, raw)
	}
	return resp.StatusCode, m
}

// do sends req and returns the reply with its whole body read (and closed).
func (h *harness) do(req *http.Request) (*http.Response, []byte) {
	h.t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp, raw
}

// count returns SELECT count(*) of a table.
func (h *harness) count(table string) int {
	h.t.Helper()
	var n int
	if err := h.pool.QueryRow(context.Background(), "SELECT count(*) FROM "+table).Scan(&n); err != nil {
		h.t.Fatal(err)
	}
	return n
}

// mustOK returns a function that fails t on a client error.
func mustOK(t *testing.T) func(client.Reply, error) client.Reply {
	return func(r client.Reply, err error) client.Reply {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// get sends a GET and returns the status and the decoded JSON object.
func (h *harness) get(path string) (int, map[string]any) {
	h.t.Helper()
	resp, err := http.Get(h.url + path)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&m); err != nil {
		h.t.Fatalf("GET %s: reply %d is not a JSON object: %v", path, resp.StatusCode, err)
	}
	return resp.StatusCode, m
}

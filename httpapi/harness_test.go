package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/biomatch/biomatch/client"
	"github.com/biomatch/biomatch/engine"
	"github.com/biomatch/biomatch/httpapi"
	"github.com/biomatch/biomatch/internal/testenv"
	"github.com/biomatch/biomatch/keys"
	"github.com/biomatch/biomatch/queue"
	"github.com/biomatch/biomatch/ratelimit"
	"github.com/biomatch/biomatch/replay"
	"github.com/biomatch/biomatch/vectorstore"
)

// harness is the real stack: router, service, Postgres store, asynq queue
// and an in-process worker, on a fresh database and queue.
type harness struct {
	t    *testing.T
	srv  *httptest.Server
	pool *pgxpool.Pool
	keys *keys.Store
	// startWorker starts a worker (for harnesses made without one).
	startWorker func()
}

// options vary the harness.
type options struct {
	enrollWait time.Duration // 0: the engine's default
	noWorker   bool          // start no worker (h.startWorker starts one later)
	rate       int           // per-key requests per second (and burst); 0: no limit
	plain      bool          // serve the plain routes
	logs       io.Writer     // the service's JSON log; nil: discarded
}

func newHarness(t *testing.T) *harness { return newHarnessWith(t, options{}) }

func newHarnessWith(t *testing.T, o options) *harness {
	t.Helper()
	pool := testenv.NewPool(t)
	redisOpt, err := queue.ParseRedisURL(testenv.Env(t, "REDIS_URL"))
	if err != nil {
		t.Fatal(err)
	}
	qname := testenv.Queue(t)
	var logTo io.Writer = io.Discard
	if o.logs != nil {
		logTo = o.logs
	}
	log := slog.New(slog.NewJSONHandler(logTo, nil))
	store, err := vectorstore.NewPostgres(context.Background(), pool, vectorstore.PostgresConfig{})
	if err != nil {
		t.Fatal(err)
	}
	jobs := queue.NewClient(redisOpt, qname)
	svc := engine.NewService(store, store, jobs, engine.Config{EnrollWait: o.enrollWait}, log)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	startWorker := func() {
		worker := queue.NewWorker(redisOpt, svc, queue.WorkerConfig{Queue: qname}, log)
		wg.Go(func() {
			if err := worker.Run(ctx); err != nil {
				t.Errorf("worker: %v", err)
			}
		})
	}
	if !o.noWorker {
		startWorker()
	}
	ks := keys.NewStore(pool, testMasterKey)
	replays, err := replay.New(testenv.Env(t, "REDIS_URL"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { replays.Close() })
	deps := httpapi.Deps{Service: svc, Keys: ks, Log: log, Replay: replays, Ready: map[string]httpapi.Check{"postgres": store.Ping}}
	if o.rate > 0 {
		limiter, err := ratelimit.New(testenv.Env(t, "REDIS_URL"), o.rate, o.rate)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { limiter.Close() })
		deps.Limiter = limiter
	}
	h := httpapi.NewHandler(httpapi.Config{CORSOrigins: []string{"http://app.example"}, MaxBodyBytes: 1 << 20, PlainRoutes: o.plain}, deps)
	srv := httptest.NewServer(h)
	t.Cleanup(func() {
		srv.Close()
		cancel()
		wg.Wait()
		jobs.Close()
	})
	return &harness{t: t, srv: srv, pool: pool, keys: ks, startWorker: startWorker}
}

// testMasterKey seals the keys' v3 secrets in tests.
var testMasterKey = bytes.Repeat([]byte{42}, 32)

// newKey creates an API key for customer and returns it in clear.
func (h *harness) newKey(customer string) string {
	h.t.Helper()
	secret, _, err := h.keys.Create(context.Background(), keys.NewOptions{CustomerID: customer})
	if err != nil {
		h.t.Fatal(err)
	}
	return secret
}

// client returns a Go client for key, gallery version and encryption version.
func (h *harness) client(key, version string, enc int) *client.Client {
	return &client.Client{BaseURL: h.srv.URL, APIKey: key, Version: version, Enc: cryptoVersion(enc)}
}

// post sends a raw body and returns the status and the decoded JSON object.
func (h *harness) post(path string, body []byte, headers map[string]string) (int, map[string]any) {
	h.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, h.srv.URL+path, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		h.t.Fatalf("POST %s: reply %d is not a JSON object: %s", path, resp.StatusCode, raw)
	}
	return resp.StatusCode, m
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
	resp, err := http.Get(h.srv.URL + path)
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

package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/biomatch/biomatch/internal/synth"
	"github.com/biomatch/biomatch/internal/testenv"
	"github.com/biomatch/biomatch/queue"
)

// TestRun drives the binary's run as a user would: migrate, create a key,
// serve with the worker, wait for /ready, enroll and predict with the client
// subcommand, then stop gracefully. It runs on PostgreSQL with pgvector and
// on one where pgvector cannot be installed (templates in real[], search in
// memory).
func TestRun(t *testing.T) {
	t.Run("pgvector", func(t *testing.T) { testRun(t, testenv.NewDatabase(t), 1) })
	// And a sharded enroll queue: every shard has its metrics.
	t.Run("without pgvector", func(t *testing.T) {
		logs := testRun(t, testenv.NewDatabaseWithoutVector(t), 3)
		if !strings.Contains(logs, "pgvector is not installed") {
			t.Errorf("no log line says pgvector is missing:\n%s", logs)
		}
	})
}

func testRun(t *testing.T, databaseURL string, shards int) (logs string) {
	addr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	metricsAddr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	env := map[string]string{
		"METRICS_ADDR": metricsAddr,
		"DATABASE_URL": databaseURL,
		"REDIS_URL":    testenv.Env(t, "REDIS_URL"),
		"LISTEN_ADDR":  addr,
		"QUEUE_NAME":   testenv.Queue(t),
		"QUEUE_SHARDS": strconv.Itoa(shards),
		"ADMIN_TOKEN":  "admin-token-for-tests",
		// Short, so the slow-client check below is quick.
		"READ_HEADER_TIMEOUT": "300ms",
	}
	getenv := func(k string) string { return env[k] }
	ctx := context.Background()
	runOut := func(args ...string) string {
		t.Helper()
		var out, errOut bytes.Buffer
		if err := run(ctx, append([]string{"biomatch"}, args...), getenv, strings.NewReader(""), &out, &errOut); err != nil {
			t.Fatalf("biomatch %s: %v\n%s", strings.Join(args, " "), err, errOut.String())
		}
		return out.String()
	}

	runOut("migrate")
	out := strings.Split(strings.TrimSpace(runOut("apikey", "create", "--customer", "acme")), "\n")
	key := out[len(out)-1]
	if !strings.HasPrefix(key, "bm_") || strings.Contains(key, " ") {
		t.Fatalf("last line of apikey create = %q, want the key alone", key)
	}
	if list := runOut("apikey", "list"); !strings.Contains(list, key[:8]) || strings.Contains(list, key) {
		t.Errorf("apikey list shows %q; want the prefix only:\n%s", key, list)
	}

	serveCtx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	var serveErr error
	var serveLogs syncBuffer
	wg.Go(func() {
		serveErr = run(serveCtx, []string{"biomatch", "serve", "--with-worker"}, getenv, nil, &serveLogs, &serveLogs)
	})
	// Probes arrive while the service starts (as a load balancer's would):
	// the swap from the start-up handler to the real one must not race
	// with them (go test -race).
	probing, stopProbing := context.WithCancel(ctx)
	var probes sync.WaitGroup
	for range 2 {
		probes.Go(func() {
			for probing.Err() == nil {
				if resp, err := http.Get("http://" + addr + "/health"); err == nil {
					resp.Body.Close()
				}
			}
		})
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get("http://" + addr + "/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("/ready never answered 200 (last: %v)\n%s", err, serveLogs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}

	stopProbing()
	probes.Wait()
	// /metrics names tenants: it is on its own listener, not on the API's.
	if resp, err := http.Get("http://" + addr + "/metrics"); err != nil || resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET /metrics on the API port = %v, %v; want 404", resp, err)
	} else {
		resp.Body.Close()
	}
	before := scrape(t, metricsAddr)
	vf := filepath.Join(t.TempDir(), "v.json")
	raw, _ := json.Marshal(synth.Vector(512, 5, 0, 0))
	os.WriteFile(vf, raw, 0o600)
	common := []string{"--url", "http://" + addr, "--key", key, "--version", "FACE3_1", "--enc", "2", "--vector-file", vf}
	var enrolled struct {
		Status int
		PUID   string
	}
	json.Unmarshal([]byte(runOut(append([]string{"client", "enroll"}, common...)...)), &enrolled)
	if enrolled.Status != 0 || enrolled.PUID == "" {
		t.Fatalf("client enroll = %+v", enrolled)
	}
	var predicted struct{ PUID string }
	json.Unmarshal([]byte(runOut(append([]string{"client", "predict"}, common...)...)), &predicted)
	if predicted.PUID != enrolled.PUID {
		t.Errorf("client predict puid = %q, want %q", predicted.PUID, enrolled.PUID)
	}
	// A slow client (headers trickling in) is cut off, and the server still serves.
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	conn.Write([]byte("POST /node/FACE3_1/enroll HTTP/1.1\r\nHost: x\r\n"))
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	start := time.Now()
	reply, _ := io.ReadAll(conn) // returns when the server closes the connection
	conn.Close()
	if waited := time.Since(start); waited > 3*time.Second {
		t.Errorf("a slow client held its connection for %v (READ_HEADER_TIMEOUT 300ms)", waited)
	} else if len(reply) > 0 && !strings.Contains(string(reply), "408") {
		t.Errorf("slow client got %q", reply)
	}
	if resp, err := http.Get("http://" + addr + "/health"); err != nil || resp.StatusCode != 200 {
		t.Errorf("after a slow client: /health = %v, %v", resp, err)
	} else {
		resp.Body.Close()
	}

	// The queue dashboard: refused without the admin token, served with it.
	for token, want := range map[string]int{"": 401, "wrong-token-xxxxxxxx": 401, "admin-token-for-tests": 200} {
		req, _ := http.NewRequest(http.MethodGet, "http://"+addr+"/admin/queues/api/queues", nil)
		if token != "" {
			req.SetBasicAuth("admin", token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("dashboard with token %q: %d, want %d", token, resp.StatusCode, want)
		}
		if want == 200 && !strings.Contains(string(body), env["QUEUE_NAME"]) {
			t.Errorf("dashboard API does not list the queue: %.300s", body)
		}
	}
	after := scrape(t, metricsAddr)
	for series, delta := range map[string]float64{
		`biomatch_enroll_outcomes_total{outcome="created"}`:                                                       1,
		`biomatch_http_request_duration_seconds_count{method="POST",route="/node/:version/predict",status="200"}`: 1,
		`biomatch_search_duration_seconds_count{backend="exact"}`:                                                 1,
		`biomatch_gallery_templates{tenant="acme",version="FACE3_1"}`:                                             1,
		`biomatch_gallery_persons{tenant="acme",version="FACE3_1"}`:                                               1,
	} {
		if got := after[series] - before[series]; got != delta {
			t.Errorf("%s moved by %v, want %v", series, got, delta)
		}
	}
	for _, series := range []string{"biomatch_index_scans_total", "biomatch_index_queries_total", "biomatch_audit_commits_total", "biomatch_audit_entries_total",
		"biomatch_enroll_record_commits_total", "biomatch_enroll_records_total"} {
		if got := after[series] - before[series]; got < 1 {
			t.Errorf("%s moved by %v after an enroll and an identify, want at least 1", series, got)
		}
	}
	if after["biomatch_index_memory_bytes"] <= 0 {
		t.Errorf("biomatch_index_memory_bytes = %v, want > 0", after["biomatch_index_memory_bytes"])
	}
	for _, q := range queue.Shards(env["QUEUE_NAME"], shards) {
		if _, ok := after[`biomatch_queue_tasks{queue="`+q+`",state="pending"}`]; !ok {
			t.Errorf("no biomatch_queue_tasks series for queue %s", q)
		}
	}
	if _, ok := after["biomatch_rate_limited_total"]; !ok {
		t.Error("no biomatch_rate_limited_total series")
	}
	assertNoLeak(t, "the service log", []byte(serveLogs.String()), key, raw)
	assertNoLeak(t, "Redis", redisDump(t, env["REDIS_URL"]), key, raw)

	stop()
	wg.Wait()
	if serveErr != nil {
		t.Errorf("serve returned %v after its context ended", serveErr)
	}
	return serveLogs.String()
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestUnknownCommand(t *testing.T) {
	var out, errOut bytes.Buffer
	if err := run(context.Background(), []string{"biomatch", "frobnicate"}, func(string) string { return "" }, nil, &out, &errOut); err == nil {
		t.Error("unknown command: no error")
	}
}

// scrape reads /metrics as series (name with sorted labels) → value.
func scrape(t *testing.T, addr string) map[string]float64 {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	out := map[string]float64{}
	for _, line := range strings.Split(string(raw), "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("metrics line %q: %v", line, err)
		}
		out[line[:i]] = v
	}
	return out
}

// assertNoLeak fails if where holds the API key or the template.
func assertNoLeak(t *testing.T, what string, where []byte, key string, vectorJSON []byte) {
	t.Helper()
	for _, found := range leaks(where, key, vectorJSON) {
		t.Errorf("%s holds %s", what, found)
	}
}

// leaks lists what of the key and the template where holds: the key, a run
// of the template's values as JSON text, or as raw float32 bytes (either
// byte order).
func leaks(where []byte, key string, vectorJSON []byte) []string {
	var found []string
	if bytes.Contains(where, []byte(key)) {
		found = append(found, "the API key")
	}
	var v []float32
	json.Unmarshal(vectorJSON, &v)
	values := strings.Split(strings.Trim(string(vectorJSON), "[]"), ",")
	if bytes.Contains(where, []byte(strings.Join(values[10:13], ","))) {
		found = append(found, "template values as text")
	}
	le, be := make([]byte, 12), make([]byte, 12)
	for i, x := range v[10:13] {
		binary.LittleEndian.PutUint32(le[4*i:], math.Float32bits(x))
		binary.BigEndian.PutUint32(be[4*i:], math.Float32bits(x))
	}
	if bytes.Contains(where, le) || bytes.Contains(where, be) {
		found = append(found, "template values as float32 bytes")
	}
	return found
}

// TestLeaksFindsPlantedSecrets: the no-leak check can fail.
func TestLeaksFindsPlantedSecrets(t *testing.T) {
	raw, _ := json.Marshal(synth.Vector(128, 3, 0, 0))
	var v []float32
	json.Unmarshal(raw, &v)
	bin := make([]byte, 4*len(v))
	for i, x := range v {
		binary.BigEndian.PutUint32(bin[4*i:], math.Float32bits(x))
	}
	for name, where := range map[string][]byte{
		"key":   []byte("log line key=bm_SECRET done"),
		"text":  append([]byte(`{"features":`), raw...),
		"bytes": append([]byte("payload:"), bin...),
	} {
		if got := leaks(where, "bm_SECRET", raw); len(got) == 0 {
			t.Errorf("planted %s not found", name)
		}
	}
	if got := leaks([]byte("nothing here"), "bm_SECRET", raw); len(got) != 0 {
		t.Errorf("clean input reported %v", got)
	}
}

// redisDump returns every key and value in the Redis database, queue
// payloads included.
func redisDump(t *testing.T, url string) []byte {
	t.Helper()
	opt, err := redis.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(opt)
	defer rdb.Close()
	dump := testenv.RedisDump(t, rdb)
	if dump == "" {
		t.Fatal("Redis holds no key at all: the no-leak check would prove nothing")
	}
	return []byte(dump)
}

// TestCollectForIndex: serve and worker collect at indexGCPercent unless
// GOGC is set, which is left as the runtime read it.
func TestCollectForIndex(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(77))
	collectForIndex(func(string) string { return "" })
	if got := debug.SetGCPercent(77); got != indexGCPercent {
		t.Errorf("GOGC unset: GC percent %d, want %d", got, indexGCPercent)
	}
	collectForIndex(func(k string) string { return map[string]string{"GOGC": "50"}[k] })
	if got := debug.SetGCPercent(77); got != 77 {
		t.Errorf("GOGC set: GC percent changed to %d", got)
	}
}

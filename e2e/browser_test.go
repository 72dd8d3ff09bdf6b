package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/biomatch/biomatch/crypto"
	"github.com/biomatch/biomatch/engine"
	"github.com/biomatch/biomatch/internal/testenv"
	"github.com/biomatch/biomatch/internal/teststack"
	"github.com/biomatch/biomatch/postgres"
)

// exchange is one HTTP request/response pair the API served.
type exchange struct {
	Method, Path string
	Header       http.Header
	Request      string
	Status       int
	Response     string
	ReplyHeader  http.Header
}

// recorder wraps the API and keeps every exchange.
type recorder struct {
	mu   sync.Mutex
	seen []exchange
}

func (rec *recorder) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		rw := &capture{ResponseWriter: w, status: 200}
		h.ServeHTTP(rw, r)
		rec.mu.Lock()
		rec.seen = append(rec.seen, exchange{r.Method, r.URL.Path, r.Header.Clone(), string(body), rw.status, rw.body.String(), rw.Header().Clone()})
		rec.mu.Unlock()
	})
}

func (rec *recorder) all() []exchange {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return slices.Clone(rec.seen)
}

type capture struct {
	http.ResponseWriter
	status int
	body   bytes.Buffer
}

func (c *capture) WriteHeader(s int)           { c.status = s; c.ResponseWriter.WriteHeader(s) }
func (c *capture) Write(b []byte) (int, error) { c.body.Write(b); return c.ResponseWriter.Write(b) }

// allowed are the reply fields COMPAT.md lets each route carry; the 4.x SDK
// fails on any other.
var allowed = map[string][]string{
	"checkApiKeyValid": {"message", "status"},
	"enroll":           {"status", "message", "enroll_level", "puid", "guid", "score"},
	"predict":          {"status", "message", "enroll_level", "puid", "guid", "score", "PI_list"},
	"deleteUser":       {"status", "message"},
}

type sdkStep struct {
	Name  string          `json:"name"`
	Value json.RawMessage `json:"value"`
}

type sdkState struct {
	Steps []sdkStep `json:"steps"`
	Done  bool      `json:"done"`
	Error *string   `json:"error"`
}

func (s sdkState) has(name string) bool {
	return slices.ContainsFunc(s.Steps, func(st sdkStep) bool { return st.Name == name })
}

func (s sdkState) value(name string) map[string]any {
	for _, st := range s.Steps {
		if st.Name == name {
			var m map[string]any
			json.Unmarshal(st.Value, &m)
			return m
		}
	}
	return nil
}

func TestPrivateIDWebSDK(t *testing.T) {
	dist := "web/dist"
	if _, err := os.Stat(dist + "/app.js"); err != nil {
		t.Fatalf("%s/app.js is missing: run scripts/e2e-setup.sh (make test does)", dist)
	}
	chromium, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatal("chromium is not installed: run scripts/e2e-setup.sh (make test does)")
	}

	// The real stack: PostgreSQL + pgvector, Redis, the worker, the router,
	// every exchange recorded.
	ctx := context.Background()
	rec := &recorder{}
	stack, err := teststack.Start(testenv.Env(t, "DATABASE_URL"), testenv.Env(t, "REDIS_URL"),
		teststack.Options{Wrap: rec.wrap, Env: map[string]string{"MAX_BODY_BYTES": "67108864"}})
	if err != nil {
		t.Fatal(err)
	}
	defer stack.Stop()
	key, _, err := stack.Keys.Create(ctx, postgres.KeyOptions{CustomerID: "e2e"})
	if err != nil {
		t.Fatal(err)
	}
	// The page comes from another origin, so the browser sends CORS preflights.
	files := http.FileServer(http.Dir(dist))
	page := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cross-Origin-Opener-Policy", "same-origin")
		w.Header().Set("Cross-Origin-Embedder-Policy", "require-corp")
		files.ServeHTTP(w, r)
	}))
	defer page.Close()

	opts := append(slices.Clone(chromedp.DefaultExecAllocatorOptions[:]),
		chromedp.ExecPath(chromium), chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true), chromedp.Flag("disable-quic", true),
		chromedp.UserDataDir(t.TempDir()))
	actx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	defer cancelAlloc()
	bctx, cancelBrowser := chromedp.NewContext(actx)
	defer cancelBrowser()
	var consoleMu sync.Mutex
	var console []string
	err = chromedp.Listen(bctx, func(ev any) {
		var line string
		switch e := ev.(type) {
		case *runtime.EventConsoleAPICalled:
			var parts []string
			for _, a := range e.Args {
				parts = append(parts, strings.Trim(string(a.Value), `"`))
			}
			line = fmt.Sprintf("[%s] %s", e.Type, strings.Join(parts, " "))
		case *runtime.EventExceptionThrown:
			line = fmt.Sprintf("[exception] %s %v", e.ExceptionDetails.Text, e.ExceptionDetails.Exception)
		default:
			return
		}
		consoleMu.Lock()
		console = append(console, line)
		consoleMu.Unlock()
	})
	if err != nil {
		t.Fatalf("start chromium: %v", err)
	}

	var state sdkState
	report := func() string {
		var b strings.Builder
		b.WriteString("SDK steps:\n")
		for _, s := range state.Steps {
			fmt.Fprintf(&b, "  %s: %.400s\n", s.Name, s.Value)
		}
		consoleMu.Lock()
		fmt.Fprintf(&b, "browser console (last 40 of %d):\n", len(console))
		for _, c := range console[max(0, len(console)-40):] {
			fmt.Fprintf(&b, "  %.300s\n", c)
		}
		consoleMu.Unlock()
		b.WriteString("HTTP exchange:\n")
		for _, x := range rec.all() {
			fmt.Fprintf(&b, "  %s %s → %d %.300s\n", x.Method, x.Path, x.Status, x.Response)
		}
		return b.String()
	}

	// The app's server mints a session key with the tenant's key; only the
	// session key goes to the page.
	session := v1(t, "POST", stack.URL+"/v1/sessions", key, `{"operations":["enroll","predict"],"max_uses":200}`)
	sessionKey, _ := session["key"].(string)
	if sessionKey == "" {
		t.Fatalf("POST /v1/sessions: %v", session)
	}
	target := page.URL + "/index.html?" + url.Values{"api": {stack.URL}, "key": {sessionKey}}.Encode()
	serverDeleted := false
	if err := chromedp.Do(bctx, chromedp.Navigate(target)); err != nil {
		t.Fatalf("navigate: %v", err)
	}
	deadline := time.Now().Add(5 * time.Minute)
	for {
		raw, err := chromedp.Run(bctx, chromedp.Evaluate[string](`JSON.stringify(window.__e2e || {})`))
		if err != nil {
			t.Fatalf("read page state: %v\n%s", err, report())
		}
		json.Unmarshal([]byte(raw), &state)
		if state.Done {
			break
		}
		// The SDK's delete was refused to the session: the server deletes.
		if state.has("deleted") && !serverDeleted {
			puid, _ := state.value("enrolled")["puid"].(string)
			v1(t, "DELETE", stack.URL+"/v1/persons/"+puid, key, "")
			if _, err := chromedp.Run(bctx, chromedp.Evaluate[bool](`window.__serverDeleted = true`)); err != nil {
				t.Fatalf("signal the page: %v", err)
			}
			serverDeleted = true
		}
		if time.Now().After(deadline) {
			t.Fatalf("the SDK did not finish in time\n%s", report())
		}
		time.Sleep(time.Second)
	}
	if state.Error != nil {
		t.Fatalf("the SDK flow failed: %s\n%s", *state.Error, report())
	}
	t.Logf("\n%s", report())

	// What the SDK itself reported.
	enrolled := state.value("enrolled")
	puid, _ := enrolled["puid"].(string)
	if !engine.IsID(puid) {
		t.Fatalf("enroll: the SDK reports puid %q\n%s", puid, report())
	}
	for _, name := range []string{"predicted", "variant-mirror", "variant-rotate", "variant-bright", "variant-crop"} {
		got := state.value(name)
		if got["puid"] != puid || got["guid"] != enrolled["guid"] {
			t.Errorf("%s: the SDK reports puid %v guid %v, want %v %v", name, got["puid"], got["guid"], puid, enrolled["guid"])
		}
	}
	if got := state.value("stranger"); got != nil && got["puid"] == puid {
		t.Errorf("a different face was identified as the enrolled person: %v", got)
	}
	if got := state.value("after-delete"); got == nil || got["puid"] == puid {
		t.Errorf("after delete: the SDK reports %v, want not enrolled", got)
	}

	// What crossed the wire.
	var sawCheck, sawPreflight, sawK2, sawLevel, sawDeleteRefused bool
	for _, x := range rec.all() {
		if strings.HasPrefix(x.Path, "/v1/") {
			continue // the app server's own calls, with the tenant's key
		}
		if strings.Contains(x.Request, key) || strings.Contains(fmt.Sprint(x.Header), key) {
			t.Errorf("%s %s carries the tenant's API key: the page must hold only the session key", x.Method, x.Path)
		}
		if strings.HasSuffix(x.Path, "/deleteUser") && x.Status == http.StatusForbidden {
			sawDeleteRefused = true
		}
		route := x.Path[strings.LastIndex(x.Path, "/")+1:]
		if x.Method == http.MethodOptions {
			sawPreflight = true
			continue
		}
		if route == "checkApiKeyValid" && x.Status == 200 {
			sawCheck = true
		}
		var reply map[string]any
		if err := json.Unmarshal([]byte(x.Response), &reply); err != nil {
			t.Errorf("%s %s: reply is not a JSON object: %.200s", x.Method, x.Path, x.Response)
			continue
		}
		for field := range reply {
			if !slices.Contains(allowed[route], field) {
				t.Errorf("%s reply carries %q, which the SDK rejects", x.Path, field)
			}
		}
		var body map[string]any
		json.Unmarshal([]byte(x.Request), &body)
		if route == "predict" && fmt.Sprint(body["K"]) == "2" {
			sawK2 = true
		}
		// Predicts decide at the server's default security level, and say so.
		if route == "predict" && x.Status == 200 {
			if got := x.ReplyHeader.Get("x-security-level"); got != "high" {
				t.Errorf("predict reply: x-security-level %q, want the default high", got)
			}
			sawLevel = true
		}
	}
	if !sawLevel {
		t.Error("no predict reply to check the security level of")
	}
	if !sawDeleteRefused {
		t.Error("the SDK's deleteUser on a session key was not refused with 403")
	}
	if !sawCheck {
		t.Error("the SDK never checked its API key with us")
	}
	if !sawPreflight {
		t.Error("no CORS preflight reached the API (the page should be cross-origin)")
	}
	if !sawK2 {
		t.Error("no predict request carried K=2")
	}
	reportScores(t, rec.all(), sessionKey)
}

// v1 calls the native API with the tenant's key (as the app's server
// would) and returns the decoded reply (nil for 204).
func v1(t *testing.T, method, url, key, body string) map[string]any {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode >= 300 {
		t.Fatalf("%s %s: %d %s", method, url, resp.StatusCode, raw)
	}
	var m map[string]any
	json.Unmarshal(raw, &m)
	return m
}

// reportScores decrypts the embeddings the SDK sent and logs the cosine
// similarity between the enrolled portrait and each probe: real-model
// score figures (docs/real-model-scores.md).
func reportScores(t *testing.T, xs []exchange, key string) {
	var enrolled []engine.Embedding
	type probe struct {
		n int
		e engine.Embedding
	}
	var probes []probe
	for i, x := range xs {
		if x.Method != http.MethodPost || !(strings.HasSuffix(x.Path, "/enroll") || strings.HasSuffix(x.Path, "/predict")) {
			continue
		}
		var body struct{ Features string }
		json.Unmarshal([]byte(x.Request), &body)
		v, err := crypto.ParseVersion(x.Header.Get("x-encryption-version"))
		if err != nil {
			continue
		}
		plain, err := crypto.Decrypt(v, key, body.Features)
		if err != nil {
			t.Errorf("exchange %d: features do not decrypt: %v", i, err)
			continue
		}
		var f struct {
			EmbeddingVector []float64 `json:"embedding_vector"`
		}
		json.Unmarshal(plain, &f)
		es, err := engine.NewEmbeddings(engine.SplitFrames(f.EmbeddingVector))
		if err != nil {
			t.Errorf("exchange %d: %v", i, err)
			continue
		}
		if strings.HasSuffix(x.Path, "/enroll") {
			enrolled = append(enrolled, es...)
		} else {
			m, err := engine.Mean(es)
			if err != nil {
				t.Errorf("exchange %d: %v", i, err)
				continue
			}
			probes = append(probes, probe{i, m})
		}
	}
	if len(enrolled) == 0 {
		t.Error("no enroll embedding was seen")
		return
	}
	t.Logf("embedding dimension: %d; enrolled templates: %d", len(enrolled[0]), len(enrolled))
	for _, p := range probes {
		best := math.Inf(-1)
		for _, e := range enrolled {
			best = max(best, engine.Cosine(e, p.e))
		}
		t.Logf("predict (exchange %d): cosine to the enrolled portrait %.4f", p.n, best)
	}
}

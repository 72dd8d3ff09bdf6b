package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/biomatch/biomatch/crypto"
)

// captureKey is the api_key the page hands the SDK: the SDK derives its
// payload encryption from it, and the capture server decrypts with it.
const captureKey = "accuracy-capture-key"

// capture serves the page and stands in for biomatch's /node API: it keeps
// the embedding of every enroll or predict the SDK sends and answers
// "not enrolled". Embeddings stay in memory.
type capture struct {
	mu   sync.Mutex
	got  [][]float64
	errs []string
}

func (c *capture) take() ([][]float64, []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	got, errs := c.got, c.errs
	c.got, c.errs = nil, nil
	return got, errs
}

func (c *capture) handler(dist string, log *slog.Logger) http.Handler {
	files := http.FileServer(http.Dir(dist))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		log.Debug("capture", "method", r.Method, "path", r.URL.Path)
		if r.Method != http.MethodPost {
			w.Header().Set("Cross-Origin-Opener-Policy", "same-origin")
			w.Header().Set("Cross-Origin-Embedder-Policy", "require-corp")
			files.ServeHTTP(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		switch {
		case strings.HasSuffix(r.URL.Path, "/checkApiKeyValid"):
			io.WriteString(w, `{"message":"API Key is valid","status":0}`)
		case strings.HasSuffix(r.URL.Path, "/predict") || strings.HasSuffix(r.URL.Path, "/enroll"):
			v, err := c.open(r)
			c.mu.Lock()
			if err != nil {
				c.errs = append(c.errs, fmt.Sprintf("%s: %v", r.URL.Path, err))
			} else {
				c.got = append(c.got, v)
			}
			c.mu.Unlock()
			io.WriteString(w, `{"status":-1,"message":"User not enrolled","puid":"-1","guid":"-1","score":-1}`)
		default:
			io.WriteString(w, `{"status":0,"message":"Success"}`)
		}
	})
}

// open decrypts the request's features (COMPAT.md) and returns the vector.
func (c *capture) open(r *http.Request) ([]float64, error) {
	var body struct {
		APIKey   string `json:"api_key"`
		Features string `json:"features"`
	}
	if err := json.NewDecoder(io.LimitReader(r.Body, 256<<20)).Decode(&body); err != nil {
		return nil, fmt.Errorf("body: %w", err)
	}
	v, err := crypto.ParseVersion(r.Header.Get("x-encryption-version"))
	if err != nil {
		return nil, err
	}
	plain, err := crypto.Decrypt(v, body.APIKey, body.Features)
	if err != nil {
		return nil, fmt.Errorf("decrypt: %w", err)
	}
	var f struct {
		EmbeddingVector []float64 `json:"embedding_vector"`
	}
	if err := json.Unmarshal(plain, &f); err != nil {
		return nil, fmt.Errorf("features: %w", err)
	}
	if len(f.EmbeddingVector) == 0 {
		return nil, fmt.Errorf("features hold no embedding_vector")
	}
	return f.EmbeddingVector, nil
}

// image is one picture to embed: a portrait file under dist and a variant
// of page/augment.js.
type image struct {
	Identity string `json:"identity"`
	Variant  string `json:"variant"`
}

// embedder drives one SDK version in headless Chromium.
type embedder struct {
	sdk    string // "v3" or "v4": the page under dist
	cap    *capture
	ctx    context.Context
	cancel func()
	log    *slog.Logger
}

func startEmbedder(ctx context.Context, dist, sdk, userDir string, verbose bool, log *slog.Logger) (*embedder, error) {
	chromium, err := exec.LookPath("chromium")
	if err != nil {
		return nil, fmt.Errorf("chromium is not installed: run bench/accuracy/setup.sh (make accuracy does)")
	}
	c := &capture{}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	srv := &http.Server{Handler: c.handler(dist, log), ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	base := "http://" + ln.Addr().String()

	opts := append(slices.Clone(chromedp.DefaultExecAllocatorOptions[:]),
		chromedp.ExecPath(chromium), chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true), chromedp.Flag("disable-quic", true), chromedp.UserDataDir(userDir))
	actx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	bctx, cancelBrowser := chromedp.NewContext(actx)
	e := &embedder{sdk: sdk, cap: c, ctx: bctx, log: log, cancel: func() {
		cancelBrowser()
		cancelAlloc()
		srv.Close()
	}}
	if verbose {
		chromedp.Listen(bctx, func(ev any) {
			switch ev := ev.(type) {
			case *runtime.EventConsoleAPICalled:
				var parts []string
				for _, a := range ev.Args {
					parts = append(parts, strings.Trim(string(a.Value), `"`))
				}
				log.Debug("page console", "type", ev.Type, "text", fmt.Sprintf("%.300s", strings.Join(parts, " ")))
			case *runtime.EventExceptionThrown:
				log.Debug("page exception", "text", ev.ExceptionDetails.Text, "exception", fmt.Sprintf("%.300v", ev.ExceptionDetails.Exception))
			}
		})
	}
	target := base + "/" + sdk + "/index.html?" + url.Values{"api": {base}, "key": {captureKey}, "debug_type": {debugType(verbose)}}.Encode()
	if err := chromedp.Do(bctx, chromedp.Navigate(target)); err != nil {
		e.cancel()
		return nil, fmt.Errorf("navigate: %w", err)
	}
	deadline := time.Now().Add(3 * time.Minute)
	for {
		state, err := chromedp.Run(bctx, chromedp.Evaluate[string](
			`window.__loadError ? "error: " + window.__loadError : (window.__ready ? "ready" : "loading")`))
		if err != nil {
			e.cancel()
			return nil, fmt.Errorf("read page state: %w", err)
		}
		if state == "ready" {
			return e, nil
		}
		if strings.HasPrefix(state, "error") || time.Now().After(deadline) {
			e.cancel()
			return nil, fmt.Errorf("SDK %s did not load: %s", sdk, state)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// embed runs the SDK's predict on one image and returns the embedding it
// sent, or nil and the SDK's last answer when it sent none (no face found).
func (e *embedder) embed(img image) ([]float64, string, error) {
	e.cap.take()
	expr := fmt.Sprintf(`window.__embed(%q, %q)`, "/faces/"+img.Identity, img.Variant)
	ctx, cancel := context.WithTimeout(e.ctx, 60*time.Second)
	defer cancel()
	last, err := chromedp.Run(ctx, chromedp.Evaluate[string](expr, chromedp.EvalAwaitPromise))
	if err != nil {
		return nil, "", fmt.Errorf("%s %s: %w", img.Identity, img.Variant, err)
	}
	got, errs := e.cap.take()
	if len(errs) > 0 {
		return nil, last, fmt.Errorf("%s %s: %s", img.Identity, img.Variant, errs[0])
	}
	if len(got) == 0 {
		return nil, last, nil
	}
	return got[0], last, nil
}

func (e *embedder) close() { e.cancel() }

// debugType is the SDKs' own log switch (their debug_type URL parameter).
func debugType(verbose bool) string {
	if verbose {
		return "1"
	}
	return "0"
}

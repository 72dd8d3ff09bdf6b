package httpapi

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
)

// TestSearchTurns: searches beyond the bound wait for a turn in order and
// are let in when one frees; one that waits longer than its wait is refused
// 503 with Retry-After and a message, without reaching the handler (for
// /node a CryptoNets reply, for /v1 a problem); a client sending its body
// slowly holds no turn; a body over the limit still reaches the handler's
// 413.
func TestSearchTurns(t *testing.T) {
	gin.SetMode(gin.ReleaseMode)
	type server struct {
		url     string
		entered chan struct{} // one per request let in
		release chan struct{} // one per request to finish
		calls   atomic.Int64
	}
	start := func(turns *searchTurns, mw gin.HandlerFunc) *server {
		s := &server{entered: make(chan struct{}, 16), release: make(chan struct{}, 16)}
		r := gin.New()
		r.Use(limitBody(1000))
		r.POST("/search", mw, func(c *gin.Context) {
			body, err := readBody(c) // what searchTurns read
			var tooBig *http.MaxBytesError
			if errors.As(err, &tooBig) {
				c.String(http.StatusRequestEntityTooLarge, "too large")
				return
			}
			if err != nil {
				c.String(http.StatusBadRequest, "could not read the body")
				return
			}
			s.calls.Add(1)
			s.entered <- struct{}{}
			if string(body) != "hold" {
				<-s.release
			}
			c.String(http.StatusOK, "answered "+string(body))
		})
		ts := httptest.NewServer(r)
		t.Cleanup(ts.Close)
		s.url = ts.URL + "/search"
		return s
	}
	post := func(url, body string) (*http.Response, string) {
		resp, err := http.Post(url, "application/json", strings.NewReader(body))
		if err != nil {
			t.Error(err)
			return nil, ""
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
	within := func(ch <-chan struct{}, d time.Duration) bool {
		select {
		case <-ch:
			return true
		case <-time.After(d):
			return false
		}
	}

	t.Run("refused past its wait", func(t *testing.T) {
		for _, v := range []struct {
			name string
			mw   func(*searchTurns) gin.HandlerFunc
			want string
		}{
			{"node", (*searchTurns).node, `"status":-1`},
			{"v1", (*searchTurns).v1, `"status":503`},
		} {
			turns := newSearchTurns(2, 100*time.Millisecond)
			s := start(turns, v.mw(turns))
			done := make(chan struct{}, 2)
			for i := range 2 {
				go func() { post(s.url, fmt.Sprint("held ", i)); done <- struct{}{} }()
			}
			for range 2 {
				if !within(s.entered, 5*time.Second) {
					t.Fatalf("%s: two searches under a bound of two were not both let in", v.name)
				}
			}
			began := time.Now()
			resp, body := post(s.url, "third")
			if resp == nil {
				continue
			}
			if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") != "1" ||
				!strings.Contains(body, "server busy") || !strings.Contains(body, v.want) {
				t.Errorf("%s: third search answered %d (Retry-After %q) %s, want 503, Retry-After 1, server busy, %s",
					v.name, resp.StatusCode, resp.Header.Get("Retry-After"), body, v.want)
			}
			if waited := time.Since(began); waited < 100*time.Millisecond {
				t.Errorf("%s: refused after %s, before its wait of 100ms", v.name, waited)
			}
			if n := s.calls.Load(); n != 2 {
				t.Errorf("%s: the handler ran %d times, want 2: a refused search reached it", v.name, n)
			}
			s.release <- struct{}{}
			s.release <- struct{}{}
			<-done
			<-done
		}
	})

	t.Run("let in when a turn frees", func(t *testing.T) {
		turns := newSearchTurns(1, time.Minute)
		s := start(turns, turns.node())
		go post(s.url, "first")
		if !within(s.entered, 5*time.Second) {
			t.Fatal("the first search was not let in")
		}
		second := make(chan string, 1)
		go func() { _, body := post(s.url, "second"); second <- body }()
		if within(s.entered, 200*time.Millisecond) {
			t.Fatal("a second search was let in while the only turn was held")
		}
		s.release <- struct{}{}
		if !within(s.entered, 5*time.Second) {
			t.Fatal("the second search was not let in when the turn freed")
		}
		s.release <- struct{}{}
		if got := <-second; got != "answered second" {
			t.Errorf("second search answered %q", got)
		}
	})

	t.Run("a slow body holds no turn", func(t *testing.T) {
		turns := newSearchTurns(1, 100*time.Millisecond)
		s := start(turns, turns.node())
		conn, err := net.Dial("tcp", strings.TrimPrefix(strings.TrimSuffix(s.url, "/search"), "http://"))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		fmt.Fprintf(conn, "POST /search HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nhalf a body")
		time.Sleep(50 * time.Millisecond) // the slow request is in the server, reading
		resp, body := post(s.url, "hold")
		if resp != nil && (resp.StatusCode != http.StatusOK || body != "answered hold") {
			t.Errorf("with a body arriving slowly elsewhere, a search answered %d %q, want 200", resp.StatusCode, body)
		}
	})

	t.Run("a body over the limit is still 413", func(t *testing.T) {
		turns := newSearchTurns(1, 100*time.Millisecond)
		s := start(turns, turns.node())
		resp, _ := post(s.url, strings.Repeat("x", 2000))
		if resp != nil && resp.StatusCode != http.StatusRequestEntityTooLarge {
			t.Errorf("a body over the limit answered %d, want 413", resp.StatusCode)
		}
	})

	t.Run("no bound", func(t *testing.T) {
		if newSearchTurns(0, time.Second) != nil {
			t.Error("MAX_SEARCHES=0 made a bound")
		}
		var none *searchTurns
		s := start(none, none.node())
		resp, body := post(s.url, "hold")
		if resp != nil && body != "answered hold" {
			t.Errorf("without a bound, a search answered %d %q", resp.StatusCode, body)
		}
	})
}

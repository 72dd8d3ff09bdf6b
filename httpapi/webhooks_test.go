package httpapi_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/biomatch/biomatch/internal/synth"
)

// receiver is a real webhook endpoint: it checks every signature, answers
// 500 to the first two tries of the first delivery it sees, then 200.
type receiver struct {
	mu       sync.Mutex
	secret   string
	tries    map[string]int    // delivery id → tries
	events   map[string]string // delivery id → event
	bodies   []string
	badSig   int
	failing  string // the delivery answered 500 twice
	received chan struct{}
}

func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	r.mu.Lock()
	defer r.mu.Unlock()
	sig := req.Header.Get("Biomatch-Signature")
	ts, v1, _ := strings.Cut(strings.TrimPrefix(sig, "t="), ",v1=")
	mac := hmac.New(sha256.New, []byte(r.secret))
	mac.Write([]byte(ts + "."))
	mac.Write(body)
	sec, _ := strconv.ParseInt(ts, 10, 64)
	if !hmac.Equal([]byte(v1), []byte(hex.EncodeToString(mac.Sum(nil)))) || time.Since(time.Unix(sec, 0)) > 5*time.Minute {
		r.badSig++
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	id := req.Header.Get("Biomatch-Delivery")
	r.tries[id]++
	if r.failing == "" {
		r.failing = id
	}
	if id == r.failing && r.tries[id] <= 2 {
		w.WriteHeader(http.StatusInternalServerError)
		return
	}
	if r.tries[id] == 1 || (id == r.failing && r.tries[id] == 3) {
		r.events[id] = req.Header.Get("Biomatch-Event")
		r.bodies = append(r.bodies, string(body))
		r.received <- struct{}{}
	}
}

// TestWebhooks: a tenant registers a real receiver; an enroll that
// completes, one that fails and a delete each reach it once, signed; the
// first delivery is answered 500 twice and delivered on the third try; the
// deliveries list shows every attempt; no payload carries a template.
func TestWebhooks(t *testing.T) {
	h := newHarnessWith(t, options{env: map[string]string{"WEBHOOK_ALLOW_PRIVATE": "true", "WEBHOOK_RETRY_BASE": "100ms"}})
	key, other := h.newKey("acme"), h.newKey("globex")
	rcv := &receiver{tries: map[string]int{}, events: map[string]string{}, received: make(chan struct{}, 16)}
	srv := httptest.NewServer(rcv)
	defer srv.Close()

	s, hook, _ := h.v1("POST", "/v1/webhooks", key, map[string]any{"url": srv.URL + "/hook",
		"events": []string{"enrollment.completed", "enrollment.failed", "person.deleted"}})
	if s != 201 || !strings.HasPrefix(hook["secret"].(string), "whsec_") {
		t.Fatalf("register: %d %v", s, hook)
	}
	rcv.mu.Lock()
	rcv.secret = hook["secret"].(string)
	rcv.mu.Unlock()
	if _, list, _ := h.v1("GET", "/v1/webhooks", key, nil); len(list["webhooks"].([]any)) != 1 || list["webhooks"].([]any)[0].(map[string]any)["secret"] != nil {
		t.Errorf("list: %v, want one webhook, without its secret", list)
	}

	alice := floats(synth.Vector(512, 901, 0, 0))
	_, e, _ := h.v1("POST", "/v1/galleries/FACE3_1/persons", key, map[string]any{"embedding": alice, "user_identifier": "alice"})
	puid := e["person"].(map[string]any)["puid"].(string)
	h.v1("POST", "/v1/galleries/FACE3_1/persons", key, map[string]any{"embedding": floats(synth.Vector(512, 902, 0, 0)), "user_identifier": "alice"})
	h.v1("DELETE", "/v1/persons/"+puid, key, nil)

	for range 3 {
		select {
		case <-rcv.received:
		case <-time.After(30 * time.Second):
			rcv.mu.Lock()
			t.Fatalf("deliveries did not arrive: tries %v, events %v", rcv.tries, rcv.events)
		}
	}
	rcv.mu.Lock()
	got := map[string]int{}
	for _, ev := range rcv.events {
		got[ev]++
	}
	if got["enrollment.completed"] != 1 || got["enrollment.failed"] != 1 || got["person.deleted"] != 1 || rcv.badSig != 0 {
		t.Errorf("events %v (bad signatures %d), want one of each", got, rcv.badSig)
	}
	if rcv.tries[rcv.failing] != 3 {
		t.Errorf("the first delivery was tried %d times, want 3 (500, 500, 200)", rcv.tries[rcv.failing])
	}
	for _, b := range rcv.bodies {
		var env struct {
			ID, Type string
			Data     map[string]any
		}
		if err := json.Unmarshal([]byte(b), &env); err != nil || env.ID == "" || env.Type == "" || env.Data == nil {
			t.Errorf("delivery body %s", b)
		}
		if strings.Contains(b, "embedding") || len(b) > 2000 {
			t.Errorf("a delivery carries more than ids and outcomes: %.300s", b)
		}
	}
	failing := rcv.failing
	rcv.mu.Unlock()

	// The worker records an attempt after the receiver answered it.
	var ds map[string]any
	eventually(t, "three deliveries recorded as delivered", func() bool {
		var s int
		s, ds, _ = h.v1("GET", "/v1/webhooks/"+hook["id"].(string)+"/deliveries", key, nil)
		if s != 200 || len(ds["deliveries"].([]any)) != 3 {
			return false
		}
		for _, d := range ds["deliveries"].([]any) {
			if d.(map[string]any)["state"] != "delivered" {
				return false
			}
		}
		return true
	})
	for _, d := range ds["deliveries"].([]any) {
		d := d.(map[string]any)
		attempts := d["attempts"].([]any)
		if d["state"] != "delivered" || d["delivered_at"] == nil {
			t.Errorf("delivery %v, want delivered", d)
		}
		if d["id"] == failing {
			var statuses []float64
			for _, a := range attempts {
				statuses = append(statuses, a.(map[string]any)["status"].(float64))
			}
			if len(statuses) != 3 || statuses[0] != 500 || statuses[1] != 500 || statuses[2] != 200 {
				t.Errorf("the retried delivery's attempts: %v, want 500, 500, 200", statuses)
			}
		}
	}
	if s, _, _ := h.v1("GET", "/v1/webhooks/"+hook["id"].(string)+"/deliveries", other, nil); s != 404 {
		t.Errorf("another tenant reading the deliveries: %d", s)
	}
	if s, _, _ := h.v1("DELETE", "/v1/webhooks/"+hook["id"].(string), other, nil); s != 404 {
		t.Errorf("another tenant deleting the webhook: %d", s)
	}
	if s, _, _ := h.v1("DELETE", "/v1/webhooks/"+hook["id"].(string), key, nil); s != 204 {
		t.Errorf("delete the webhook: %d", s)
	}
}

// TestWebhookDestinations: by default a webhook must be https on a public
// address: loopback, private and metadata addresses, plain http and odd
// URLs are refused at registration (and nothing is stored).
func TestWebhookDestinations(t *testing.T) {
	h := newHarness(t)
	key := h.newKey("acme")
	for _, u := range []string{"http://93.184.216.34/hook", "https://127.0.0.1/hook", "https://localhost:8443/",
		"https://10.0.0.7/hook", "https://169.254.169.254/latest/meta-data/", "https://[::1]/", "ftp://93.184.216.34/",
		"https://user:pw@93.184.216.34/", "not a url"} {
		if s, m, _ := h.v1("POST", "/v1/webhooks", key, map[string]any{"url": u, "events": []string{"person.deleted"}}); s != 400 || !strings.Contains(m["detail"].(string), "url") {
			t.Errorf("%s: %d %v, want 400 about the url", u, s, m)
		}
	}
	for name, body := range map[string]any{
		"no events":     map[string]any{"url": "https://93.184.216.34/hook"},
		"unknown event": map[string]any{"url": "https://93.184.216.34/hook", "events": []string{"person.created"}},
		"unknown field": map[string]any{"url": "https://93.184.216.34/hook", "events": []string{"person.deleted"}, "secret": "mine"},
	} {
		if s, _, _ := h.v1("POST", "/v1/webhooks", key, body); s != 400 {
			t.Errorf("%s: %d, want 400", name, s)
		}
	}
	if s, m, _ := h.v1("POST", "/v1/webhooks", key, map[string]any{"url": "https://93.184.216.34/hook", "events": []string{"person.deleted"}}); s != 201 {
		t.Errorf("a public https URL: %d %v", s, m)
	}
	if n := h.count("webhooks"); n != 1 {
		t.Errorf("%d webhooks stored, want only the good one", n)
	}
}

package webhook

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// TestCheckURL: only https on a public address, unless private
// destinations are allowed (then plain http too).
func TestCheckURL(t *testing.T) {
	ctx := context.Background()
	refused := []string{
		"http://93.184.216.34/hook", "ftp://93.184.216.34/", "https://user:pw@93.184.216.34/", "/relative",
		"https://127.0.0.1/hook", "https://localhost/hook", "https://[::1]/hook", "https://10.1.2.3/",
		"https://192.168.0.10/", "https://172.16.5.5/", "https://169.254.169.254/latest/meta-data",
		"https://100.64.0.1/", "https://0.0.0.0/", "https://[::ffff:127.0.0.1]/", "https://[fe80::1]/",
		"https://[fc00::1]/", "https://224.0.0.1/", "https://no-such-host.invalid/", "https://93.184.216.34/#frag",
	}
	for _, u := range refused {
		if err := (Policy{}).CheckURL(ctx, u); !errors.Is(err, ErrDestination) {
			t.Errorf("%s: %v, want refused", u, err)
		}
	}
	if err := (Policy{}).CheckURL(ctx, "https://93.184.216.34/hook"); err != nil {
		t.Errorf("a public https URL: %v", err)
	}
	for _, u := range []string{"http://127.0.0.1:8080/hook", "https://10.1.2.3/"} {
		if err := (Policy{AllowPrivate: true}).CheckURL(ctx, u); err != nil {
			t.Errorf("%s with private destinations allowed: %v", u, err)
		}
	}
}

// TestClientRefusesPrivateAddresses: the check holds on the address
// actually dialled, whatever the URL passed at registration.
func TestClientRefusesPrivateAddresses(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer srv.Close()
	d := Delivery{ID: "d1", Event: "person.deleted", URL: srv.URL, Secret: "s", Body: []byte(`{}`)}
	if _, err := Send(context.Background(), (Policy{}).Client(), d, time.Now()); !errors.Is(err, ErrDestination) {
		t.Errorf("delivery to %s: %v, want refused", srv.URL, err)
	}
	if status, err := Send(context.Background(), (Policy{AllowPrivate: true}).Client(), d, time.Now()); err != nil || status != 200 {
		t.Errorf("allowed: %d %v", status, err)
	}
}

// TestSignature: t=…,v1=HMAC-SHA256(secret, "t.body") in hex, which a
// receiver can recompute.
func TestSignature(t *testing.T) {
	at := time.Unix(1_700_000_000, 0)
	sig := Sign("whsec_test", at, []byte(`{"a":1}`))
	ts, v1, ok := strings.Cut(sig, ",v1=")
	mac := hmac.New(sha256.New, []byte("whsec_test"))
	mac.Write([]byte("1700000000." + `{"a":1}`))
	if !ok || ts != "t=1700000000" || v1 != hex.EncodeToString(mac.Sum(nil)) {
		t.Errorf("signature %q", sig)
	}
	if Sign("other", at, []byte(`{"a":1}`)) == sig || Sign("whsec_test", at, []byte(`{"a":2}`)) == sig {
		t.Error("the signature does not depend on the secret and the body")
	}
}

// Package webhook signs and sends webhook deliveries and keeps them off the
// operator's own network: destinations must be https on a public address
// unless the operator allows private ones (server-side request forgery).
// It knows nothing of storage or queues.
package webhook

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"syscall"
	"time"
)

// Events are what a webhook may subscribe to.
var Events = []string{"enrollment.completed", "enrollment.failed", "person.deleted"}

// Headers of a delivery.
const (
	HeaderSignature = "Biomatch-Signature" // t=<unix seconds>,v1=<hex HMAC-SHA256 of "t.body">
	HeaderDelivery  = "Biomatch-Delivery"  // the delivery id: the receiver's idempotency key
	HeaderEvent     = "Biomatch-Event"
)

// ErrDestination: the URL is not one biomatch may call.
var ErrDestination = errors.New("webhook destination refused")

// NewSecret returns a random signing secret.
func NewSecret() string {
	b := make([]byte, 32)
	rand.Read(b)
	return "whsec_" + hex.EncodeToString(b)
}

// Sign returns the signature header of body sent at t, in the style of
// Stripe's: the receiver recomputes HMAC-SHA256(secret, "<t>.<body>") and
// refuses old timestamps (replays).
func Sign(secret string, t time.Time, body []byte) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(ts + "."))
	mac.Write(body)
	return "t=" + ts + ",v1=" + hex.EncodeToString(mac.Sum(nil))
}

// Policy says which destinations are allowed.
type Policy struct {
	// AllowPrivate lets deliveries go to loopback, private and link-local
	// addresses, over plain http too (development, tests, an internal
	// receiver the operator trusts).
	AllowPrivate bool
}

// CheckURL refuses a URL that is not absolute https (http too when private
// destinations are allowed), or whose host is, or resolves to, a private,
// loopback, link-local or otherwise internal address.
func (p Policy) CheckURL(ctx context.Context, raw string) error {
	u, err := url.Parse(raw)
	switch {
	case err != nil || u.Host == "" || u.User != nil || u.Fragment != "":
		return fmt.Errorf("%w: want an absolute https URL without credentials or fragment", ErrDestination)
	case u.Scheme != "https" && !(p.AllowPrivate && u.Scheme == "http"):
		return fmt.Errorf("%w: the URL must be https", ErrDestination)
	case len(raw) > 2048:
		return fmt.Errorf("%w: the URL is longer than 2048 characters", ErrDestination)
	}
	if p.AllowPrivate {
		return nil
	}
	host := u.Hostname()
	if addr, err := netip.ParseAddr(host); err == nil {
		return checkAddr(addr)
	}
	addrs, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
	if err != nil || len(addrs) == 0 {
		return fmt.Errorf("%w: the host %q does not resolve", ErrDestination, host)
	}
	for _, a := range addrs {
		if err := checkAddr(a); err != nil {
			return err
		}
	}
	return nil
}

// internal are ranges that are not the public internet beyond the
// standard library's predicates: carrier-grade NAT, benchmarking, the
// 6to4/Teredo relays, and IPv4-mapped forms (unmapped first).
var internal = []netip.Prefix{
	netip.MustParsePrefix("100.64.0.0/10"), netip.MustParsePrefix("198.18.0.0/15"),
	netip.MustParsePrefix("192.0.0.0/24"), netip.MustParsePrefix("0.0.0.0/8"),
	netip.MustParsePrefix("240.0.0.0/4"), netip.MustParsePrefix("64:ff9b:1::/48"),
	netip.MustParsePrefix("2002::/16"), netip.MustParsePrefix("2001::/32"),
}

func checkAddr(a netip.Addr) error {
	a = a.Unmap()
	if a.IsLoopback() || a.IsPrivate() || a.IsLinkLocalUnicast() || a.IsLinkLocalMulticast() ||
		a.IsInterfaceLocalMulticast() || a.IsMulticast() || a.IsUnspecified() ||
		slices.ContainsFunc(internal, func(p netip.Prefix) bool { return p.Contains(a) }) {
		return fmt.Errorf("%w: %s is a loopback, private or internal address", ErrDestination, a)
	}
	return nil
}

// Client returns the HTTP client of deliveries: it dials only addresses the
// policy allows (checked on the resolved address, so DNS cannot point a
// public name inside later), follows no redirect and gives up after 10 s.
func (p Policy) Client() *http.Client {
	dialer := &net.Dialer{Timeout: 5 * time.Second, Control: func(_, address string, _ syscall.RawConn) error {
		if p.AllowPrivate {
			return nil
		}
		ap, err := netip.ParseAddrPort(address)
		if err != nil {
			return fmt.Errorf("%w: %v", ErrDestination, err)
		}
		return checkAddr(ap.Addr())
	}}
	return &http.Client{
		Timeout:       10 * time.Second,
		Transport:     &http.Transport{DialContext: dialer.DialContext, Proxy: nil, MaxIdleConnsPerHost: 4},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// Delivery is one event to send.
type Delivery struct {
	ID, Event, URL, Secret string
	Body                   []byte
}

// Send posts d, signed, and returns the HTTP status (0 when none came). A
// non-2xx status is an error, so the caller retries.
func Send(ctx context.Context, c *http.Client, d Delivery, now time.Time) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, d.URL, bytes.NewReader(d.Body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "biomatch-webhooks/1")
	req.Header.Set(HeaderSignature, Sign(d.Secret, now, d.Body))
	req.Header.Set(HeaderDelivery, d.ID)
	req.Header.Set(HeaderEvent, d.Event)
	resp, err := c.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return resp.StatusCode, fmt.Errorf("the receiver answered %d", resp.StatusCode)
	}
	return resp.StatusCode, nil
}

// Endpoint is a tenant's registered webhook. Secret is empty when listed
// (it is shown once, at registration).
type Endpoint struct {
	ID        string
	Tenant    string
	URL       string
	Events    []string
	Secret    string
	CreatedAt time.Time
}

// Record is a delivery as stored, with its attempts.
type Record struct {
	ID          string
	Event       string
	State       string // pending, delivered, failed
	Attempts    []Attempt
	CreatedAt   time.Time
	DeliveredAt *time.Time
}

// Attempt is one try of a delivery.
type Attempt struct {
	N        int
	At       time.Time
	Status   int    // 0: no HTTP answer
	Error    string // "" when delivered
	Duration time.Duration
}

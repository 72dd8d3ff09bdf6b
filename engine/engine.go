// Package engine is the domain of biomatch: galleries, persons, templates,
// probes, candidates, thresholds, validation, the dedup rule, and the Service
// that enrolls, identifies, verifies and deletes.
//
// It declares the small interfaces it calls (Store, Index, Follower, Jobs)
// and imports no transport, storage or queue library: those live in
// httpapi, postgres, vectorstore and queue. Its rules have tests of their
// own on an in-memory Store (memstore_test.go).
package engine

import (
	"cmp"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"
)

// Sentinel errors. Implementations wrap them so callers can map them to
// statuses with errors.Is.
var (
	// ErrInvalid: the caller sent something unusable; the message says what.
	ErrInvalid = errors.New("invalid input")
	// ErrNotFound: the person, request or key does not exist (for this tenant).
	ErrNotFound = errors.New("not found")
	// ErrConflict: the request collides with existing state.
	ErrConflict = errors.New("conflict")
	// ErrRejected: an enrollment whose embeddings disagree (CryptoNets 152).
	ErrRejected = errors.New("enrollment rejected")
	// ErrUnavailable: a dependency (database, queue) is down; retry later.
	ErrUnavailable = errors.New("service unavailable")
	// ErrForbidden: the caller's key does not allow what it asked for.
	ErrForbidden = errors.New("forbidden")
)

// Gallery is the unit of search: one tenant's templates of one version.
// Templates of different galleries are never compared.
type Gallery struct {
	Tenant  string
	Version string
}

func (g Gallery) String() string { return g.Tenant + "/" + g.Version }

// Person is an enrolled identity.
type Person struct {
	ID          int64
	Gallery     Gallery
	PUID        string
	GUID        string
	ExternalID  string // the client's user_identifier, "" if none
	EnrollLevel int    // how many templates the person holds
	CreatedAt   time.Time
}

// Embedding is one L2-normalised biometric template. It is sensitive: it
// formats and logs as its length only.
type Embedding []float32

// String hides the values.
func (e Embedding) String() string { return fmt.Sprintf("Embedding[%d]", len(e)) }

// LogValue hides the values from slog.
func (e Embedding) LogValue() slog.Value { return slog.StringValue(e.String()) }

// Match is one template found by an Index.
type Match struct {
	PersonID   int64
	TemplateID int64
	Score      float64 // cosine similarity in [-1, 1]
}

// Candidate is a person returned by Identify or Verify.
type Candidate struct {
	Person Person
	Score  float64 // cosine similarity, rounded to 4 decimals
}

// Thresholds are bare cosine-similarity cut-offs of one version, set by an
// operator who insists; without them decisions follow security Levels.
type Thresholds struct {
	Match float64 // identify/verify: candidates at or above it are matches
	Dedup float64 // enroll: a probe at or above it is an existing person
}

// Config tunes the Service.
type Config struct {
	// Levels decide thresholds from security levels (the default).
	Levels Levels
	// Default, when not nil, replaces the levels of every version without
	// an entry in PerVersion with bare thresholds; PerVersion does so for
	// its versions. Zero thresholds are honoured as set.
	Default               *Thresholds
	PerVersion            map[string]Thresholds
	MaxTemplatesPerPerson int           // default 5
	EnrollWait            time.Duration // how long SubmitEnroll waits for the worker; default 4 s (the SDKs give up at 5 s)
	PollInterval          time.Duration // how often it looks at first (then less often); default 25 ms
	// EnrollBatch is how many pending enrolls of one gallery one decision
	// takes on: the one asked for and those waiting beside it; default 64.
	EnrollBatch int
}

func (c Config) withDefaults() Config {
	if c.MaxTemplatesPerPerson <= 0 {
		c.MaxTemplatesPerPerson = 5
	}
	if c.EnrollWait <= 0 {
		c.EnrollWait = 4 * time.Second
	}
	if c.EnrollBatch <= 0 {
		c.EnrollBatch = 64
	}
	if c.PollInterval <= 0 {
		c.PollInterval = 25 * time.Millisecond
	}
	return c
}

// CompareMatches orders matches by descending score, then ascending template
// id: the order every Index returns.
func CompareMatches(a, b Match) int {
	switch {
	case a.Score > b.Score:
		return -1
	case a.Score < b.Score:
		return 1
	}
	return cmp.Compare(a.TemplateID, b.TemplateID)
}

// AtLeast returns the leading matches of ms (in CompareMatches order)
// that score at least min.
func AtLeast(ms []Match, min float64) []Match {
	for len(ms) > 0 && ms[len(ms)-1].Score < min {
		ms = ms[:len(ms)-1]
	}
	return ms
}

// Key is an API key's record, never the key itself: who is calling, for
// which tenant, under which policy.
type Key struct {
	ID          string
	Prefix      string // the display prefix of the clear key (not secret)
	CustomerID  string // the tenant
	APIID       string
	UsagePlanID string
	ProductCode string
	Status      string // active, inactive, revoked
	// MinEncryption is the lowest x-encryption-version the key may use
	// (3: only biomatch's authenticated version).
	MinEncryption int
	// SecurityLevel is the level of the key's match decisions, and the
	// laxest it may ask for ("": the server's level for the version).
	SecurityLevel string
	CreatedAt     time.Time
	UpdatedAt     time.Time
	// Session is set when the caller holds a short-lived session key minted
	// for this (parent) key: it may do only what the session allows.
	Session *Session
	// TokenExpires is set when the caller holds an OAuth2 access token
	// issued to this key: it works on /v1 until then.
	TokenExpires *time.Time
}

// Session is the scope of a short-lived session key.
type Session struct {
	ID             string
	Operations     []string // of SessionOperations
	UserIdentifier string   // when set, the only person the session may enroll or match
	UsesLeft       int
	ExpiresAt      time.Time
}

// SessionOptions scope a new session key.
type SessionOptions struct {
	Operations     []string      // of SessionOperations; at least one
	UserIdentifier string        // optional: the only person it may enroll or match
	MaxUses        int           // how many requests it may make
	TTL            time.Duration // how long it lives
}

// SessionOperations are what a session key may be allowed: never delete.
var SessionOperations = []string{"enroll", "predict"}

// Allows reports whether the session may do op.
func (s *Session) Allows(op string) bool { return slices.Contains(s.Operations, op) }

// Active reports whether the key may be used.
func (k Key) Active() bool { return k.Status == "active" }

// Package keys manages API keys: creation, import, listing, revocation and
// authentication. A key is stored only as its SHA-256 hash and a short
// display prefix; the clear key is shown once, at creation.
package keys

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/biomatch/biomatch/crypto"
	"github.com/biomatch/biomatch/engine"
)

// Key is an API key's record, never the key itself.
type Key struct {
	ID          string
	Prefix      string
	CustomerID  string // the tenant
	APIID       string
	UsagePlanID string
	ProductCode string
	Status      string // active, inactive, revoked
	// MinEncryption is the lowest x-encryption-version the key may use
	// (3: only biomatch's authenticated version).
	MinEncryption int
	CreatedAt     time.Time
	UpdatedAt     time.Time
}

// Active reports whether the key may be used.
func (k Key) Active() bool { return k.Status == "active" }

// Store keeps keys in PostgreSQL and caches authentications for CacheTTL, so
// a revocation takes effect on every replica within CacheTTL.
type Store struct {
	pool     *pgxpool.Pool
	cacheTTL time.Duration
	master   []byte // seals v3 secrets; nil: keys get none

	mu    sync.Mutex
	cache map[string]cached // by hex of the key's hash
}

type cached struct {
	key    Key
	err    error
	secret []byte // v3 lookups
	at     time.Time
}

// CacheTTL is how long an authentication result is reused.
const CacheTTL = 5 * time.Second

// NewStore returns a Store over a migrated pool. With a 32-byte master key,
// keys created or imported get a sealed v3 secret.
func NewStore(pool *pgxpool.Pool, master []byte) *Store {
	return &Store{pool: pool, cacheTTL: CacheTTL, master: master, cache: map[string]cached{}}
}

// NewOptions are the CryptoNets fields of a new key.
type NewOptions struct {
	CustomerID    string
	APIID         string
	UsagePlanID   string
	ProductCode   string
	MinEncryption int // 0 or 1: any version; 3: v3 only (needs a master key)
}

// Create makes a new random key for a customer and returns the clear key
// (shown once) and its record.
func (s *Store) Create(ctx context.Context, o NewOptions) (string, Key, error) {
	secret := crypto.NewAPIKey()
	k, err := s.Import(ctx, secret, o)
	return secret, k, err
}

// Import stores an existing clear key (e.g. one a CryptoNets client already
// holds) for a customer. A key already stored returns ErrConflict.
func (s *Store) Import(ctx context.Context, secret string, o NewOptions) (Key, error) {
	if o.CustomerID == "" {
		return Key{}, fmt.Errorf("%w: a key needs a customer", engine.ErrInvalid)
	}
	if len(secret) < 16 {
		return Key{}, fmt.Errorf("%w: a key must have at least 16 characters", engine.ErrInvalid)
	}
	k := Key{ID: newUUID(), Prefix: crypto.KeyPrefix(secret), CustomerID: o.CustomerID,
		APIID: o.APIID, UsagePlanID: o.UsagePlanID, ProductCode: o.ProductCode, Status: "active", MinEncryption: max(o.MinEncryption, 1)}
	if k.MinEncryption > 3 {
		return Key{}, fmt.Errorf("%w: min encryption version must be 1, 2 or 3", engine.ErrInvalid)
	}
	var sealed []byte
	if s.master != nil {
		var err error
		if sealed, err = crypto.SealSecret(s.master, crypto.V3Secret(secret)); err != nil {
			return Key{}, err
		}
	} else if k.MinEncryption == 3 {
		return Key{}, fmt.Errorf("%w: a v3-only key needs MASTER_KEY", engine.ErrInvalid)
	}
	err := s.pool.QueryRow(ctx, `INSERT INTO api_keys (id, key_hash, key_prefix, customer_id, api_id, usage_plan_id, product_code, secret_sealed, min_encryption)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (key_hash) DO NOTHING RETURNING when_created, last_updated`,
		k.ID, crypto.HashAPIKey(secret), k.Prefix, k.CustomerID, k.APIID, k.UsagePlanID, k.ProductCode, sealed, k.MinEncryption).Scan(&k.CreatedAt, &k.UpdatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return Key{}, fmt.Errorf("%w: that key is already stored", engine.ErrConflict)
	}
	if err != nil {
		return Key{}, err
	}
	return k, s.audit(ctx, k, "key.create")
}

const columns = `id::text, key_prefix, customer_id, api_id, usage_plan_id, product_code, status, min_encryption, when_created, last_updated`

// dest is where a row of columns, then the extra ones, is scanned into.
func (k *Key) dest(extra ...any) []any {
	return append([]any{&k.ID, &k.Prefix, &k.CustomerID, &k.APIID, &k.UsagePlanID, &k.ProductCode,
		&k.Status, &k.MinEncryption, &k.CreatedAt, &k.UpdatedAt}, extra...)
}

func scan(row pgx.CollectableRow) (Key, error) {
	var k Key
	err := row.Scan(k.dest()...)
	return k, err
}

// List returns all keys, or one customer's when customer is not empty.
func (s *Store) List(ctx context.Context, customer string) ([]Key, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+columns+` FROM api_keys WHERE $1 = '' OR customer_id = $1 ORDER BY when_created`, customer)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, scan)
}

// lookup finds the key whose hash matches secret's: candidates by display
// prefix, hashes compared in constant time. No match: a zero Key.
func (s *Store) lookup(ctx context.Context, secret string) (Key, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+columns+`, key_hash FROM api_keys WHERE key_prefix = $1`, crypto.KeyPrefix(secret))
	if err != nil {
		return Key{}, err
	}
	var found Key
	var k Key
	var hash []byte
	_, err = pgx.ForEachRow(rows, k.dest(&hash), func() error {
		if crypto.HashMatches(secret, hash) {
			found = k
		}
		return nil
	})
	return found, err
}

// Revoke ends a key, named by id or by display prefix (which must then be
// unique). An unknown key returns ErrNotFound.
func (s *Store) Revoke(ctx context.Context, idOrPrefix string) (Key, error) {
	rows, err := s.pool.Query(ctx, `UPDATE api_keys SET status = 'revoked', last_updated = now()
		WHERE id::text = $1 OR (key_prefix = $1 AND (SELECT count(*) FROM api_keys WHERE key_prefix = $1) = 1)
		RETURNING `+columns, idOrPrefix)
	if err != nil {
		return Key{}, err
	}
	k, err := pgx.CollectExactlyOneRow(rows, scan)
	if errors.Is(err, pgx.ErrNoRows) {
		return Key{}, fmt.Errorf("%w: no key (or more than one) matches %q", engine.ErrNotFound, idOrPrefix)
	}
	if err != nil {
		return Key{}, err
	}
	return k, s.audit(ctx, k, "key.revoke")
}

// Authenticate returns the active key whose clear text is secret. An unknown
// or inactive key returns ErrNotFound, the same for both.
func (s *Store) Authenticate(ctx context.Context, secret string) (Key, error) {
	hash := crypto.HashAPIKey(secret)
	id := string(hash)
	s.mu.Lock()
	c, ok := s.cache[id]
	s.mu.Unlock()
	if ok && time.Since(c.at) < s.cacheTTL {
		return c.key, c.err
	}
	k, err := s.lookup(ctx, secret)
	switch {
	case err != nil:
		return Key{}, fmt.Errorf("%w: %w", engine.ErrUnavailable, err)
	case k.ID == "" || !k.Active():
		k, err = Key{}, engine.ErrNotFound
	}
	s.mu.Lock()
	if len(s.cache) > 100000 {
		clear(s.cache)
	}
	s.cache[id] = cached{key: k, err: err, at: time.Now()}
	s.mu.Unlock()
	return k, err
}

// V3Secret returns the active key with that id and its opened v3 secret,
// cached like Authenticate. An unknown or inactive key, or one without a
// secret (made without MASTER_KEY), returns ErrNotFound.
func (s *Store) V3Secret(ctx context.Context, id string) (Key, []byte, error) {
	cacheID := "id:" + id
	s.mu.Lock()
	c, ok := s.cache[cacheID]
	s.mu.Unlock()
	if ok && time.Since(c.at) < s.cacheTTL {
		return c.key, c.secret, c.err
	}
	if s.master == nil {
		return Key{}, nil, fmt.Errorf("%w: encryption version 3 is not configured (MASTER_KEY)", engine.ErrNotFound)
	}
	var k Key
	var sealed []byte
	err := s.pool.QueryRow(ctx, `SELECT `+columns+`, secret_sealed FROM api_keys WHERE id::text = $1`, id).Scan(k.dest(&sealed)...)
	var secret []byte
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		err = engine.ErrNotFound
	case err != nil:
		return Key{}, nil, fmt.Errorf("%w: %w", engine.ErrUnavailable, err)
	case !k.Active() || sealed == nil:
		k, err = Key{}, engine.ErrNotFound
	default:
		if secret, err = crypto.OpenSecret(s.master, sealed); err != nil {
			return Key{}, nil, err
		}
	}
	s.mu.Lock()
	s.cache[cacheID] = cached{key: k, err: err, secret: secret, at: time.Now()}
	s.mu.Unlock()
	return k, secret, err
}

func (s *Store) audit(ctx context.Context, k Key, action string) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO audit_log (key_id, tenant, action, detail) VALUES ($1, $2, $3, $4)`,
		k.ID, k.CustomerID, action, "prefix "+k.Prefix)
	return err
}

func newUUID() string {
	var b [16]byte
	rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}

// DisplayPrefix is the part of a clear key that may be shown.
func DisplayPrefix(secret string) string { return crypto.KeyPrefix(secret) }

package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/biomatch/biomatch/crypto"
	"github.com/biomatch/biomatch/engine"
)

// Keys keeps API keys: a key is stored only as its SHA-256 hash and a
// short display prefix; the clear key is shown once, at creation. Lookups
// are not cached here (httpapi caches valid keys).
type Keys struct {
	pool   *pgxpool.Pool
	master []byte // seals v3 secrets; nil: keys get none
}

// NewKeys returns Keys over a migrated pool. With a 32-byte master key,
// keys created or imported get a sealed v3 secret.
func NewKeys(pool *pgxpool.Pool, master []byte) *Keys {
	return &Keys{pool: pool, master: master}
}

// KeyOptions are the CryptoNets fields of a new key.
type KeyOptions struct {
	CustomerID    string
	APIID         string
	UsagePlanID   string
	ProductCode   string
	MinEncryption int // 0 or 1: any version; 3: v3 only (needs a master key)
	// SecurityLevel is the key's level ("": the server's); the caller
	// checks the name against the calibration.
	SecurityLevel string
}

// Create makes a new random key for a customer and returns the clear key
// (shown once) and its record.
func (s *Keys) Create(ctx context.Context, o KeyOptions) (string, engine.Key, error) {
	secret := crypto.NewAPIKey()
	k, err := s.Import(ctx, secret, o)
	return secret, k, err
}

// Import stores an existing clear key (e.g. one a CryptoNets client already
// holds) for a customer. A key already stored returns ErrConflict.
func (s *Keys) Import(ctx context.Context, secret string, o KeyOptions) (engine.Key, error) {
	if o.CustomerID == "" {
		return engine.Key{}, fmt.Errorf("%w: a key needs a customer", engine.ErrInvalid)
	}
	if len(secret) < 16 {
		return engine.Key{}, fmt.Errorf("%w: a key must have at least 16 characters", engine.ErrInvalid)
	}
	k := engine.Key{ID: uuid.NewString(), Prefix: crypto.KeyPrefix(secret), CustomerID: o.CustomerID,
		APIID: o.APIID, UsagePlanID: o.UsagePlanID, ProductCode: o.ProductCode, Status: "active", MinEncryption: max(o.MinEncryption, 1),
		SecurityLevel: o.SecurityLevel}
	if k.MinEncryption > 3 {
		return engine.Key{}, fmt.Errorf("%w: min encryption version must be 1, 2 or 3", engine.ErrInvalid)
	}
	var sealed []byte
	if s.master != nil {
		var err error
		if sealed, err = crypto.SealSecret(s.master, crypto.V3Secret(secret)); err != nil {
			return engine.Key{}, err
		}
	} else if k.MinEncryption == 3 {
		return engine.Key{}, fmt.Errorf("%w: a v3-only key needs MASTER_KEY", engine.ErrInvalid)
	}
	err := s.pool.QueryRow(ctx, `INSERT INTO api_keys (id, key_hash, key_prefix, customer_id, api_id, usage_plan_id, product_code, secret_sealed, min_encryption, security_level)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT (key_hash) DO NOTHING RETURNING when_created, last_updated`,
		k.ID, crypto.HashAPIKey(secret), k.Prefix, k.CustomerID, k.APIID, k.UsagePlanID, k.ProductCode, sealed, k.MinEncryption,
		k.SecurityLevel).Scan(&k.CreatedAt, &k.UpdatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return engine.Key{}, fmt.Errorf("%w: that key is already stored", engine.ErrConflict)
	}
	if err != nil {
		return engine.Key{}, err
	}
	return k, s.audit(ctx, k, "key.create")
}

const keyColumns = `id::text, key_prefix, customer_id, api_id, usage_plan_id, product_code, status, min_encryption, security_level, when_created, last_updated`

// keyDest is where a row of keyColumns, then the extra ones, is scanned into.
func keyDest(k *engine.Key, extra ...any) []any {
	return append([]any{&k.ID, &k.Prefix, &k.CustomerID, &k.APIID, &k.UsagePlanID, &k.ProductCode,
		&k.Status, &k.MinEncryption, &k.SecurityLevel, &k.CreatedAt, &k.UpdatedAt}, extra...)
}

func scanKey(row pgx.CollectableRow) (engine.Key, error) {
	var k engine.Key
	err := row.Scan(keyDest(&k)...)
	return k, err
}

// List returns all keys, or one customer's when customer is not empty.
func (s *Keys) List(ctx context.Context, customer string) ([]engine.Key, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+keyColumns+` FROM api_keys WHERE $1 = '' OR customer_id = $1 ORDER BY when_created`, customer)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, scanKey)
}

// BySecret returns the active key whose clear text is secret: candidates by
// display prefix, hashes compared in constant time. An unknown or inactive
// key returns ErrNotFound, the same for both; a database that cannot be
// reached, ErrUnavailable.
func (s *Keys) BySecret(ctx context.Context, secret string) (engine.Key, error) {
	switch {
	case strings.HasPrefix(secret, SessionPrefix):
		return s.bySessionSecret(ctx, secret)
	case strings.HasPrefix(secret, TokenPrefix):
		return s.byToken(ctx, secret)
	}
	rows, err := s.pool.Query(ctx, `SELECT `+keyColumns+`, key_hash FROM api_keys WHERE key_prefix = $1`, crypto.KeyPrefix(secret))
	if err != nil {
		return engine.Key{}, Translate(err)
	}
	var found, k engine.Key
	var hash []byte
	_, err = pgx.ForEachRow(rows, keyDest(&k, &hash), func() error {
		if crypto.HashMatches(secret, hash) {
			found = k
		}
		return nil
	})
	switch {
	case err != nil:
		return engine.Key{}, Translate(err)
	case found.ID == "" || !found.Active():
		return engine.Key{}, engine.ErrNotFound
	}
	return found, nil
}

// Revoke ends a key, named by id or by display prefix (which must then be
// unique). An unknown key returns ErrNotFound.
func (s *Keys) Revoke(ctx context.Context, idOrPrefix string) (engine.Key, error) {
	rows, err := s.pool.Query(ctx, `UPDATE api_keys SET status = 'revoked', last_updated = now()
		WHERE id::text = $1 OR (key_prefix = $1 AND (SELECT count(*) FROM api_keys WHERE key_prefix = $1) = 1)
		RETURNING `+keyColumns, idOrPrefix)
	if err != nil {
		return engine.Key{}, err
	}
	k, err := pgx.CollectExactlyOneRow(rows, scanKey)
	if errors.Is(err, pgx.ErrNoRows) {
		return engine.Key{}, fmt.Errorf("%w: no key (or more than one) matches %q", engine.ErrNotFound, idOrPrefix)
	}
	if err != nil {
		return engine.Key{}, err
	}
	return k, s.audit(ctx, k, "key.revoke")
}

// ByID returns the active key with that id and its opened v3 secret. An
// unknown or inactive key, or one without a secret (made without
// MASTER_KEY), returns ErrNotFound; a database that cannot be reached,
// ErrUnavailable.
func (s *Keys) ByID(ctx context.Context, id string) (engine.Key, []byte, error) {
	if s.master == nil {
		return engine.Key{}, nil, fmt.Errorf("%w: encryption version 3 is not configured (MASTER_KEY)", engine.ErrNotFound)
	}
	if uuid.Validate(id) != nil {
		return engine.Key{}, nil, engine.ErrNotFound
	}
	var k engine.Key
	var sealed []byte
	err := s.pool.QueryRow(ctx, `SELECT `+keyColumns+`, secret_sealed FROM api_keys WHERE id = $1`, id).Scan(keyDest(&k, &sealed)...)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return engine.Key{}, nil, engine.ErrNotFound
	case err != nil:
		return engine.Key{}, nil, Translate(err)
	case !k.Active() || sealed == nil:
		return engine.Key{}, nil, engine.ErrNotFound
	}
	secret, err := crypto.OpenSecret(s.master, sealed)
	if err != nil {
		return engine.Key{}, nil, err
	}
	return k, secret, nil
}

func (s *Keys) audit(ctx context.Context, k engine.Key, action string) error {
	return Translate(audit(ctx, s.pool, engine.AuditEntry{KeyID: k.ID, Tenant: k.CustomerID, Action: action, Detail: "prefix " + k.Prefix}))
}

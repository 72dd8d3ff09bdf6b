package postgres

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/biomatch/biomatch/crypto"
	"github.com/biomatch/biomatch/engine"
)

// SessionPrefix starts every session key, so a lookup knows which table to
// read.
const SessionPrefix = "bms_"

// The limits of a session key.
const (
	MaxSessionUses = 1000
	MaxSessionTTL  = time.Hour
)

// CreateSession mints a session key for parent and returns it in clear
// (shown once) with its scope. Invalid options return ErrInvalid.
func (s *Keys) CreateSession(ctx context.Context, parent engine.Key, o engine.SessionOptions) (string, engine.Session, error) {
	var problems []string
	if len(o.Operations) == 0 {
		problems = append(problems, "operations: name at least one of enroll, predict")
	}
	for _, op := range o.Operations {
		if !slices.Contains(engine.SessionOperations, op) {
			problems = append(problems, fmt.Sprintf("operations: %q is not allowed to a session key (enroll, predict)", op))
		}
	}
	if o.MaxUses < 1 || o.MaxUses > MaxSessionUses {
		problems = append(problems, fmt.Sprintf("max_uses: want 1 to %d", MaxSessionUses))
	}
	if o.TTL <= 0 || o.TTL > MaxSessionTTL {
		problems = append(problems, fmt.Sprintf("ttl_seconds: want 1 to %d", int(MaxSessionTTL.Seconds())))
	}
	if len(o.UserIdentifier) > 256 {
		problems = append(problems, "user_identifier: at most 256 characters")
	}
	if len(problems) > 0 {
		return "", engine.Session{}, fmt.Errorf("%w: %s", engine.ErrInvalid, strings.Join(problems, "; "))
	}
	secret := SessionPrefix + crypto.NewAPIKey()
	ops := slices.Compact(slices.Sorted(slices.Values(o.Operations)))
	sess := engine.Session{ID: uuid.NewString(), Operations: ops, UserIdentifier: o.UserIdentifier, UsesLeft: o.MaxUses}
	err := s.pool.QueryRow(ctx, `INSERT INTO session_keys (id, key_hash, parent_key_id, operations, user_identifier, uses_left, expires_at)
		VALUES ($1, $2, $3, $4, $5, $6, now() + $7::interval) RETURNING expires_at`,
		sess.ID, crypto.HashAPIKey(secret), parent.ID, ops, o.UserIdentifier, o.MaxUses, o.TTL.String()).Scan(&sess.ExpiresAt)
	if err != nil {
		return "", engine.Session{}, Translate(err)
	}
	err = audit(ctx, s.pool, engine.AuditEntry{KeyID: parent.ID, Tenant: parent.CustomerID, Action: "session.create",
		Detail: fmt.Sprintf("session %s: %s, %d uses, until %s", sess.ID, strings.Join(ops, "+"), o.MaxUses, sess.ExpiresAt.UTC().Format(time.RFC3339))})
	return secret, sess, Translate(err)
}

// bySessionSecret returns the parent key of a live session key, with the
// session's scope. Unknown, expired or used up: ErrNotFound.
func (s *Keys) bySessionSecret(ctx context.Context, secret string) (engine.Key, error) {
	var sess engine.Session
	k, err := activeKey(s.pool.QueryRow(ctx, `SELECT `+prefixed("k.", keyColumns)+`, s.id::text, s.operations, s.user_identifier, s.uses_left, s.expires_at
		FROM session_keys s JOIN api_keys k ON k.id = s.parent_key_id
		WHERE s.key_hash = $1 AND s.expires_at > now() AND s.uses_left > 0`, crypto.HashAPIKey(secret)),
		&sess.ID, &sess.Operations, &sess.UserIdentifier, &sess.UsesLeft, &sess.ExpiresAt)
	if err != nil {
		return engine.Key{}, err
	}
	k.Session = &sess
	return k, nil
}

// activeKey scans a row of keyColumns (then extra) into a key: no row, or
// a key that is not active, is ErrNotFound.
func activeKey(row pgx.Row, extra ...any) (engine.Key, error) {
	var k engine.Key
	err := row.Scan(keyDest(&k, extra...)...)
	switch {
	case errors.Is(err, pgx.ErrNoRows) || (err == nil && !k.Active()):
		return engine.Key{}, engine.ErrNotFound
	case err != nil:
		return engine.Key{}, Translate(err)
	}
	return k, nil
}

// UseSession takes one use of a session: ErrNotFound once it expired or
// is used up (then the request is refused).
func (s *Keys) UseSession(ctx context.Context, id string) error {
	tag, err := s.pool.Exec(ctx, `UPDATE session_keys SET uses_left = uses_left - 1
		WHERE id = $1 AND uses_left > 0 AND expires_at > now()`, id)
	if err != nil {
		return Translate(err)
	}
	if tag.RowsAffected() == 0 {
		return engine.ErrNotFound
	}
	return nil
}

// prefixed qualifies each of a comma-separated list of columns.
func prefixed(p, columns string) string {
	cols := strings.Split(columns, ",")
	for i, c := range cols {
		cols[i] = p + strings.TrimSpace(c)
	}
	return strings.Join(cols, ", ")
}

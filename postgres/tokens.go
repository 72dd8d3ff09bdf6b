package postgres

import (
	"context"
	"time"

	"github.com/biomatch/biomatch/crypto"
	"github.com/biomatch/biomatch/engine"
)

// TokenPrefix starts every OAuth2 access token.
const TokenPrefix = "bmt_"

// TokenTTL is how long an access token lives.
const TokenTTL = 15 * time.Minute

// IssueToken authenticates an OAuth2 client (client_id = the key's id,
// client_secret = the key) and returns a new access token for it and its
// expiry. A wrong pair, or a revoked key, is ErrNotFound.
func (s *Keys) IssueToken(ctx context.Context, clientID, clientSecret string) (string, time.Time, error) {
	k, err := s.BySecret(ctx, clientSecret)
	if err != nil {
		return "", time.Time{}, err
	}
	if k.ID != clientID || k.Session != nil || k.TokenExpires != nil { // sessions and tokens are no client secrets
		return "", time.Time{}, engine.ErrNotFound
	}
	token := TokenPrefix + crypto.NewAPIKey()
	var expires time.Time
	err = s.pool.QueryRow(ctx, `INSERT INTO access_tokens (token_hash, parent_key_id, expires_at)
		VALUES ($1, $2, now() + $3::interval) RETURNING expires_at`, crypto.HashAPIKey(token), k.ID, TokenTTL.String()).Scan(&expires)
	if err != nil {
		return "", time.Time{}, Translate(err)
	}
	// Expired tokens are swept as new ones are issued.
	if _, err := s.pool.Exec(ctx, `DELETE FROM access_tokens WHERE expires_at < now() - interval '1 hour'`); err != nil {
		return "", time.Time{}, Translate(err)
	}
	return token, expires, nil
}

// byToken returns the key an unexpired access token acts for, with the
// token's expiry set. Unknown or expired: ErrNotFound.
func (s *Keys) byToken(ctx context.Context, token string) (engine.Key, error) {
	var expires time.Time
	k, err := activeKey(s.pool.QueryRow(ctx, `SELECT `+prefixed("k.", keyColumns)+`, t.expires_at
		FROM access_tokens t JOIN api_keys k ON k.id = t.parent_key_id
		WHERE t.token_hash = $1 AND t.expires_at > now()`, crypto.HashAPIKey(token)), &expires)
	if err != nil {
		return engine.Key{}, err
	}
	k.TokenExpires = &expires
	return k, nil
}

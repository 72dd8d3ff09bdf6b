package httpapi

import (
	"context"
	"encoding/hex"
	"time"

	"github.com/hashicorp/golang-lru/v2/expirable"
	"golang.org/x/sync/singleflight"

	"github.com/biomatch/biomatch/crypto"
	"github.com/biomatch/biomatch/engine"
)

// KeyLookup finds API keys (postgres.Keys). The lookups return
// ErrNotFound for an unknown or inactive key, ErrUnavailable when the
// store cannot be reached.
type KeyLookup interface {
	// BySecret returns the key whose clear text is secret.
	BySecret(ctx context.Context, secret string) (engine.Key, error)
	// ByID returns the key with that id and its version-3 secret.
	ByID(ctx context.Context, id string) (engine.Key, []byte, error)
	// UseSession takes one use of a session key (ErrNotFound: expired or
	// used up). Never cached.
	UseSession(ctx context.Context, id string) error
}

// KeyCacheTTL is how long a valid key is remembered: a revoked key stops
// working on every replica within it.
const KeyCacheTTL = 5 * time.Second

// keyCacheSize bounds how many valid keys one replica remembers.
const keyCacheSize = 10_000

// keyCache remembers valid keys only, at most keyCacheSize of them for
// KeyCacheTTL (least recently used first out), so guessed keys can neither
// fill it nor evict the real ones. Concurrent lookups of one key share one
// query.
type keyCache struct {
	keys     KeyLookup
	secrets  *expirable.LRU[string, engine.Key] // by hex SHA-256 of the clear key
	ids      *expirable.LRU[string, v3Key]
	inflight singleflight.Group
}

type v3Key struct {
	key    engine.Key
	secret []byte
}

func newKeyCache(keys KeyLookup, ttl time.Duration) *keyCache {
	return &keyCache{keys: keys,
		secrets: expirable.NewLRU[string, engine.Key](keyCacheSize, nil, ttl),
		ids:     expirable.NewLRU[string, v3Key](keyCacheSize, nil, ttl)}
}

func (k *keyCache) bySecret(ctx context.Context, secret string) (engine.Key, error) {
	hash := hex.EncodeToString(crypto.HashAPIKey(secret))
	if key, ok := k.secrets.Get(hash); ok {
		return key, nil
	}
	v, err, _ := k.inflight.Do("s:"+hash, func() (any, error) {
		ctx, cancel := shared(ctx)
		defer cancel()
		key, err := k.keys.BySecret(ctx, secret)
		if err == nil {
			k.secrets.Add(hash, key)
		}
		return key, err
	})
	return v.(engine.Key), err
}

func (k *keyCache) byID(ctx context.Context, id string) (engine.Key, []byte, error) {
	if e, ok := k.ids.Get(id); ok {
		return e.key, e.secret, nil
	}
	v, err, _ := k.inflight.Do("i:"+id, func() (any, error) {
		ctx, cancel := shared(ctx)
		defer cancel()
		key, secret, err := k.keys.ByID(ctx, id)
		if err == nil {
			k.ids.Add(id, v3Key{key, secret})
		}
		return v3Key{key, secret}, err
	})
	e := v.(v3Key)
	return e.key, e.secret, err
}

// shared is the context of a lookup that several requests wait for: one
// caller leaving does not cancel it for the others.
func shared(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
}

// len reports how many keys are remembered (tests).
func (k *keyCache) len() int { return k.secrets.Len() + k.ids.Len() }

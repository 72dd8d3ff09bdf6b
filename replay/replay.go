// Package replay remembers the nonces of authenticated (v3) requests in
// Redis, so a captured request cannot be sent again on any replica.
package replay

import (
	"context"
	"time"

	"github.com/redis/go-redis/v9"
)

// Cache claims nonces in Redis.
type Cache struct{ rdb redis.UniversalClient }

// New returns a Cache on the process's Redis client.
func New(rdb redis.UniversalClient) *Cache { return &Cache{rdb: rdb} }

// Claim records key for ttl and reports whether it was new (SET NX).
func (c *Cache) Claim(ctx context.Context, key string, ttl time.Duration) (bool, error) {
	return c.rdb.SetNX(ctx, "biomatch:nonce:"+key, 1, ttl).Result()
}

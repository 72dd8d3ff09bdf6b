// Package replay remembers the nonces of authenticated (v3) requests in
// Redis, so a captured request cannot be sent again on any replica.
package replay

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// Cache claims nonces in Redis.
type Cache struct{ rdb *redis.Client }

// New connects to redisURL.
func New(redisURL string) (*Cache, error) {
	opt, err := redis.ParseURL(redisURL)
	if err != nil {
		return nil, fmt.Errorf("REDIS_URL: %w", err)
	}
	return &Cache{rdb: redis.NewClient(opt)}, nil
}

// Claim records key for ttl and reports whether it was new (SET NX).
func (c *Cache) Claim(ctx context.Context, key string, ttl time.Duration) (bool, error) {
	return c.rdb.SetNX(ctx, "biomatch:nonce:"+key, 1, ttl).Result()
}

// Close releases the connections.
func (c *Cache) Close() error { return c.rdb.Close() }

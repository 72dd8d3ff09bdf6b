// Package ratelimit is the per-API-key request limit, held in Redis (GCRA,
// go-redis/redis_rate) so that every API replica shares it.
package ratelimit

import (
	"context"
	"fmt"
	"time"

	"github.com/go-redis/redis_rate/v10"
	"github.com/redis/go-redis/v9"
)

// Limiter allows each key Rate requests per second, with bursts of Burst.
type Limiter struct {
	rdb     *redis.Client
	limiter *redis_rate.Limiter
	limit   redis_rate.Limit
}

// New connects to redisURL. rate ≤ 0 is refused: callers disable limiting
// by not making a Limiter.
func New(redisURL string, rate, burst int) (*Limiter, error) {
	if rate <= 0 {
		return nil, fmt.Errorf("rate limit must be positive")
	}
	opt, err := redis.ParseURL(redisURL)
	if err != nil {
		return nil, fmt.Errorf("REDIS_URL: %w", err)
	}
	rdb := redis.NewClient(opt)
	limit := redis_rate.PerSecond(rate)
	limit.Burst = max(burst, 1)
	return &Limiter{rdb: rdb, limiter: redis_rate.NewLimiter(rdb), limit: limit}, nil
}

// Allow takes one request from key's allowance. When none is left it
// returns false and how long to wait. A Redis error is returned with ok
// true: the caller decides whether to fail open.
func (l *Limiter) Allow(ctx context.Context, key string) (ok bool, retryAfter time.Duration, err error) {
	res, err := l.limiter.Allow(ctx, "biomatch:ratelimit:"+key, l.limit)
	if err != nil {
		return true, 0, err
	}
	return res.Allowed > 0, res.RetryAfter, nil
}

// Close releases the Redis connections.
func (l *Limiter) Close() error { return l.rdb.Close() }

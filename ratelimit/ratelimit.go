// Package ratelimit holds allowances in Redis (GCRA, go-redis/redis_rate),
// so that every API replica shares them: requests per API key, and failed
// authentications per client address.
package ratelimit

import (
	"context"
	"fmt"
	"time"

	"github.com/go-redis/redis_rate/v10"
	"github.com/redis/go-redis/v9"
)

// Wait bounds each Allow and Peek: a Redis that cannot answer within it
// (a cluster failing over keeps the client retrying for seconds) is an
// error, so that a caller failing open still answers inside the SDKs' 5 s.
const Wait = 250 * time.Millisecond

// Limiter allows each key Rate events per Per, with bursts of Burst.
type Limiter struct {
	limiter *redis_rate.Limiter
	limit   redis_rate.Limit
	prefix  string
}

// New returns a Limiter of name (a Redis key prefix of its own) on the
// process's Redis client: rate events per period, bursts of burst. rate ≤ 0
// is refused: callers disable limiting by not making a Limiter.
func New(rdb redis.UniversalClient, name string, rate int, per time.Duration, burst int) (*Limiter, error) {
	if rate <= 0 || per <= 0 {
		return nil, fmt.Errorf("rate limit %s must be positive", name)
	}
	return &Limiter{limiter: redis_rate.NewLimiter(rdb), prefix: "biomatch:" + name + ":",
		limit: redis_rate.Limit{Rate: rate, Period: per, Burst: max(burst, 1)}}, nil
}

// Allow takes one event from key's allowance. When none is left it returns
// false and how long to wait. A Redis error (or no answer within Wait) is
// returned with ok true: the caller decides whether to fail open.
func (l *Limiter) Allow(ctx context.Context, key string) (ok bool, retryAfter time.Duration, err error) {
	ctx, cancel := context.WithTimeout(ctx, Wait)
	defer cancel()
	res, err := l.limiter.Allow(ctx, l.prefix+key, l.limit)
	if err != nil {
		return true, 0, err
	}
	return res.Allowed > 0, res.RetryAfter, nil
}

// Peek reports whether key has at least one event left, without taking it;
// when not, about how long until it has.
func (l *Limiter) Peek(ctx context.Context, key string) (ok bool, retryAfter time.Duration, err error) {
	ctx, cancel := context.WithTimeout(ctx, Wait)
	defer cancel()
	res, err := l.limiter.AllowN(ctx, l.prefix+key, l.limit, 0)
	if err != nil {
		return true, 0, err
	}
	if res.Remaining >= 1 {
		return true, 0, nil
	}
	return false, l.limit.Period / time.Duration(l.limit.Rate), nil
}

package main

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/biomatch/biomatch/internal/app"
	"github.com/biomatch/biomatch/postgres"
	"github.com/biomatch/biomatch/queue"
)

// runHealthcheck exits non-zero unless the service is healthy: by default
// it asks an API's /ready; with --deps it pings PostgreSQL and Redis itself
// (for the worker, which serves no HTTP). Container health checks use it.
func runHealthcheck(ctx context.Context, config func() (app.Config, error), args []string, std stdio) error {
	fs := newFlagSet("healthcheck", std.out, std.err)
	url := fs.String("url", "http://127.0.0.1:8000/ready", "readiness URL to ask")
	deps := fs.Bool("deps", false, "ping PostgreSQL and Redis instead of an URL")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg, err := config()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	if !*deps {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, *url, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("%s answered %s", *url, resp.Status)
		}
		return nil
	}
	pool, err := postgres.OpenPool(ctx, cfg.DatabaseURL)
	if err != nil {
		return err
	}
	defer pool.Close()
	if err := pool.Ping(ctx); err != nil {
		return fmt.Errorf("postgres: %w", err)
	}
	rdb, err := queue.OpenRedis(cfg.RedisURL)
	if err != nil {
		return err
	}
	defer rdb.Close()
	if err := rdb.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("redis: %w", err)
	}
	return nil
}

package main

import (
	"context"
	"flag"
	"fmt"
	"net/http"
	"time"

	"github.com/biomatch/biomatch/queue"
	"github.com/biomatch/biomatch/vectorstore"
)

// runHealthcheck exits non-zero unless the service is healthy: by default
// it asks an API's /ready; with --deps it pings PostgreSQL and Redis itself
// (for the worker, which serves no HTTP). Container health checks use it.
func runHealthcheck(ctx context.Context, cfg config, args []string) error {
	fs := flag.NewFlagSet("healthcheck", flag.ContinueOnError)
	url := fs.String("url", "http://127.0.0.1:8000/ready", "readiness URL to ask")
	deps := fs.Bool("deps", false, "ping PostgreSQL and Redis instead of an URL")
	if err := fs.Parse(args); err != nil {
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
	pool, err := vectorstore.OpenPool(ctx, cfg.DatabaseURL)
	if err != nil {
		return err
	}
	defer pool.Close()
	if err := pool.Ping(ctx); err != nil {
		return fmt.Errorf("postgres: %w", err)
	}
	opt, err := queue.ParseRedisURL(cfg.RedisURL)
	if err != nil {
		return err
	}
	jobs := queue.NewClient(opt, cfg.Queue)
	defer jobs.Close()
	return jobs.Ping()
}

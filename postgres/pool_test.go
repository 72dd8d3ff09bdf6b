package postgres_test

import (
	"context"
	"net/url"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/biomatch/biomatch/internal/testenv"
	"github.com/biomatch/biomatch/postgres"
)

// TestWarmPoolOpensEveryConnection: a long-running process's pool opens all
// its connections without being asked for one and keeps that many; the URL's
// pool_min_conns wins; a brief command's pool opens none until used.
func TestWarmPoolOpensEveryConnection(t *testing.T) {
	ctx := context.Background()
	base := testenv.NewDatabase(t)
	withQuery := func(kv ...string) string {
		u, err := url.Parse(base)
		if err != nil {
			t.Fatal(err)
		}
		q := u.Query()
		for i := 0; i < len(kv); i += 2 {
			q.Set(kv[i], kv[i+1])
		}
		u.RawQuery = q.Encode()
		return u.String()
	}
	open := func(openPool func(context.Context, string) (*pgxpool.Pool, error), url string) *pgxpool.Pool {
		t.Helper()
		p, err := openPool(ctx, url)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(p.Close)
		return p
	}

	warm := open(postgres.OpenWarmPool, withQuery("pool_max_conns", "4"))
	if got := warm.Config().MinConns; got != 4 {
		t.Fatalf("warm pool MinConns = %d, want its MaxConns, 4", got)
	}
	deadline := time.Now().Add(10 * time.Second)
	for warm.Stat().TotalConns() < 4 {
		if time.Now().After(deadline) {
			t.Fatalf("the warm pool opened %d of its 4 connections in 10 s", warm.Stat().TotalConns())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if n := warm.Stat().AcquireCount(); n != 0 {
		t.Fatalf("%d acquires: the connections were opened by use, not by the pool", n)
	}

	if got := open(postgres.OpenWarmPool, withQuery("pool_max_conns", "4", "pool_min_conns", "1")).Config().MinConns; got != 1 {
		t.Errorf("warm pool with pool_min_conns=1: MinConns = %d, want 1", got)
	}
	brief := open(postgres.OpenPool, base)
	if got := brief.Config().MinConns; got != 0 {
		t.Errorf("brief pool MinConns = %d, want 0", got)
	}
	if got := brief.Config().MaxConns; got != postgres.DefaultMaxConns {
		t.Errorf("pool without pool_max_conns: MaxConns = %d, want %d", got, postgres.DefaultMaxConns)
	}
}

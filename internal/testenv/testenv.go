// Package testenv gives tests real dependencies: a fresh, migrated
// PostgreSQL database (with pgvector) and a Redis queue of their own, on the
// services that scripts/services.sh starts (`make services`). It reads
// DATABASE_URL and REDIS_URL from the environment, else from ./.data/env at
// the module root. It fails, never skips, when they are missing: tests do
// not pass without the real parts.
package testenv

import (
	"bufio"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/biomatch/biomatch/calibration"
	"github.com/biomatch/biomatch/engine"
	"github.com/biomatch/biomatch/internal/synth"
	"github.com/biomatch/biomatch/postgres"
)

// Env returns the value of name from the environment or ./.data/env.
func Env(t testing.TB, name string) string {
	t.Helper()
	v, err := Lookup(name)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// Lookup is Env for callers without a testing.TB (TestMain, examples).
func Lookup(name string) (string, error) {
	if v := os.Getenv(name); v != "" {
		return v, nil
	}
	dir, _ := os.Getwd()
	for ; dir != filepath.Dir(dir); dir = filepath.Dir(dir) {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			break
		}
	}
	f, err := os.Open(filepath.Join(dir, ".data", "env"))
	if err != nil {
		return "", fmt.Errorf("%s is not set and %s is missing: run `make services` first", name, filepath.Join(dir, ".data", "env"))
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(strings.TrimPrefix(sc.Text(), "export "), "=")
		if ok && k == name {
			return v, nil
		}
	}
	return "", fmt.Errorf("%s is in neither the environment nor .data/env", name)
}

// NewDatabase creates an empty database (pgvector comes from template1,
// see scripts/services.sh), dropped when the test ends, and returns its URL.
func NewDatabase(t testing.TB) string { return newDatabase(t, "") }

// NewDatabaseWithoutVector creates an empty database from template0, as the
// service's own (non-superuser) role: pgvector is not installed there and
// the role cannot install it, the case of a PostgreSQL without pgvector.
func NewDatabaseWithoutVector(t testing.TB) string { return newDatabase(t, " TEMPLATE template0") }

func newDatabase(t testing.TB, template string) string {
	t.Helper()
	base := Env(t, "DATABASE_URL")
	ctx := context.Background()
	admin, err := pgx.Connect(ctx, base)
	if err != nil {
		t.Fatalf("connect to %s: %v (is `make services` running?)", redact(base), err)
	}
	name := "biomatch_test_" + strings.ToLower(rand.Text()[:12])
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+name+template); err != nil {
		t.Fatalf("create database: %v", err)
	}
	admin.Close(ctx)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		admin, err := pgx.Connect(ctx, base)
		if err != nil {
			t.Errorf("drop database %s: %v", name, err)
			return
		}
		defer admin.Close(ctx)
		if err := DropDatabase(ctx, admin, name); err != nil {
			t.Errorf("drop database %s: %v", name, err)
		}
	})
	u, _ := url.Parse(base)
	u.Path = "/" + name
	return u.String()
}

// DropDatabase drops name, ending its sessions. The service's role may end
// its own sessions only: while an autovacuum worker (no role) is on the
// database, PostgreSQL refuses with 42501, so it waits for the worker to
// finish and tries again until ctx ends.
func DropDatabase(ctx context.Context, admin *pgx.Conn, name string) error {
	for {
		_, err := admin.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) || pgErr.Code != "42501" {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// NewPool returns a pool on a fresh, migrated database, closed when the test ends.
func NewPool(t testing.TB) *pgxpool.Pool { return migratedPool(t, NewDatabase(t)) }

// NewPoolWithoutVector is NewPool on NewDatabaseWithoutVector.
func NewPoolWithoutVector(t testing.TB) *pgxpool.Pool {
	return migratedPool(t, NewDatabaseWithoutVector(t))
}

func migratedPool(t testing.TB, url string) *pgxpool.Pool {
	t.Helper()
	ctx := context.Background()
	pool, err := postgres.OpenPool(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	if _, err := postgres.Migrate(ctx, pool); err != nil {
		t.Fatal(err)
	}
	pool.Reset() // reconnect, so pgvector's types are registered now the extension exists
	return pool
}

// Queue returns an asynq queue name no other test uses.
func Queue(t testing.TB) string {
	return fmt.Sprintf("test-%s", strings.ToLower(rand.Text()[:10]))
}

func redact(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "DATABASE_URL"
	}
	return u.Redacted()
}

// Enroll stores n persons of g with one template each (synthetic identity
// i, dim values) through the enroll path's gallery transaction, and returns
// their templates by person id.
func Enroll(t testing.TB, store engine.Store, g engine.Gallery, n, dim int) map[int64]engine.Embedding {
	t.Helper()
	out := map[int64]engine.Embedding{}
	err := store.InGallery(context.Background(), g, func(ctx context.Context, tx engine.GalleryTx) error {
		for i := range n {
			person, err := tx.CreatePerson(ctx, engine.Person{Gallery: g, PUID: engine.NewID(), GUID: engine.NewID()})
			if err != nil {
				return err
			}
			e := engine.Embedding(synth.Vector(dim, uint64(i), 0, 0))
			if _, err := tx.AddTemplates(ctx, person, []engine.Embedding{e}); err != nil {
				return err
			}
			out[person.ID] = e
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// NewService is engine.NewService for a test: with the embedded calibration
// unless cfg names one, failing t on a configuration error.
func NewService(t testing.TB, d engine.Deps, cfg engine.Config) *engine.Service {
	t.Helper()
	if cfg.Levels.Calibration == nil {
		cal, err := calibration.Embedded()
		if err != nil {
			t.Fatal(err)
		}
		cfg.Levels.Calibration = cal
	}
	s, err := engine.NewService(d, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// LowAndMedium are the embedded default model's low (FMR 1e-2) and medium
// (1e-3) thresholds for a one-template gallery: a probe halfway between is
// a match at level low and not at the default (high).
func LowAndMedium(t testing.TB) (low, medium float64) {
	t.Helper()
	cal, err := calibration.Embedded()
	if err != nil {
		t.Fatal(err)
	}
	curve := cal.Models[cal.DefaultModel]
	low, _ = curve.Threshold(1e-2)
	medium, _ = curve.Threshold(1e-3)
	return low, medium
}

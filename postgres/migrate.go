package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"

	"github.com/biomatch/biomatch/migrations"
)

func provider(pool *pgxpool.Pool) (*goose.Provider, func() error, error) {
	db := stdlib.OpenDBFromPool(pool)
	p, err := goose.NewProvider(goose.DialectPostgres, db, migrations.FS)
	if err != nil {
		db.Close()
		return nil, nil, err
	}
	return p, db.Close, nil
}

// Migrate applies the pending embedded migrations (forward only) and
// returns how many it applied. It fails if an index is left invalid.
func Migrate(ctx context.Context, pool *pgxpool.Pool) (int, error) {
	p, closeDB, err := provider(pool)
	if err != nil {
		return 0, err
	}
	defer closeDB()
	res, err := p.Up(ctx)
	if err != nil {
		return len(res), fmt.Errorf("migrate: %w", err)
	}
	return len(res), CheckIndexes(ctx, pool)
}

// MigrationsPending reports whether embedded migrations are not yet applied.
func MigrationsPending(ctx context.Context, pool *pgxpool.Pool) (bool, error) {
	p, closeDB, err := provider(pool)
	if err != nil {
		return false, err
	}
	defer closeDB()
	pending, err := p.HasPending(ctx)
	return pending, Translate(err)
}

// InvalidIndexes names the indexes PostgreSQL marks invalid (an interrupted
// CREATE INDEX CONCURRENTLY leaves one, and queries silently skip it). An
// index still being built concurrently is not counted.
func InvalidIndexes(ctx context.Context, pool *pgxpool.Pool) ([]string, error) {
	rows, err := pool.Query(ctx, `SELECT indexrelid::regclass::text FROM pg_index WHERE NOT indisvalid
		AND indexrelid NOT IN (SELECT index_relid FROM pg_stat_progress_create_index) ORDER BY 1`)
	if err != nil {
		return nil, Translate(err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	return names, Translate(err)
}

// CheckIndexes returns an error naming any invalid index and how to mend it.
func CheckIndexes(ctx context.Context, pool *pgxpool.Pool) error {
	names, err := InvalidIndexes(ctx, pool)
	if err != nil {
		return err
	}
	if len(names) > 0 {
		return fmt.Errorf("invalid indexes %v: queries skip them; rebuild with REINDEX INDEX CONCURRENTLY <name>", names)
	}
	return nil
}

package postgres_test

import (
	"context"
	"strings"
	"testing"

	"github.com/biomatch/biomatch/internal/testenv"
	"github.com/biomatch/biomatch/postgres"
	"github.com/jackc/pgx/v5"
)

// TestPendingEnrollsPlanWithStaleStatistics: a worker's batch reads the
// gallery's pending enrolls with their persons. Planned while the
// statistics knew no person of the tenant (a new tenant, a fresh import:
// the state until autovacuum analyzes, up to a minute later), that read
// once scanned every person of the tenant for each request: 400 ms a batch
// at 100k persons; and, knowing none of the tenant's requests, it read
// every request of the tenant, finished ones too (70 ms a batch 25 s into
// a load test). Each request's person must be found by its key, and the
// pending requests by the pending index, whatever the statistics, in a
// custom plan and in a cached generic one.
func TestPendingEnrollsPlanWithStaleStatistics(t *testing.T) {
	pool := testenv.NewPool(t)
	ctx := context.Background()
	for _, sql := range []string{
		`INSERT INTO persons (tenant, version, puid, guid)
			SELECT 'other', 'FACE3_1', 'p' || i, 'o' || i FROM generate_series(1, 5) i`,
		`ANALYZE persons, enroll_requests`, // statistics without tenant acme
		`INSERT INTO persons (tenant, version, puid, guid)
			SELECT 'acme', 'FACE3_1', 'p' || i, 'g' || i FROM generate_series(1, 20000) i`,
		`INSERT INTO enroll_requests (id, tenant, version, dim, templates, state)
			SELECT 'd' || i, 'acme', 'FACE3_1', 2, NULL, 'done' FROM generate_series(1, 5000) i`,
		`INSERT INTO enroll_requests (id, tenant, version, dim, templates)
			SELECT 'r' || i, 'acme', 'FACE3_1', 2, '{1,0}' FROM generate_series(1, 10) i`,
	} {
		if _, err := pool.Exec(ctx, sql); err != nil {
			t.Fatal(err)
		}
	}
	for _, mode := range []string{"force_custom_plan", "force_generic_plan"} {
		t.Run(mode, func(t *testing.T) {
			tx, err := pool.Begin(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer tx.Rollback(ctx)
			for _, sql := range []string{
				`SET LOCAL plan_cache_mode = ` + mode,
				`PREPARE ` + mode + ` (text, text, text, int, timestamptz) AS ` + postgres.LockPendingEnrollsSQL,
			} {
				if _, err := tx.Exec(ctx, sql); err != nil {
					t.Fatal(err)
				}
			}
			rows, err := tx.Query(ctx, `EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF) EXECUTE `+mode+` ('acme', 'FACE3_1', '', 64, '0001-01-01 00:00:00+00')`)
			if err != nil {
				t.Fatal(err)
			}
			var plan []string
			for rows.Next() {
				var line string
				if err := rows.Scan(&line); err != nil {
					t.Fatal(err)
				}
				plan = append(plan, line)
			}
			if err := rows.Err(); err != nil {
				t.Fatal(err)
			}
			text := strings.Join(plan, "\n")
			if !strings.Contains(plan[0], "rows=10 loops=1") {
				t.Fatalf("the plan does not return the 10 pending requests:\n%s", text)
			}
			for i, line := range plan {
				if strings.Contains(line, "Rows Removed by Join Filter") {
					t.Fatalf("persons read beyond each request's own (%s):\n%s", strings.TrimSpace(line), text)
				}
				if strings.Contains(line, "Index Cond: (tenant =") && strings.Contains(plan[i-1], " on persons ") && !strings.Contains(line, "id =") {
					t.Fatalf("persons scanned by tenant alone:\n%s", text)
				}
				if strings.Contains(line, " on enroll_requests ") && !strings.Contains(line, "enroll_requests_pending_gallery") {
					t.Fatalf("pending requests not read by the pending index:\n%s", text)
				}
				if strings.Contains(line, "Rows Removed by Filter") {
					t.Fatalf("rows read and dropped (%s):\n%s", strings.TrimSpace(line), text)
				}
			}
		})
	}
}

// TestLeanStatistics: every column of the large, busy tables keeps a small
// statistics target (migration 00014), so autovacuum's ANALYZE samples
// 3,000 rows, not 30,000, and none of a template; a column added later
// without one fails here.
func TestLeanStatistics(t *testing.T) {
	pool := testenv.NewPool(t)
	rows, err := pool.Query(context.Background(), `
		SELECT a.attrelid::regclass::text, a.attname, coalesce(a.attstattarget, -1)::int, format_type(a.atttypid, a.atttypmod)
		FROM pg_attribute a
		WHERE a.attrelid IN ('templates'::regclass, 'enroll_requests'::regclass, 'persons'::regclass, 'audit_log'::regclass)
			AND a.attnum > 0 AND NOT a.attisdropped`)
	if err != nil {
		t.Fatal(err)
	}
	var table, column, typ string
	var target int
	seen := 0
	_, err = pgx.ForEachRow(rows, []any{&table, &column, &target, &typ}, func() error {
		seen++
		want := 10
		if typ == "vector" || typ == "real[]" {
			want = 0
		}
		if target != want {
			t.Errorf("%s.%s (%s): statistics target %d, want %d", table, column, typ, target, want)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if seen < 39 {
		t.Errorf("read %d columns of the four tables, want all of them (39)", seen)
	}
}

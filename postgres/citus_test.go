package postgres_test

import (
	"context"
	"testing"

	"github.com/biomatch/biomatch/internal/testenv"
)

// TestTenantLeadsEveryKey: on plain PostgreSQL, the schema is one Citus can
// distribute by tenant: tenant is the first column of every primary key,
// unique constraint, unique index and foreign key of the tenant tables.
func TestTenantLeadsEveryKey(t *testing.T) {
	pool := testenv.NewPool(t)
	tenantTables := []string{"persons", "templates", "enroll_requests", "audit_log", "galleries",
		"webhooks", "webhook_deliveries", "webhook_attempts"}
	rows, err := pool.Query(context.Background(), `
		SELECT c.conrelid::regclass::text, c.conname, c.contype::text, a.attname
		FROM pg_constraint c JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1]
		WHERE c.contype IN ('p', 'u', 'f') AND c.conrelid::regclass::text = ANY($1)
		UNION ALL
		SELECT i.indrelid::regclass::text, ci.relname, 'i', a.attname
		FROM pg_index i JOIN pg_class ci ON ci.oid = i.indexrelid
		JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
		WHERE i.indisunique AND i.indrelid::regclass::text = ANY($1)`, tenantTables)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	seen := map[string]int{}
	for rows.Next() {
		var table, name, kind, first string
		if err := rows.Scan(&table, &name, &kind, &first); err != nil {
			t.Fatal(err)
		}
		seen[table]++
		if first != "tenant" {
			t.Errorf("%s: %s (%s) starts with %s, not tenant", table, name, kind, first)
		}
	}
	for _, table := range tenantTables {
		if seen[table] == 0 {
			t.Errorf("%s: no key found (the query above is wrong, or the table has no primary key)", table)
		}
	}
}

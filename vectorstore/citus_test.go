package vectorstore_test

import (
	"context"
	"os"
	"testing"

	"github.com/biomatch/biomatch/postgres"
	"github.com/biomatch/biomatch/vectorstore"
)

// citusTables distributes biomatch's tenant tables by tenant and makes the
// operator tables reference tables: the commands docs/scale-out.md gives.
var citusTables = []string{
	`SELECT create_reference_table('api_keys')`,
	`SELECT create_reference_table('session_keys')`,
	`SELECT create_reference_table('access_tokens')`,
	`SELECT create_reference_table('import_progress')`,
	`SELECT create_distributed_table('galleries', 'tenant')`,
	`SELECT create_distributed_table('persons', 'tenant', colocate_with => 'galleries')`,
	`SELECT create_distributed_table('templates', 'tenant', colocate_with => 'persons')`,
	`SELECT create_distributed_table('enroll_requests', 'tenant', colocate_with => 'persons')`,
	`SELECT create_distributed_table('audit_log', 'tenant', colocate_with => 'persons')`,
	`SELECT create_distributed_table('webhooks', 'tenant', colocate_with => 'persons')`,
	`SELECT create_distributed_table('webhook_deliveries', 'tenant', colocate_with => 'webhooks')`,
	`SELECT create_distributed_table('webhook_attempts', 'tenant', colocate_with => 'webhook_deliveries')`,
}

// TestCitusIndexContract runs the index contract through a Citus
// coordinator after distributing the tables by tenant, exact and through
// HNSW (whose settings must reach the workers). It needs a Citus cluster,
// which Debian does not package: it runs only when CITUS_DATABASE_URL names
// an empty database on one.
func TestCitusIndexContract(t *testing.T) {
	url := os.Getenv("CITUS_DATABASE_URL")
	if url == "" {
		t.Skip("CITUS_DATABASE_URL is not set: no Citus cluster here (Citus is not packaged by Debian); docs/scale-out.md says how to run it")
	}
	ctx := context.Background()
	pool, err := postgres.OpenPool(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	if _, err := postgres.Migrate(ctx, pool); err != nil {
		t.Fatal(err)
	}
	for _, stmt := range citusTables {
		if _, err := pool.Exec(ctx, stmt); err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
	}
	pool.Reset()
	pg := newStore(t, pool, vectorstore.PGVectorConfig{HNSWMinTemplates: 1 << 30})
	rows := fill(t, pg, pool, 150)
	contract(t, "Citus (pgvector exact)", pg, rows)
	hnsw := newStore(t, pool, vectorstore.PGVectorConfig{HNSWMinTemplates: 1, EfSearch: 400})
	contract(t, "Citus (HNSW, ef_search propagated)", hnsw, rows)
}

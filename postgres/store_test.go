package postgres_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/biomatch/biomatch/engine"
	"github.com/biomatch/biomatch/internal/testenv"
	"github.com/biomatch/biomatch/postgres"
	"github.com/biomatch/biomatch/vectorstore"
)

var gallery = engine.Gallery{Tenant: "acme", Version: "FACE3_1"}

func TestGalleryCountsAndDelete(t *testing.T) {
	pool := testenv.NewPool(t)
	ctx := context.Background()
	pg, err := vectorstore.NewPGVector(ctx, pool, vectorstore.PGVectorConfig{})
	if err != nil {
		t.Fatal(err)
	}
	p := postgres.NewStore(pool, pg)
	templates := testenv.Enroll(t, p, gallery, 5, 128)
	var persons, tmpl int
	count := func() {
		t.Helper()
		if err := pool.QueryRow(ctx, `SELECT persons, templates FROM galleries WHERE tenant = $1 AND version = $2`,
			gallery.Tenant, gallery.Version).Scan(&persons, &tmpl); err != nil {
			t.Fatal(err)
		}
	}
	count()
	if persons != 5 || tmpl != 5 {
		t.Fatalf("gallery counts = %d persons, %d templates; want 5, 5", persons, tmpl)
	}
	var victim int64
	for id := range templates {
		victim = id
		break
	}
	ps, err := p.Persons(ctx, []int64{victim})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.DeletePerson(ctx, gallery.Tenant, ps[victim].PUID, engine.AuditEntry{Tenant: gallery.Tenant, Action: "delete"}); err != nil {
		t.Fatal(err)
	}
	count()
	if persons != 4 || tmpl != 4 {
		t.Errorf("after delete = %d persons, %d templates; want 4, 4", persons, tmpl)
	}
	ms, err := pg.Nearest(ctx, gallery, templates[victim], 5)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range ms {
		if m.PersonID == victim {
			t.Errorf("deleted person %d still found", victim)
		}
	}
	if _, err := p.DeletePerson(ctx, gallery.Tenant, ps[victim].PUID, engine.AuditEntry{}); err == nil || !strings.Contains(fmt.Sprint(err), "not found") {
		t.Errorf("second delete error = %v, want ErrNotFound", err)
	}
}

// TestInvalidIndexDetected: an index left invalid (as an interrupted
// CREATE INDEX CONCURRENTLY leaves it) fails CheckIndexes and Migrate.
func TestInvalidIndexDetected(t *testing.T) {
	pool := testenv.NewPool(t)
	ctx := context.Background()
	if err := postgres.CheckIndexes(ctx, pool); err != nil {
		t.Fatalf("fresh schema: %v", err)
	}
	// A unique index over duplicate values fails CONCURRENTLY and stays invalid.
	if _, err := pool.Exec(ctx, `INSERT INTO audit_log (tenant, action) VALUES ('t', 'x'), ('t', 'x')`); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `CREATE UNIQUE INDEX CONCURRENTLY audit_dup ON audit_log (tenant, action)`); err == nil {
		t.Fatal("the unique index over duplicates was built")
	}
	err := postgres.CheckIndexes(ctx, pool)
	if err == nil || !strings.Contains(err.Error(), "audit_dup") {
		t.Errorf("CheckIndexes = %v, want it to name audit_dup", err)
	}
	if _, err := postgres.Migrate(ctx, pool); err == nil {
		t.Error("Migrate succeeded with an invalid index")
	}
}

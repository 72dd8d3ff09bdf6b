package vectorstore_test

import (
	"context"
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/pgvector/pgvector-go"

	"github.com/biomatch/biomatch/engine"
	"github.com/biomatch/biomatch/internal/synth"
	"github.com/biomatch/biomatch/internal/testenv"
	"github.com/biomatch/biomatch/postgres"
	"github.com/biomatch/biomatch/vectorstore"
)

var gallery = engine.Gallery{Tenant: "acme", Version: "FACE3_1"}

func TestPGVectorSearch(t *testing.T) {
	pool := testenv.NewPool(t)
	ctx := context.Background()
	p := newStore(t, pool, vectorstore.PGVectorConfig{HNSWMinTemplates: 1 << 30})
	templates := testenv.Enroll(t, p, gallery, 300, 256)
	// The dimension's index is built afterwards, in the background, the way
	// the worker's index maintenance does it.
	if built, err := p.EnsureIndexes(ctx); err != nil || len(built) != 1 || built[0] != 256 {
		t.Fatalf("EnsureIndexes = %v, %v; want [256]", built, err)
	}

	for i := range 20 {
		probe := engine.Embedding(synth.Vector(256, uint64(i*7), 0.4, 1))
		exact, err := p.Nearest(ctx, gallery, probe, 10)
		if err != nil {
			t.Fatal(err)
		}
		if len(exact) != 10 {
			t.Fatalf("exact returned %d, want 10", len(exact))
		}
		for j, m := range exact {
			if want := engine.Cosine(templates[m.PersonID], probe); math.Abs(m.Score-want) > 1e-5 {
				t.Errorf("exact score %v, our cosine %v", m.Score, want)
			}
			if j > 0 && engine.CompareMatches(exact[j-1], m) > 0 {
				t.Errorf("exact results out of order at %d", j)
			}
		}
		hnsw, err := vectorstore.HNSWScan(ctx, pool, gallery, probe, 10, 200, false)
		if err != nil {
			t.Fatal(err)
		}
		if len(hnsw) == 0 || hnsw[0].PersonID != exact[0].PersonID {
			t.Errorf("probe %d: HNSW top-1 %v, exact top-1 %v", i, hnsw, exact[0])
		}
	}

	// The HNSW query must match the partial expression index (with sorting
	// ruled out, only that index can give the order).
	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, `SET LOCAL enable_sort = off`); err != nil {
		t.Fatal(err)
	}
	rows, err := tx.Query(ctx, `EXPLAIN SELECT id FROM templates WHERE dim = 256 AND tenant = $1 AND version = $2
		ORDER BY (embedding::vector(256)) <=> $3::vector(256) LIMIT 10`, gallery.Tenant, gallery.Version, pgvector.NewVector(make([]float32, 256)))
	if err != nil {
		t.Fatal(err)
	}
	plan, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(strings.Join(plan, "\n"), "templates_hnsw_256") {
		t.Errorf("the HNSW query does not use templates_hnsw_256:\n%s", strings.Join(plan, "\n"))
	}
}

// TestIndexesBuiltOutsideRequests: accepting an enroll never builds an
// index (that blocked template writes inside an HTTP request); EnsureIndexes
// builds one per dimension in use, concurrently, and mends one left invalid.
func TestIndexesBuiltOutsideRequests(t *testing.T) {
	pool := testenv.NewPool(t)
	ctx := context.Background()
	p := newStore(t, pool, vectorstore.PGVectorConfig{})
	hnsw := func() []string {
		t.Helper()
		rows, err := pool.Query(ctx, `SELECT c.relname || ':' || i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
			WHERE c.relname LIKE 'templates_hnsw_%' ORDER BY 1`)
		if err != nil {
			t.Fatal(err)
		}
		names, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatal(err)
		}
		return names
	}
	if err := p.CreateEnrollRequest(ctx, engine.EnrollRequest{ID: "r1", Gallery: gallery, Templates: []engine.Embedding{make(engine.Embedding, 384)}}); err != nil {
		t.Fatal(err)
	}
	if got := hnsw(); len(got) != 0 {
		t.Fatalf("accepting an enroll built %v", got)
	}
	testenv.Enroll(t, p, gallery, 3, 128)
	testenv.Enroll(t, p, gallery, 3, 512)
	// An interrupted build of dim 128 left an invalid index behind.
	// (A unique index over duplicate values fails CONCURRENTLY and stays invalid.)
	if _, err := pool.Exec(ctx, `CREATE UNIQUE INDEX CONCURRENTLY templates_hnsw_128 ON templates (tenant) WHERE dim = 128`); err == nil {
		t.Fatal("the unique index over duplicates was built")
	}
	if err := postgres.CheckIndexes(ctx, pool); err == nil {
		t.Fatal("CheckIndexes passed an invalid index")
	}
	built, err := p.EnsureIndexes(ctx)
	if err != nil || fmt.Sprint(built) != "[128 512]" {
		t.Fatalf("EnsureIndexes = %v, %v; want [128 512]", built, err)
	}
	if got, want := fmt.Sprint(hnsw()), "[templates_hnsw_128:true templates_hnsw_512:true]"; got != want {
		t.Errorf("indexes = %s, want %s", got, want)
	}
	if err := postgres.CheckIndexes(ctx, pool); err != nil {
		t.Error(err)
	}
	if built, err := p.EnsureIndexes(ctx); err != nil || len(built) != 0 {
		t.Errorf("EnsureIndexes again = %v, %v; want nothing to build", built, err)
	}
}

package vectorstore_test

import (
	"context"
	"io"
	"log/slog"
	"math"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/biomatch/biomatch/engine"
	"github.com/biomatch/biomatch/internal/synth"
	"github.com/biomatch/biomatch/internal/testenv"
	"github.com/biomatch/biomatch/postgres"
	"github.com/biomatch/biomatch/vectorstore"
	"github.com/biomatch/biomatch/vectorstore/kernel"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// fill enrolls persons of two identities' worth of samples each, in two
// galleries and two dimensions, and returns every stored row.
func fill(t *testing.T, p db, pool *pgxpool.Pool, persons int) []vectorstore.Row {
	t.Helper()
	var rows []vectorstore.Row
	for _, g := range []engine.Gallery{gallery, {Tenant: "other", Version: "FACE3_1"}} {
		err := p.InGallery(context.Background(), g, func(ctx context.Context, tx engine.GalleryTx) error {
			for i := range persons {
				dim := 256
				if i%5 == 0 {
					dim = 128
				}
				person, err := tx.CreatePerson(ctx, engine.Person{Gallery: g, PUID: engine.NewID(), GUID: engine.NewID()})
				if err != nil {
					return err
				}
				ts := []engine.Embedding{synth.Vector(dim, uint64(i), 0.3, 1), synth.Vector(dim, uint64(i), 0.3, 2)}
				if _, err := tx.AddTemplates(ctx, person, ts); err != nil {
					return err
				}
				for _, e := range ts {
					rows = append(rows, vectorstore.Row{PersonID: person.ID, Gallery: g, Embedding: e})
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	// Template ids come from the database, in insertion order per person.
	byPerson := map[int64][]int64{}
	ids := templateIDs(t, pool)
	for i := range rows {
		list := ids[rows[i].PersonID]
		rows[i].TemplateID = list[len(byPerson[rows[i].PersonID])]
		byPerson[rows[i].PersonID] = append(byPerson[rows[i].PersonID], rows[i].TemplateID)
	}
	return rows
}

func templateIDs(t *testing.T, pool *pgxpool.Pool) map[int64][]int64 {
	out := map[int64][]int64{}
	rows, err := pool.Query(context.Background(), `SELECT person_id, id FROM templates ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var person, id int64
		rows.Scan(&person, &id)
		out[person] = append(out[person], id)
	}
	return out
}

// reference is the plain float32 scan every index must equal.
func reference(rows []vectorstore.Row, g engine.Gallery, probe engine.Embedding, k int) []engine.Match {
	var all []engine.Match
	for _, r := range rows {
		if r.Gallery == g && len(r.Embedding) == len(probe) {
			all = append(all, engine.Match{TemplateID: r.TemplateID, PersonID: r.PersonID, Score: kernel.Dot64(r.Embedding, probe)})
		}
	}
	slices.SortFunc(all, engine.CompareMatches)
	return all[:min(k, len(all))]
}

// contract is the one test body every engine.Index passes: the top k of
// the plain scan, same template ids in the same order, scores within 1e-5.
func contract(t *testing.T, name string, idx engine.Index, rows []vectorstore.Row) {
	t.Helper()
	for i := range 30 {
		g := gallery
		if i%4 == 3 {
			g = engine.Gallery{Tenant: "other", Version: "FACE3_1"}
		}
		dim := []int{256, 128}[i%2]
		probe := engine.Embedding(synth.Vector(dim, uint64(i*3), 0.5, 99))
		for _, k := range []int{1, 10} {
			got, err := idx.Nearest(context.Background(), g, probe, k)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			want := reference(rows, g, probe, k)
			if len(got) != len(want) {
				t.Fatalf("%s probe %d k=%d: %d results, want %d", name, i, k, len(got), len(want))
			}
			for j := range want {
				if got[j].TemplateID != want[j].TemplateID || got[j].PersonID != want[j].PersonID || math.Abs(got[j].Score-want[j].Score) > 1e-5 {
					t.Fatalf("%s probe %d k=%d rank %d = %+v, want %+v", name, i, k, j, got[j], want[j])
				}
			}
		}
	}
}

// db is a test database's search and the store that writes it.
type db struct {
	*vectorstore.PGVector
	*postgres.Store
}

func newStore(t *testing.T, pool *pgxpool.Pool, cfg vectorstore.PGVectorConfig) db {
	t.Helper()
	p, err := vectorstore.NewPGVector(context.Background(), pool, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return db{p, postgres.NewStore(pool, p)}
}

func loadedSynced(t *testing.T, p db, int8 string) *vectorstore.Synced {
	t.Helper()
	s := vectorstore.NewSynced(p.PGVector, vectorstore.ExactConfig{Int8: int8}, 0, quiet)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { s.Follow(ctx) })
	t.Cleanup(func() { cancel(); wg.Wait() })
	deadline := time.Now().Add(20 * time.Second)
	for !s.Loaded() {
		if time.Now().After(deadline) {
			t.Fatal("Synced never loaded")
		}
		time.Sleep(5 * time.Millisecond)
	}
	return s
}

func TestIndexContract(t *testing.T) {
	pool := testenv.NewPool(t)
	pg := newStore(t, pool, vectorstore.PGVectorConfig{HNSWMinTemplates: 1 << 30}) // exact mode
	rows := fill(t, pg, pool, 150)

	contract(t, "Postgres (pgvector exact)", pg, rows)
	for _, int8 := range []string{"off", "on"} {
		contract(t, "Synced int8="+int8, loadedSynced(t, pg, int8), rows)
	}
	mem := vectorstore.NewExact(vectorstore.ExactConfig{})
	mem.Add(rows...)
	contract(t, "Exact", mem, rows)

	nvPool := testenv.NewPoolWithoutVector(t)
	noVector := newStore(t, nvPool, vectorstore.PGVectorConfig{})
	if noVector.HasVector() {
		t.Fatal("a database without pgvector got vector columns")
	}
	rowsNV := fill(t, noVector, nvPool, 60)
	contract(t, "Postgres without pgvector (SQL dot product)", noVector, rowsNV)
	contract(t, "Synced without pgvector", loadedSynced(t, noVector, "auto"), rowsNV)
}

// TestSyncedFollowsOtherProcesses: writes made through one store reach a
// Synced by LISTEN/NOTIFY alone.
func TestSyncedFollowsOtherProcesses(t *testing.T) {
	pool := testenv.NewPool(t)
	pg := newStore(t, pool, vectorstore.PGVectorConfig{})
	follower := loadedSynced(t, pg, "auto")
	rows := fill(t, pg, pool, 20)
	eventually := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out: %s", what)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	eventually("all rows arrive", func() bool { return follower.Len() == len(rows) })
	contract(t, "Synced after notifications", follower, rows)

	ps, err := pg.Persons(context.Background(), gallery.Tenant, []int64{rows[0].PersonID})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pg.DeletePerson(context.Background(), gallery.Tenant, ps[rows[0].PersonID].PUID, engine.AuditEntry{Tenant: gallery.Tenant}); err != nil {
		t.Fatal(err)
	}
	eventually("the delete arrives", func() bool { return follower.Len() == len(rows)-2 })
	got, _ := follower.Nearest(context.Background(), gallery, rows[0].Embedding, 3)
	for _, m := range got {
		if m.PersonID == rows[0].PersonID {
			t.Fatalf("deleted person %d still found", m.PersonID)
		}
	}
}

// TestAutoOverBudget: a Synced whose galleries exceed the memory budget
// holds nothing, and Auto answers from pgvector, still exactly; the
// budget is checked before loading, on the bytes the rows will take.
func TestAutoOverBudget(t *testing.T) {
	pool := testenv.NewPool(t)
	pg := newStore(t, pool, vectorstore.PGVectorConfig{HNSWMinTemplates: 1 << 30})
	rows := fill(t, pg, pool, 30)
	mem := vectorstore.NewSynced(pg.PGVector, vectorstore.ExactConfig{}, 1024, quiet) // 1 KiB: far too small
	if _, _, err := mem.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	if mem.Active() || mem.Len() != 0 {
		t.Fatalf("over budget: Active %v, Len %d; want inactive and empty", mem.Active(), mem.Len())
	}
	contract(t, "Auto over budget", &vectorstore.Auto{Mem: mem, PG: pg.PGVector}, rows)

	roomy := vectorstore.NewSynced(pg.PGVector, vectorstore.ExactConfig{}, 1<<30, quiet)
	if _, _, err := roomy.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	if !roomy.Active() || roomy.Len() != len(rows) {
		t.Fatalf("within budget: Active %v, Len %d; want active with %d", roomy.Active(), roomy.Len(), len(rows))
	}
	contract(t, "Auto within budget", &vectorstore.Auto{Mem: roomy, PG: pg.PGVector}, rows)

	// The budget is checked before reading a row, on the bytes the rows
	// will take (every copy the index keeps of them): a budget of exactly
	// that loads, one byte less reads nothing.
	for _, tc := range []struct {
		budget int64
		want   int
	}{{roomy.Bytes(), len(rows)}, {roomy.Bytes() - 1, 0}} {
		s := vectorstore.NewSynced(pg.PGVector, vectorstore.ExactConfig{}, tc.budget, quiet)
		n, _, err := s.Load(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if n != tc.want || s.Active() != (tc.want > 0) {
			t.Fatalf("budget %d (the rows take %d): read %d, active %v; want %d", tc.budget, roomy.Bytes(), n, s.Active(), tc.want)
		}
	}
}

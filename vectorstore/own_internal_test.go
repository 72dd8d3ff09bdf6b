package vectorstore

import (
	"context"
	"io"
	"log/slog"
	"slices"
	"testing"

	pgvector "github.com/pgvector/pgvector-go"

	"github.com/biomatch/biomatch/engine"
	"github.com/biomatch/biomatch/internal/synth"
	"github.com/biomatch/biomatch/internal/testenv"
	"github.com/biomatch/biomatch/postgres"
)

// TestFollowerTakesOwnWritesFromMemory: the notification of a bulk write
// this process committed is applied from the rows it wrote, not read back
// from PostgreSQL; another writer's is read. To tell the two apart, each
// write's first template is changed in PostgreSQL behind the index's back
// (no notification) before the follower applies the write.
func TestFollowerTakesOwnWritesFromMemory(t *testing.T) {
	pool := testenv.NewPool(t)
	ctx := context.Background()
	pg, err := NewPGVector(ctx, pool, PGVectorConfig{HNSWMinTemplates: 1 << 30})
	if err != nil {
		t.Fatal(err)
	}
	s := NewSynced(pg, ExactConfig{}, 0, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if _, _, err := s.Load(ctx); err != nil {
		t.Fatal(err)
	}
	g := engine.Gallery{Tenant: "own", Version: "FACE3_1"}
	mine := postgres.NewStore(pool, &Dedup{Mem: s, PG: pg})
	theirs := postgres.NewStore(pool, pg) // another process: its writes are not this index's own
	for i, tc := range []struct {
		name   string
		store  *postgres.Store
		fromDB bool
	}{{"own write", mine, false}, {"another process's write", theirs, true}} {
		written := engine.Embedding(synth.Vector(256, uint64(100+i), 0, 0))
		changed := engine.Embedding(synth.Vector(256, uint64(200+i), 0, 0))
		var persons []engine.Person
		err := tc.store.InGallery(ctx, g, func(ctx context.Context, tx engine.GalleryTx) error {
			var err error
			persons, err = tx.CreatePersons(ctx, g, []engine.NewPerson{{
				Person:    engine.Person{PUID: engine.NewID(), GUID: engine.NewID()},
				Templates: []engine.Embedding{written},
			}})
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		var ch postgres.Change
		err = pool.QueryRow(ctx, `UPDATE templates SET embedding = $1 WHERE person_id = $2 RETURNING id, id`,
			pgvector.NewVector(changed), persons[0].ID).Scan(&ch.FirstTemplate, &ch.LastTemplate)
		if err != nil {
			t.Fatal(err)
		}
		if err := pool.QueryRow(ctx, `SELECT seq FROM galleries WHERE tenant = $1 AND version = $2`, g.Tenant, g.Version).Scan(&ch.Seq); err != nil {
			t.Fatal(err)
		}
		ch.Tenant, ch.Version = g.Tenant, g.Version
		if err := s.refreshRange(ctx, pool, ch); err != nil {
			t.Fatal(err)
		}
		want, other := written, changed
		if tc.fromDB {
			want, other = changed, written
		}
		for probe, same := range map[*engine.Embedding]bool{&want: true, &other: false} {
			ms, err := s.Exact.Nearest(ctx, g, *probe, 10)
			if err != nil {
				t.Fatal(err)
			}
			i := slices.IndexFunc(ms, func(m engine.Match) bool { return m.PersonID == persons[0].ID })
			if i < 0 || same != (ms[i].Score > 0.999) {
				t.Errorf("%s: the index does not hold the template it should (read from PostgreSQL: %v): matches %v", tc.name, tc.fromDB, ms)
			}
		}
		s.reached(map[engine.Gallery]int64{g: ch.Seq}, false)
	}
}

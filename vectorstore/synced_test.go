package vectorstore_test

import (
	"context"
	"math"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/biomatch/biomatch/engine"
	"github.com/biomatch/biomatch/internal/synth"
	"github.com/biomatch/biomatch/internal/testenv"
	"github.com/biomatch/biomatch/postgres"
	"github.com/biomatch/biomatch/vectorstore"
)

// TestDeletedPersonNeverComesBack: refreshes of one person race with its
// deletion (the service's own follow-writes of an enroll, the delete's, and
// the NOTIFY follower's), many times over; after every delete the person is
// absent from the in-memory index. Erasure must be real.
func TestDeletedPersonNeverComesBack(t *testing.T) {
	pool := testenv.NewPool(t)
	pg := newStore(t, pool, vectorstore.PGVectorConfig{HNSWMinTemplates: 1 << 30})
	s := loadedSynced(t, pg, "off")
	ctx := context.Background()
	const iterations = 200
	for i := range iterations {
		e := engine.Embedding(synth.Vector(128, uint64(i), 0, 0))
		person := writePerson(t, pg, e)
		var wg sync.WaitGroup
		for range 3 { // follow-writes of the enroll, late
			wg.Go(func() {
				for range 3 {
					if err := s.PersonChanged(ctx, person.ID); err != nil {
						t.Error(err)
					}
				}
			})
		}
		wg.Go(func() { // the delete and its own follow-write
			if _, err := pg.DeletePerson(ctx, gallery.Tenant, person.PUID, engine.AuditEntry{Tenant: gallery.Tenant}); err != nil {
				t.Error(err)
			}
			if err := s.PersonChanged(ctx, person.ID); err != nil {
				t.Error(err)
			}
		})
		wg.Wait()
		ms, err := s.Nearest(ctx, gallery, e, 3)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range ms {
			if m.PersonID == person.ID {
				t.Fatalf("iteration %d: person %d was deleted, but the in-memory index still finds it (score %.3f)", i, person.ID, m.Score)
			}
		}
	}
}

// TestBulkWriteReachesFollowers: persons written in bulk (an import batch:
// COPY and one notification for the range of template ids) reach a
// following index, which then answers the batched dedup search like the
// per-probe one; a later delete of one of them removes it.
func TestBulkWriteReachesFollowers(t *testing.T) {
	pool := testenv.NewPool(t)
	pg := newStore(t, pool, vectorstore.PGVectorConfig{HNSWMinTemplates: 1 << 30})
	s := loadedSynced(t, pg, "on")
	dedup := &vectorstore.Dedup{Mem: s, PG: pg.PGVector, Wait: 5 * time.Second}
	store := postgres.NewStore(pool, dedup)
	ctx := context.Background()
	var news []engine.NewPerson
	var probes []engine.Embedding
	for i := range 50 {
		ts := []engine.Embedding{synth.Vector(256, uint64(9000+i), 0.3, 0), synth.Vector(256, uint64(9000+i), 0.3, 1)}
		news = append(news, engine.NewPerson{Person: engine.Person{PUID: engine.NewID(), GUID: engine.NewID()}, Templates: ts})
		probes = append(probes, synth.Vector(256, uint64(9000+i), 0.3, 2))
	}
	var persons []engine.Person
	err := store.InGallery(ctx, gallery, func(ctx context.Context, tx engine.GalleryTx) error {
		var err error
		if persons, err = tx.CreatePersons(ctx, gallery, news); err != nil {
			return err
		}
		// The same transaction sees its own bulk write (no index has it yet).
		own, err := tx.NearestBatch(ctx, gallery, probes[:3], 1, math.Inf(-1))
		if err != nil {
			return err
		}
		for i, ms := range own {
			if len(ms) == 0 || ms[0].PersonID != persons[i].ID {
				t.Errorf("probe %d in the writing transaction: %v, want person %d", i, ms, persons[i].ID)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// The next transaction's batched search must see them (it waits for
	// the follower to reach the gallery's sequence) and equal the per-probe one.
	err = store.InGallery(ctx, gallery, func(ctx context.Context, tx engine.GalleryTx) error {
		batch, err := tx.NearestBatch(ctx, gallery, probes, 3, math.Inf(-1))
		if err != nil {
			return err
		}
		for i, p := range probes {
			one, err := pg.PGVector.NearestIn(ctx, pool, gallery, 0, p, 3)
			if err != nil {
				return err
			}
			if diff := cmp.Diff(one, batch[i], cmpopts.EquateApprox(0, 1e-5)); diff != "" {
				t.Errorf("probe %d: batched in-memory search differs from the SQL scan (-sql +batch):\n%s", i, diff)
			}
			if len(batch[i]) == 0 || batch[i][0].PersonID != persons[i].ID {
				t.Errorf("probe %d: best match %v, want person %d", i, batch[i], persons[i].ID)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.DeletePerson(ctx, gallery.Tenant, persons[7].PUID, engine.AuditEntry{Tenant: gallery.Tenant}); err != nil {
		t.Fatal(err)
	}
	var seq int64
	if err := pool.QueryRow(ctx, `SELECT seq FROM galleries WHERE tenant = $1 AND version = $2`, gallery.Tenant, gallery.Version).Scan(&seq); err != nil {
		t.Fatal(err)
	}
	if err := s.WaitFor(ctx, gallery, seq, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	ms, _ := s.Nearest(ctx, gallery, probes[7], 5)
	for _, m := range ms {
		if m.PersonID == persons[7].ID {
			t.Fatalf("person %d was deleted after a bulk write, but the index still finds it", persons[7].ID)
		}
	}
}

// TestAwaitPersonReturnsOnceSearchable: a person committed by another
// writer (here straight to PostgreSQL, as the worker does) is searchable
// the moment AwaitPerson returns, each of many times; for a person nobody
// wrote, AwaitPerson ends with its context.
func TestAwaitPersonReturnsOnceSearchable(t *testing.T) {
	pool := testenv.NewPool(t)
	pg := newStore(t, pool, vectorstore.PGVectorConfig{HNSWMinTemplates: 1 << 30})
	s := loadedSynced(t, pg, "on")
	ctx := context.Background()

	short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	if err := s.AwaitPerson(short, 1<<40); err == nil {
		t.Fatal("AwaitPerson of a person nobody wrote returned nil")
	}

	for i := range 50 {
		e := engine.Embedding(synth.Vector(128, uint64(5000+i), 0, 0))
		person := writePerson(t, pg, e)
		wait, cancel := context.WithTimeout(ctx, 20*time.Second)
		err := s.AwaitPerson(wait, person.ID)
		cancel()
		if err != nil {
			t.Fatalf("person %d: AwaitPerson: %v", i, err)
		}
		ms, err := s.Nearest(ctx, gallery, e, 1)
		if err != nil {
			t.Fatal(err)
		}
		if len(ms) == 0 || ms[0].PersonID != person.ID {
			t.Fatalf("person %d: AwaitPerson returned, but the index finds %v, want person %d", i, ms, person.ID)
		}
	}
}

// writePerson commits a new person of gallery with one template, straight
// to PostgreSQL, as the worker does.
func writePerson(t *testing.T, pg db, e engine.Embedding) engine.Person {
	t.Helper()
	var person engine.Person
	err := pg.InGallery(context.Background(), gallery, func(ctx context.Context, tx engine.GalleryTx) error {
		var err error
		if person, err = tx.CreatePerson(ctx, engine.Person{Gallery: gallery, PUID: engine.NewID(), GUID: engine.NewID()}); err != nil {
			return err
		}
		_, err = tx.AddTemplates(ctx, person, []engine.Embedding{e})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return person
}

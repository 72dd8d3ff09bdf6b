package vectorstore_test

import (
	"context"
	"sync"
	"testing"

	"github.com/biomatch/biomatch/engine"
	"github.com/biomatch/biomatch/internal/synth"
	"github.com/biomatch/biomatch/internal/testenv"
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
		var person engine.Person
		err := pg.InGallery(ctx, gallery, func(ctx context.Context, tx engine.GalleryTx) error {
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

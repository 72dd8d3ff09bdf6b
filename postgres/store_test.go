package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/biomatch/biomatch/engine"
	"github.com/biomatch/biomatch/internal/synth"
	"github.com/biomatch/biomatch/internal/testenv"
	"github.com/biomatch/biomatch/postgres"
	"github.com/biomatch/biomatch/vectorstore"
)

var gallery = engine.Gallery{Tenant: "acme", Version: "FACE3_1"}

// newStore returns a Store on a fresh test database, searching with pgvector.
func newStore(t *testing.T) (*pgxpool.Pool, *vectorstore.PGVector, *postgres.Store) {
	t.Helper()
	pool := testenv.NewPool(t)
	pg, err := vectorstore.NewPGVector(context.Background(), pool, vectorstore.PGVectorConfig{})
	if err != nil {
		t.Fatal(err)
	}
	return pool, pg, postgres.NewStore(pool, pg)
}

func TestGalleryCountsAndDelete(t *testing.T) {
	pool, pg, p := newStore(t)
	ctx := context.Background()
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
	if other, err := p.Persons(ctx, "another-tenant", []int64{victim}); err != nil || len(other) != 0 {
		t.Fatalf("Persons of another tenant = %v, %v; want none", other, err)
	}
	ps, err := p.Persons(ctx, gallery.Tenant, []int64{victim})
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

// TestAuditGroupCommit holds the audit table locked while one entry is
// being written, lets 50 more requests wait, then checks that one more
// commit wrote all 50, every entry is in the table and every caller
// returned only after its entry was committed.
func TestAuditGroupCommit(t *testing.T) {
	pool := testenv.NewPool(t)
	ctx := context.Background()
	p := postgres.NewStore(pool, nil)
	lock, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := lock.Exec(ctx, `LOCK TABLE audit_log IN EXCLUSIVE MODE`); err != nil {
		t.Fatal(err)
	}
	entry := func(i int) engine.AuditEntry {
		return engine.AuditEntry{Tenant: "acme", Action: "identify", PUID: fmt.Sprint("p", i), RequestID: fmt.Sprint("req-", i)}
	}
	var wg sync.WaitGroup
	var returned atomic.Int64
	audit := func(i int) {
		if err := p.Audit(ctx, entry(i)); err != nil {
			t.Errorf("Audit %d: %v", i, err)
		}
		returned.Add(1)
	}
	wg.Go(func() { audit(0) })
	for commits, _, _ := p.AuditStats(); commits == 0; commits, _, _ = p.AuditStats() {
		runtime.Gosched()
	}
	for i := 1; i <= 50; i++ {
		wg.Go(func() { audit(i) })
	}
	for _, _, waiting := p.AuditStats(); waiting < 50; _, _, waiting = p.AuditStats() {
		runtime.Gosched()
	}
	if n := returned.Load(); n != 0 {
		t.Fatalf("%d Audit calls returned before their entry could be committed", n)
	}
	if err := lock.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	var n int
	if err := pool.QueryRow(ctx, `SELECT count(DISTINCT request_id) FROM audit_log WHERE request_id LIKE 'req-%'`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 51 {
		t.Errorf("%d of 51 audit entries are in the table", n)
	}
	if commits, entries, _ := p.AuditStats(); commits != 2 || entries != 51 {
		t.Errorf("51 entries, 50 of them waiting together, took %d commits (%d entries); want 2", commits, entries)
	}
}

// TestEnrollRecordsGroupCommit: while one accepted enroll's record waits
// (the table locked), the 20 that arrive meanwhile wait too, none returning
// before its row can be committed; the next commit records them together,
// except one bad request (a key id that is no UUID), which fails alone, and
// one whose caller's deadline passed while it waited, which is not written.
// Recording a request again is no error.
func TestEnrollRecordsGroupCommit(t *testing.T) {
	pool, _, p := newStore(t)
	ctx := context.Background()
	lock, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := lock.Exec(ctx, `LOCK TABLE enroll_requests IN EXCLUSIVE MODE`); err != nil {
		t.Fatal(err)
	}
	request := func(i int) engine.EnrollRequest {
		return engine.EnrollRequest{ID: fmt.Sprint("er-", i), Gallery: gallery, RequestID: fmt.Sprint("req-", i),
			Templates: []engine.Embedding{synth.Vector(128, uint64(i), 0, 0)}, State: engine.Pending}
	}
	const bad, late = 7, 21
	var wg sync.WaitGroup
	var returned atomic.Int64
	errs := make([]error, 22)
	record := func(i int) {
		r := request(i)
		ctx := ctx
		switch i {
		case bad:
			r.KeyID = "not-a-uuid"
		case late:
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, 100*time.Millisecond)
			defer cancel()
		}
		errs[i] = p.CreateEnrollRequest(ctx, r)
		returned.Add(1)
	}
	wg.Go(func() { record(0) })
	for commits, _, _ := p.RecordStats(); commits == 0; commits, _, _ = p.RecordStats() {
		runtime.Gosched()
	}
	for i := 1; i <= 20; i++ {
		wg.Go(func() { record(i) })
	}
	for _, _, waiting := p.RecordStats(); waiting < 20; _, _, waiting = p.RecordStats() {
		runtime.Gosched()
	}
	record(late) // returns at its deadline, the table still locked
	if n := returned.Load(); n != 1 {
		t.Fatalf("%d CreateEnrollRequest calls returned before their row could be committed; want only the late one", n-1)
	}
	if err := lock.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	for i, err := range errs {
		if (err != nil) != (i == bad || i == late) {
			t.Errorf("request %d: err = %v; want an error for requests %d and %d only", i, err, bad, late)
		}
	}
	for i := range 22 {
		got, err := p.EnrollRequest(ctx, fmt.Sprint("er-", i))
		switch {
		case i == bad || i == late:
			if !errors.Is(err, engine.ErrNotFound) {
				t.Errorf("request %d: %v; want it not recorded", i, err)
			}
		case err != nil:
			t.Errorf("request %d: %v", i, err)
		case got.RequestID != fmt.Sprint("req-", i) || got.State != engine.Pending || !reflect.DeepEqual(got.Templates, request(i).Templates):
			t.Errorf("request %d recorded as %+v", i, got)
		}
	}
	if commits, records, _ := p.RecordStats(); commits != 2 || records != 22 {
		t.Errorf("22 records, 21 of them waiting together, took %d commits (%d records); want 2", commits, records)
	}
	// A request recorded again (a batch whose reply was lost after its
	// commit, then each retried alone) is already there: no error.
	if err := p.CreateEnrollRequest(ctx, request(3)); err != nil {
		t.Errorf("recording request 3 again: %v; want nil, its row is there", err)
	}
}

// TestPersonLookupsCombine: while one person lookup waits (the persons
// table locked), lookups of two tenants that arrive meanwhile are answered
// by one query, each with its own tenant's persons only: the other
// tenant's ids, and ids of nobody, are absent.
func TestPersonLookupsCombine(t *testing.T) {
	pool, _, p := newStore(t)
	ctx := context.Background()
	other := engine.Gallery{Tenant: "globex", Version: gallery.Version}
	ids := map[string][]int64{}
	for _, g := range []engine.Gallery{gallery, other} {
		for id := range testenv.Enroll(t, p, g, 4, 128) {
			ids[g.Tenant] = append(ids[g.Tenant], id)
		}
	}
	lock, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := lock.Exec(ctx, `LOCK TABLE persons IN ACCESS EXCLUSIVE MODE`); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	lookup := func(tenant string, want []int64) {
		asked := append(slices.Clone(ids["acme"]), append(slices.Clone(ids["globex"]), 1<<40)...)
		got, err := p.Persons(ctx, tenant, asked)
		if err != nil {
			t.Errorf("Persons(%s): %v", tenant, err)
			return
		}
		if len(got) != len(want) {
			t.Errorf("Persons(%s) found %d persons, want %d", tenant, len(got), len(want))
		}
		for _, id := range want {
			if got[id].ID != id || got[id].Gallery.Tenant != tenant || got[id].PUID == "" {
				t.Errorf("Persons(%s)[%d] = %+v", tenant, id, got[id])
			}
		}
	}
	wg.Go(func() { lookup("acme", ids["acme"]) })
	for queries, _, _ := p.LookupStats(); queries == 0; queries, _, _ = p.LookupStats() {
		runtime.Gosched()
	}
	for i := range 20 {
		tenant := []string{"acme", "globex"}[i%2]
		wg.Go(func() { lookup(tenant, ids[tenant]) })
	}
	for _, _, waiting := p.LookupStats(); waiting < 20; _, _, waiting = p.LookupStats() {
		runtime.Gosched()
	}
	if err := lock.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if queries, lookups, _ := p.LookupStats(); queries != 2 || lookups != 21 {
		t.Errorf("21 lookups, 20 of them waiting together, took %d queries (%d lookups); want 2", queries, lookups)
	}
}

// TestPendingReadStartsAtLastBatch: a gallery's read of pending enrolls
// starts a little before the oldest request its previous batch in this
// process took, so it does not step over the index entries of every
// request finished since the last vacuum. A request stamped earlier than
// that is not in the batch but is still decided by its own task (found
// by its id); another process (a Store of its own) reads from the start.
func TestPendingReadStartsAtLastBatch(t *testing.T) {
	pool, pg, p := newStore(t)
	ctx := context.Background()
	create := func(id string, age time.Duration) {
		r := engine.EnrollRequest{ID: id, Gallery: gallery, RequestID: id,
			Templates: []engine.Embedding{synth.Vector(128, 1, 0, 0)}, State: engine.Pending}
		if err := p.CreateEnrollRequest(ctx, r); err != nil {
			t.Fatal(err)
		}
		if _, err := pool.Exec(ctx, `UPDATE enroll_requests SET created_at = now() - $2::interval WHERE id = $1`,
			id, fmt.Sprintf("%d seconds", int(age.Seconds()))); err != nil {
			t.Fatal(err)
		}
	}
	pending := func(s *postgres.Store) (ids []string) {
		t.Helper()
		err := s.InGallery(ctx, gallery, func(ctx context.Context, tx engine.GalleryTx) error {
			rs, err := tx.LockPendingEnrolls(ctx, gallery, "", 64)
			for _, r := range rs {
				ids = append(ids, r.ID)
			}
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		return ids
	}
	create("recent", 10*time.Second)
	create("newest", 0)
	if got := pending(p); !slices.Equal(got, []string{"recent", "newest"}) {
		t.Fatalf("first batch read %v; want [recent newest]", got)
	}
	create("straggler", time.Hour) // stamped long before the batch's oldest
	if got := pending(p); !slices.Equal(got, []string{"recent", "newest"}) {
		t.Errorf("second batch read %v; want [recent newest], not the straggler before them", got)
	}
	err := p.InGallery(ctx, gallery, func(ctx context.Context, tx engine.GalleryTx) error {
		r, err := tx.LockEnrollRequest(ctx, "straggler")
		if err == nil && r.State != engine.Pending {
			err = fmt.Errorf("state %q", r.State)
		}
		return err
	})
	if err != nil {
		t.Errorf("the straggler's own task cannot take it: %v", err)
	}
	if got := pending(postgres.NewStore(pool, pg)); !slices.Equal(got, []string{"straggler", "recent", "newest"}) {
		t.Errorf("another process's first batch read %v; want all three, oldest first", got)
	}
}

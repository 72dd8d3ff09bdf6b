package vectorstore_test

import (
	"context"
	"io"
	"log/slog"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/biomatch/biomatch/engine"
	"github.com/biomatch/biomatch/internal/synth"
	"github.com/biomatch/biomatch/internal/testenv"
	"github.com/biomatch/biomatch/postgres"
	"github.com/biomatch/biomatch/vectorstore"
)

// noJobs is a queue whose worker is this test, calling ProcessEnroll.
type noJobs struct{}

func (noJobs) EnqueueEnroll(context.Context, string) error { return nil }

// decide submits an enroll of v to svc and processes it, as the worker
// does, returning the decision.
func decide(t *testing.T, svc *engine.Service, store engine.Store, v []float32) engine.EnrollResult {
	t.Helper()
	ctx := context.Background()
	raw := synth.Float64s(v)
	req, err := svc.SubmitEnroll(ctx, engine.EnrollInput{Gallery: gallery, Vectors: [][]float64{raw}})
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.ProcessEnroll(ctx, req.ID); err != nil {
		t.Fatal(err)
	}
	got, err := store.EnrollRequest(ctx, req.ID)
	if err != nil {
		t.Fatal(err)
	}
	return got.Result
}

func newDedupService(t *testing.T, store engine.Store, index engine.Index) *engine.Service {
	return testenv.NewService(t, engine.Deps{Store: store, Index: index, Jobs: noJobs{},
		Log: slog.New(slog.NewTextHandler(io.Discard, nil))}, engine.Config{EnrollWait: 1})
}

// TestDedupIsExactWhereHNSWMisses: in a gallery where the HNSW index misses
// a returning person's true neighbour, the enroll decision still recognises
// the person, with the SQL scan and with the in-memory index. (Before, the
// decision searched through HNSW beyond HNSW_MIN_TEMPLATES and made a second
// identity.)
func TestDedupIsExactWhereHNSWMisses(t *testing.T) {
	pool := testenv.NewPool(t)
	ctx := context.Background()
	// HNSW for every gallery size, at the smallest ef_search: it misses often.
	pg := newStore(t, pool, vectorstore.PGVectorConfig{HNSWMinTemplates: 1, EfSearch: 1})
	testenv.Enroll(t, pg.Store, gallery, 2000, 128)
	if _, err := pg.EnsureIndexes(ctx); err != nil {
		t.Fatal(err)
	}
	// Analysed, the planner takes the HNSW index (unanalysed, it may sort
	// the gallery's rows: exact by luck, as the issue found).
	if _, err := pool.Exec(ctx, `ANALYZE templates`); err != nil {
		t.Fatal(err)
	}
	var missed []float32
	var truth engine.Match
	for i := range uint64(300) {
		probe := synth.Vector(128, i, 0.3, 7) // another sample of identity i: cosine ≈ 0.95
		hnsw, err := pg.Nearest(ctx, gallery, probe, 1)
		if err != nil {
			t.Fatal(err)
		}
		exact, err := vectorstore.ExactScan(ctx, pool, gallery, probe, 1)
		if err != nil {
			t.Fatal(err)
		}
		if len(hnsw) == 0 || hnsw[0].PersonID != exact[0].PersonID {
			missed, truth = probe, exact[0]
			break
		}
	}
	if missed == nil {
		t.Fatal("HNSW at ef_search 1 found the neighbour of all 300 probes: the premise of this test no longer holds")
	}
	t.Logf("HNSW misses person %d (exact score %.3f)", truth.PersonID, truth.Score)

	mem := loadedSynced(t, pg, "auto")
	for name, search := range map[string]postgres.TxSearcher{
		"SQL scan":        pg.PGVector,
		"in-memory index": &vectorstore.Dedup{Mem: mem, PG: pg.PGVector},
	} {
		store := postgres.NewStore(pool, search)
		res := decide(t, newDedupService(t, store, pg), store, missed)
		if res.Outcome != engine.Existing || res.Person.ID != truth.PersonID {
			t.Errorf("%s: enroll of a returning person = %s person %d, want existing person %d", name, res.Outcome, res.Person.ID, truth.PersonID)
		}
	}
}

// TestDedupWaitsForTheIndex: a person committed by another process an
// instant before the decision is recognised through the in-memory index:
// the decision waits until the index reflects the gallery's change sequence.
func TestDedupWaitsForTheIndex(t *testing.T) {
	pool := testenv.NewPool(t)
	pg := newStore(t, pool, vectorstore.PGVectorConfig{})
	mem := loadedSynced(t, pg, "auto")
	store := postgres.NewStore(pool, &vectorstore.Dedup{Mem: mem, PG: pg.PGVector})
	svc := newDedupService(t, store, mem)
	other := newDedupService(t, pg.Store, pg) // another process: it writes, this one follows by NOTIFY
	for i := range uint64(20) {
		first := decide(t, other, pg.Store, synth.Vector(256, 5000+i, 0.2, 1))
		again := decide(t, svc, store, synth.Vector(256, 5000+i, 0.2, 2))
		if first.Outcome != engine.Created || again.Outcome != engine.Existing || again.Person.ID != first.Person.ID {
			t.Fatalf("identity %d: first %s %d, then %s %d; want the second recognised as the first", i,
				first.Outcome, first.Person.ID, again.Outcome, again.Person.ID)
		}
	}
}

// TestBatchedEnrollOnPostgres: the enrolls waiting in a gallery are decided
// in one transaction against the in-memory index and each other: five
// identities, two enrolls each, make five persons.
func TestBatchedEnrollOnPostgres(t *testing.T) {
	pool := testenv.NewPool(t)
	pg := newStore(t, pool, vectorstore.PGVectorConfig{})
	testenv.Enroll(t, pg.Store, gallery, 50, 256) // a gallery to search
	mem := loadedSynced(t, pg, "auto")
	store := postgres.NewStore(pool, &vectorstore.Dedup{Mem: mem, PG: pg.PGVector})
	svc := newDedupService(t, store, mem)
	ctx := context.Background()
	var ids []string
	for sample := range uint64(2) {
		for id := range uint64(5) {
			v := synth.Vector(256, 9000+id, 0.2, sample)
			raw := synth.Float64s(v)
			req, err := svc.SubmitEnroll(ctx, engine.EnrollInput{Gallery: gallery, Vectors: [][]float64{raw}})
			if err != nil {
				t.Fatal(err)
			}
			ids = append(ids, req.ID)
		}
	}
	if err := svc.ProcessEnroll(ctx, ids[0]); err != nil {
		t.Fatal(err)
	}
	persons := map[int64]int{}
	for i, id := range ids {
		r, err := store.EnrollRequest(ctx, id)
		if err != nil || r.State != engine.Done {
			t.Fatalf("request %d after one decision: %v, %v; want done", i, r.State, err)
		}
		persons[r.Result.Person.ID]++
		if i >= 5 && r.Result.Outcome != engine.Existing {
			t.Errorf("second sample of identity %d: %s, want existing", i-5, r.Result.Outcome)
		}
	}
	if len(persons) != 5 {
		t.Errorf("10 enrolls of 5 faces made %d persons, want 5", len(persons))
	}
}

// TestWaitingEnrollIsWoken: an enroll waiting for the worker is answered
// when the worker commits, by notification: with polling off (an hour
// between looks) it still comes back done, not queued; and from the
// notification alone: the API reads nothing after recording the request,
// and answers what reading it would return.
func TestWaitingEnrollIsWoken(t *testing.T) {
	pool := testenv.NewPool(t)
	pg := newStore(t, pool, vectorstore.PGVectorConfig{})
	finished := postgres.NewFinished(pool, slog.New(slog.NewTextHandler(io.Discard, nil)))
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { finished.Follow(ctx) })
	defer func() { cancel(); wg.Wait() }()
	jobs := &workerJobs{}
	quietLog := slog.New(slog.NewTextHandler(io.Discard, nil))
	api := &countingStore{Store: pg.Store}
	svc := testenv.NewService(t, engine.Deps{Store: api, Index: pg, Finished: finished, Jobs: jobs, Log: quietLog},
		engine.Config{EnrollWait: 30 * time.Second, PollInterval: time.Hour})
	jobs.svc = testenv.NewService(t, engine.Deps{Store: pg.Store, Index: pg, Jobs: noJobs{}, Log: quietLog}, engine.Config{})
	<-finished.Listening()
	for i := range uint64(5) {
		v := synth.Vector(256, 100+i, 0, 0)
		raw := synth.Float64s(v)
		req, err := svc.SubmitEnroll(context.Background(), engine.EnrollInput{Gallery: gallery, Vectors: [][]float64{raw}})
		if err != nil || req.State != engine.Done || req.Result.Outcome != engine.Created {
			t.Fatalf("enroll %d = %s %s, %v; want done (woken by the worker's commit)", i, req.State, req.Result.Outcome, err)
		}
		read, err := pg.Store.EnrollRequest(context.Background(), req.ID)
		if err != nil || !reflect.DeepEqual(req, read) {
			t.Errorf("enroll %d answered\n%+v\nreading it returns\n%+v, %v", i, req, read, err)
		}
	}
	jobs.wg.Wait()
	if n := api.reads.Load(); n != 0 {
		t.Errorf("the API read enroll requests %d times; the notifications carried them", n)
	}
}

// countingStore counts EnrollRequest reads.
type countingStore struct {
	*postgres.Store
	reads atomic.Int64
}

func (c *countingStore) EnrollRequest(ctx context.Context, id string) (engine.EnrollRequest, error) {
	c.reads.Add(1)
	return c.Store.EnrollRequest(ctx, id)
}

// workerJobs processes each enqueued enroll in a goroutine, as a worker would.
type workerJobs struct {
	svc *engine.Service
	wg  sync.WaitGroup
}

func (j *workerJobs) EnqueueEnroll(ctx context.Context, id string) error {
	j.wg.Go(func() { j.svc.ProcessEnroll(context.Background(), id) })
	return nil
}

// TestOwnWritesNeedNoNotification: the persons a process's enroll created
// are in its in-memory index for its next decision without their
// notification (this index follows nothing), so that decision does not
// wait; a person another process created in between is not taken that way
// (the gallery moved on), and that decision falls back to the exact SQL
// scan once its wait ends.
func TestOwnWritesNeedNoNotification(t *testing.T) {
	pool := testenv.NewPool(t)
	pg := newStore(t, pool, vectorstore.PGVectorConfig{})
	testenv.Enroll(t, pg.Store, gallery, 20, 256)
	ctx := context.Background()
	mem := vectorstore.NewSynced(pg.PGVector, vectorstore.ExactConfig{}, 0, quiet) // loaded once, never following
	if _, _, err := mem.Load(ctx); err != nil {
		t.Fatal(err)
	}
	var logged strings.Builder
	var logMu sync.Mutex
	log := slog.New(slog.NewTextHandler(&lockedWriter{w: &logged, mu: &logMu}, nil))
	store := postgres.NewStore(pool, &vectorstore.Dedup{Mem: mem, PG: pg.PGVector, Wait: 200 * time.Millisecond,
		BatchWait: 200 * time.Millisecond, Log: log})
	svc := newDedupService(t, store, mem)

	before := mem.Len()
	first := decide(t, svc, store, synth.Vector(256, 7100, 0.2, 1))
	again := decide(t, svc, store, synth.Vector(256, 7100, 0.2, 2))
	if first.Outcome != engine.Created || again.Outcome != engine.Existing || again.Person.ID != first.Person.ID {
		t.Fatalf("first %s %d, then %s %d; want the second recognised as the first", first.Outcome, first.Person.ID, again.Outcome, again.Person.ID)
	}
	if got := mem.Len(); got != before+1 {
		t.Errorf("index holds %d templates, want %d: the own write was not applied", got, before+1)
	}
	logMu.Lock()
	if strings.Contains(logged.String(), "behind") {
		t.Errorf("the decision after an own write waited for the index:\n%s", logged.String())
	}
	logMu.Unlock()

	// Another process writes after this one: the gallery is no longer at
	// this process's last write, which is not applied.
	mine := decide(t, svc, store, synth.Vector(256, 7200, 0.2, 1))
	other := newDedupService(t, pg.Store, pg)
	theirs := decide(t, other, pg.Store, synth.Vector(256, 7300, 0.2, 1))
	mineAgain := decide(t, svc, store, synth.Vector(256, 7200, 0.2, 2))
	theirsAgain := decide(t, svc, store, synth.Vector(256, 7300, 0.2, 2))
	if mineAgain.Outcome != engine.Existing || mineAgain.Person.ID != mine.Person.ID ||
		theirsAgain.Outcome != engine.Existing || theirsAgain.Person.ID != theirs.Person.ID {
		t.Fatalf("after another process's write: %s %d (want existing %d), %s %d (want existing %d)",
			mineAgain.Outcome, mineAgain.Person.ID, mine.Person.ID, theirsAgain.Outcome, theirsAgain.Person.ID, theirs.Person.ID)
	}
	if got := mem.Len(); got != before+1 {
		t.Errorf("index holds %d templates, want %d: a write was applied though the gallery had moved on", got, before+1)
	}
	logMu.Lock()
	defer logMu.Unlock()
	if !strings.Contains(logged.String(), "behind") {
		t.Error("the decisions after another process's write did not wait for the index (and fall back)")
	}
}

type lockedWriter struct {
	w  io.Writer
	mu *sync.Mutex
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

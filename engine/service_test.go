package engine_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/biomatch/biomatch/engine"
	"github.com/biomatch/biomatch/internal/synth"
	"github.com/biomatch/biomatch/internal/testenv"
)

// The domain's rules on the in-memory store: fast, no database.

var g = engine.Gallery{Tenant: "acme", Version: "FACE3_1"}

// face is sample `sample` of synthetic identity id (noise 0.3: cosine ≈ 0.95
// to the identity).
func face(id, sample uint64) [][]float64 {
	v := synth.Vector(512, id, 0.3, sample)
	return [][]float64{synth.Float64s(v)}
}

func probe(t *testing.T, id, sample uint64) engine.Embedding {
	t.Helper()
	p, err := engine.Probe(face(id, sample))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// newService is a Service on a fresh memStore whose enrolls are processed
// at once, as by a worker.
func newService(t *testing.T, cfg engine.Config) (*engine.Service, *memStore) {
	t.Helper()
	store := newMemStore()
	jobs := &inlineJobs{}
	if cfg.EnrollWait == 0 {
		cfg.EnrollWait = 5 * time.Second
	}
	cfg.PollInterval = time.Millisecond
	svc := testenv.NewService(t, engine.Deps{Store: store, Index: store, Follower: store, Jobs: jobs,
		Log: slog.New(slog.NewTextHandler(io.Discard, nil))}, cfg)
	jobs.svc = svc
	t.Cleanup(jobs.wg.Wait)
	return svc, store
}

func enroll(t *testing.T, svc *engine.Service, vectors [][]float64, externalID string) engine.EnrollResult {
	t.Helper()
	req, err := svc.SubmitEnroll(context.Background(), engine.EnrollInput{Gallery: g, Vectors: vectors, ExternalID: externalID})
	if err != nil {
		t.Fatal(err)
	}
	if req.State == engine.Pending {
		t.Fatal("the enroll did not finish")
	}
	return req.Result
}

func TestEnrollCreatesThenRecognises(t *testing.T) {
	svc, store := newService(t, engine.Config{})
	alice := enroll(t, svc, face(1, 1), "")
	if alice.Outcome != engine.Created || alice.Person.EnrollLevel != 1 || !engine.IsID(alice.Person.PUID) {
		t.Fatalf("enroll alice = %+v, want a new person", alice)
	}
	again := enroll(t, svc, face(1, 2), "")
	if again.Outcome != engine.Existing || again.Person.ID != alice.Person.ID || again.Person.EnrollLevel != 2 || again.Score < 0.8 {
		t.Fatalf("enroll alice again = %+v, want %d recognised at level 2", again, alice.Person.ID)
	}
	bob := enroll(t, svc, face(2, 1), "")
	if bob.Outcome != engine.Created || bob.Person.ID == alice.Person.ID {
		t.Fatalf("enroll bob = %+v, want another person", bob)
	}
	if len(store.followed) < 3 {
		t.Errorf("the follower heard of %d writes, want every enroll (3)", len(store.followed))
	}
}

func TestEnrollKeepsAtMostMaxTemplates(t *testing.T) {
	svc, _ := newService(t, engine.Config{MaxTemplatesPerPerson: 3})
	var last engine.EnrollResult
	for sample := range uint64(6) {
		last = enroll(t, svc, face(1, sample), "")
	}
	if last.Outcome != engine.Existing || last.Person.EnrollLevel != 3 {
		t.Errorf("after 6 enrolls of one face: %+v, want level 3 (the maximum)", last)
	}
}

func TestEnrollUserIdentifierRules(t *testing.T) {
	svc, _ := newService(t, engine.Config{})
	u1 := enroll(t, svc, face(1, 1), "u1")
	if u1.Outcome != engine.Created || u1.Person.ExternalID != "u1" {
		t.Fatalf("enroll u1 = %+v", u1)
	}
	for _, tc := range []struct {
		name     string
		vectors  [][]float64
		external string
		want     engine.Outcome
	}{
		{"same face, another user_identifier", face(1, 2), "u2", engine.Rejected},
		{"another face, the same user_identifier", face(2, 1), "u1", engine.Rejected},
		{"same face, no user_identifier", face(1, 3), "", engine.Existing},
		{"same face, same user_identifier", face(1, 4), "u1", engine.Existing},
	} {
		if got := enroll(t, svc, tc.vectors, tc.external); got.Outcome != tc.want {
			t.Errorf("%s: %+v, want %s", tc.name, got, tc.want)
		}
	}
	// A face enrolled without an id takes the first one it is given.
	anon := enroll(t, svc, face(3, 1), "")
	named := enroll(t, svc, face(3, 2), "u3")
	if named.Outcome != engine.Existing || named.Person.ID != anon.Person.ID || named.Person.ExternalID != "u3" {
		t.Errorf("naming an anonymous person = %+v", named)
	}
}

func TestEnrollFramesThatDisagree(t *testing.T) {
	svc, _ := newService(t, engine.Config{})
	frames := append(face(1, 1), face(2, 1)...)
	if _, err := svc.SubmitEnroll(context.Background(), engine.EnrollInput{Gallery: g, Vectors: frames}); !errors.Is(err, engine.ErrRejected) {
		t.Errorf("two faces in one enroll: %v, want ErrRejected", err)
	}
	var five [][]float64
	for sample := range uint64(4) {
		five = append(five, face(1, sample)...)
	}
	five = append(five, face(2, 1)...)
	res := enroll(t, svc, five, "")
	if res.Outcome != engine.Created || res.Person.EnrollLevel != 4 {
		t.Errorf("four frames of one face and an outlier = %+v, want the outlier dropped (level 4)", res)
	}
}

func TestIdentifyThresholdAndOnePerPerson(t *testing.T) {
	svc, _ := newService(t, engine.Config{})
	alice := enroll(t, svc, face(1, 1), "").Person
	enroll(t, svc, face(1, 2), "")
	bob := enroll(t, svc, face(2, 1), "").Person
	ctx := context.Background()

	cands, _, err := svc.Identify(ctx, g, probe(t, 1, 9), 5, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(cands) != 1 || cands[0].Person.ID != alice.ID || cands[0].Person.EnrollLevel != 2 {
		t.Errorf("Identify(alice, k=5) = %+v, want alice alone (one entry though she has 2 templates; bob under the threshold)", cands)
	}
	if cands, _, _ := svc.Identify(ctx, g, probe(t, 3, 1), 1, ""); len(cands) != 0 {
		t.Errorf("Identify(a stranger) = %+v, want none", cands)
	}
	if cands, _, _ := svc.Identify(ctx, engine.Gallery{Tenant: "other", Version: g.Version}, probe(t, 1, 9), 1, ""); len(cands) != 0 {
		t.Errorf("Identify in another tenant's gallery = %+v, want none", cands)
	}
	_ = bob
}

// TestZeroMatchThresholdIsHonoured: an operator's MATCH_THRESHOLD=0 makes a
// weak resemblance (cosine ≈ 0.3) a match, where the default 0.5 would not.
func TestZeroMatchThresholdIsHonoured(t *testing.T) {
	weak := func() engine.Embedding {
		a := synth.Vector(512, 1, 0.3, 1)
		b := synth.Vector(512, 99, 0, 0)
		mix := make([]float64, len(a))
		for i := range a {
			mix[i] = 0.3*float64(a[i]) + 0.95*float64(b[i])
		}
		p, err := engine.Probe([][]float64{mix})
		if err != nil {
			t.Fatal(err)
		}
		return p
	}()
	for _, tc := range []struct {
		cfg   engine.Config
		match bool
	}{
		{engine.Config{}, false},
		{engine.Config{Default: &engine.Thresholds{Match: 0, Dedup: 0}}, true},
	} {
		svc, _ := newService(t, tc.cfg)
		enroll(t, svc, face(1, 1), "")
		cands, _, err := svc.Identify(context.Background(), g, weak, 1, "")
		if err != nil {
			t.Fatal(err)
		}
		if got := len(cands) == 1; got != tc.match {
			t.Errorf("thresholds %+v: match %v, want %v (%+v)", tc.cfg.Default, got, tc.match, cands)
		}
	}
}

func TestVerify(t *testing.T) {
	svc, _ := newService(t, engine.Config{})
	alice := enroll(t, svc, face(1, 1), "alice").Person
	enroll(t, svc, face(2, 1), "bob")
	ctx := context.Background()
	for _, tc := range []struct {
		identifier string
		probe      engine.Embedding
		match      bool
	}{
		{"alice", probe(t, 1, 7), true},
		{alice.PUID, probe(t, 1, 7), true},
		{"alice", probe(t, 2, 7), false},
		{"bob", probe(t, 1, 7), false},
	} {
		_, matched, _, err := svc.Verify(ctx, g, tc.identifier, tc.probe, "")
		if err != nil || matched != tc.match {
			t.Errorf("Verify(%s) = %v, %v; want %v", tc.identifier, matched, err, tc.match)
		}
	}
	if _, _, _, err := svc.Verify(ctx, g, "carol", probe(t, 1, 7), ""); !errors.Is(err, engine.ErrNotFound) {
		t.Errorf("Verify(unknown) error = %v, want ErrNotFound", err)
	}
}

func TestDeleteErases(t *testing.T) {
	svc, store := newService(t, engine.Config{})
	alice := enroll(t, svc, face(1, 1), "").Person
	ctx := context.Background()
	if _, err := svc.Delete(ctx, "other", alice.PUID, engine.AuditEntry{}); !errors.Is(err, engine.ErrNotFound) {
		t.Errorf("another tenant deleting alice: %v, want ErrNotFound", err)
	}
	if _, err := svc.Delete(ctx, g.Tenant, alice.PUID, engine.AuditEntry{}); err != nil {
		t.Fatal(err)
	}
	if store.followed[len(store.followed)-1] != alice.ID {
		t.Error("the follower was not told of the delete")
	}
	if cands, _, _ := svc.Identify(ctx, g, probe(t, 1, 2), 1, ""); len(cands) != 0 {
		t.Errorf("Identify after delete = %+v", cands)
	}
	if ts, _ := store.PersonTemplates(ctx, alice.ID); len(ts) != 0 {
		t.Errorf("%d templates left after delete", len(ts))
	}
	if again := enroll(t, svc, face(1, 3), ""); again.Outcome != engine.Created {
		t.Errorf("re-enroll after delete = %+v, want a new person", again)
	}
}

// TestEnrollIsDurableAndIdempotent: with no worker the enroll is answered
// pending and completes once processed; processing it twice makes one
// person.
func TestEnrollIsDurableAndIdempotent(t *testing.T) {
	store := newMemStore()
	jobs := &heldJobs{}
	svc := testenv.NewService(t, engine.Deps{Store: store, Index: store, Jobs: jobs, Log: slog.New(slog.NewTextHandler(io.Discard, nil))},
		engine.Config{EnrollWait: 20 * time.Millisecond, PollInterval: time.Millisecond})
	ctx := context.Background()
	req, err := svc.SubmitEnroll(ctx, engine.EnrollInput{Gallery: g, Vectors: face(1, 1)})
	if err != nil || req.State != engine.Pending || len(jobs.ids) != 1 || jobs.ids[0] != req.ID {
		t.Fatalf("SubmitEnroll with no worker = %+v, %v; enqueued %v", req.State, err, jobs.ids)
	}
	for range 2 {
		if err := svc.ProcessEnroll(ctx, req.ID); err != nil {
			t.Fatal(err)
		}
	}
	got, err := store.EnrollRequest(ctx, req.ID)
	if err != nil || got.State != engine.Done || got.Result.Outcome != engine.Created || got.Templates != nil {
		t.Fatalf("request after processing = %+v, %v", got, err)
	}
	if n := len(store.st.persons); n != 1 {
		t.Errorf("%d persons after two deliveries of one enroll, want 1", n)
	}
	if n, _ := svc.ReconcileEnrolls(ctx, time.Now()); n != 0 {
		t.Errorf("reconciled %d finished enrolls, want 0", n)
	}
	if err := svc.ProcessEnroll(ctx, "no-such-request"); !errors.Is(err, engine.ErrNotFound) {
		t.Errorf("ProcessEnroll(unknown) = %v, want ErrNotFound", err)
	}
}

// TestStuckEnqueueKeepsTheReplyInsideEnrollWait: an enqueue that does not
// answer (Redis failing over) is cut at EnrollWait from the call; the
// enroll is answered pending, recorded for the reconciler.
func TestStuckEnqueueKeepsTheReplyInsideEnrollWait(t *testing.T) {
	store := newMemStore()
	svc := testenv.NewService(t, engine.Deps{Store: store, Index: store, Jobs: stuckJobs{}, Log: slog.New(slog.NewTextHandler(io.Discard, nil))},
		engine.Config{EnrollWait: 50 * time.Millisecond, PollInterval: time.Millisecond})
	type result struct {
		req engine.EnrollRequest
		err error
	}
	done := make(chan result, 1)
	go func() {
		req, err := svc.SubmitEnroll(context.Background(), engine.EnrollInput{Gallery: g, Vectors: face(1, 1)})
		done <- result{req, err}
	}()
	select {
	case r := <-done:
		if r.err != nil || r.req.State != engine.Pending {
			t.Fatalf("SubmitEnroll with a stuck queue = %+v, %v; want pending", r.req.State, r.err)
		}
		if got, err := store.EnrollRequest(context.Background(), r.req.ID); err != nil || got.State != engine.Pending {
			t.Errorf("the request is not recorded pending for the reconciler: %+v, %v", got.State, err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("SubmitEnroll waited on a stuck enqueue past EnrollWait")
	}
}

func TestImportDeduplicates(t *testing.T) {
	svc, store := newService(t, engine.Config{})
	var items []engine.ImportItem
	for id := range uint64(5) {
		for sample := range uint64(2) {
			items = append(items, engine.ImportItem{ExternalID: fmt.Sprintf("user-%d-%d", id, sample), Vector: face(id+10, sample)[0]})
		}
	}
	items = append(items, engine.ImportItem{Vector: []float64{1, 2, 3}})
	res, err := svc.Import(context.Background(), g, items, "file", int64(len(items)))
	if err != nil {
		t.Fatal(err)
	}
	counts := map[engine.Outcome]int{}
	for _, r := range res {
		counts[r.Outcome]++
	}
	// The second sample of each identity comes with another user id: refused.
	if counts[engine.Created] != 5 || counts[engine.Rejected] != 6 {
		t.Errorf("import outcomes = %v, want 5 created, 6 rejected (5 under another id, 1 invalid)", counts)
	}
	if n, _ := store.ImportProgress(context.Background(), "file"); n != int64(len(items)) {
		t.Errorf("checkpoint = %d, want %d", n, len(items))
	}
}

// TestImportBatchDedup: within one batch, samples of one new face make one
// person (the second recognised, its template added to the level cap);
// a later batch recognises it through the gallery; an external id already
// taken by another face in the same batch is refused.
func TestImportBatchDedup(t *testing.T) {
	svc, store := newService(t, engine.Config{MaxTemplatesPerPerson: 2})
	ctx := context.Background()
	item := func(id, sample uint64, ext string) engine.ImportItem {
		return engine.ImportItem{ExternalID: ext, Vector: face(id, sample)[0]}
	}
	res, err := svc.Import(ctx, g, []engine.ImportItem{
		item(1, 0, ""), item(2, 0, "two"), item(1, 1, ""), item(1, 2, ""), item(3, 0, "two"),
	}, "a", 5)
	if err != nil {
		t.Fatal(err)
	}
	want := []engine.Outcome{engine.Created, engine.Created, engine.Existing, engine.Existing, engine.Rejected}
	for i, r := range res {
		if r.Outcome != want[i] {
			t.Errorf("item %d: %s (%s), want %s", i, r.Outcome, r.Reason, want[i])
		}
	}
	if res[0].Person.ID == 0 || res[2].Person.ID != res[0].Person.ID || res[3].Person.PUID != res[0].Person.PUID {
		t.Errorf("samples of one face in one batch: persons %d, %d, %d; want one", res[0].Person.ID, res[2].Person.ID, res[3].Person.ID)
	}
	if n := len(store.st.persons); n != 2 {
		t.Errorf("%d persons after the first batch, want 2", n)
	}
	var level int
	store.read(func(st *memState) { level = st.persons[res[0].Person.ID].EnrollLevel })
	if level != 2 {
		t.Errorf("person of three samples has level %d, want the cap 2", level)
	}
	res, err = svc.Import(ctx, g, []engine.ImportItem{item(2, 1, ""), item(4, 0, "")}, "b", 2)
	if err != nil {
		t.Fatal(err)
	}
	if res[0].Outcome != engine.Existing || res[0].Person.ExternalID != "two" || res[1].Outcome != engine.Created {
		t.Errorf("second batch: %+v; want face 2 recognised as \"two\", face 4 new", res)
	}
}

// submitPending submits enrolls with no worker running and returns their
// request ids, in order.
func submitPending(t *testing.T, svc *engine.Service, vectors ...[][]float64) []string {
	t.Helper()
	var ids []string
	for _, v := range vectors {
		req, err := svc.SubmitEnroll(context.Background(), engine.EnrollInput{Gallery: g, Vectors: v})
		if err != nil || req.State != engine.Pending {
			t.Fatalf("SubmitEnroll = %v, %v; want pending", req.State, err)
		}
		ids = append(ids, req.ID)
		time.Sleep(time.Millisecond) // distinct creation times: the batch's order
	}
	return ids
}

func newHeldService(t *testing.T) (*engine.Service, *memStore) { return newHeldServiceBatch(t, 0) }

// newHeldServiceBatch is newHeldService deciding batches of up to batch
// enrolls (0: the default).
func newHeldServiceBatch(t *testing.T, batch int) (*engine.Service, *memStore) {
	store := newMemStore()
	svc := testenv.NewService(t, engine.Deps{Store: store, Index: store, Jobs: &heldJobs{}, Log: slog.New(slog.NewTextHandler(io.Discard, nil))},
		engine.Config{EnrollWait: time.Millisecond, PollInterval: time.Millisecond, EnrollBatch: batch})
	return svc, store
}

// TestFollowOnBatchesClearABacklog: a task whose batch is full goes on to
// decide the gallery's next pending enrolls, batch after batch (each
// compared with what the earlier ones wrote: a face enrolled again two
// batches later is the same person), up to 16 batches past its own; the
// backlog's own tasks then finish without reading their requests.
func TestFollowOnBatchesClearABacklog(t *testing.T) {
	ctx := context.Background()
	svc, store := newHeldServiceBatch(t, 4)
	var faces [][][]float64
	for i := range 9 {
		faces = append(faces, face(uint64(i+1), 1))
	}
	ids := submitPending(t, svc, append(faces, face(1, 2))...) // 10: batches of 4, 4 and 2
	if err := svc.ProcessEnroll(ctx, ids[0]); err != nil {
		t.Fatal(err)
	}
	var results []engine.EnrollResult
	for i, id := range ids {
		r, err := store.EnrollRequest(ctx, id)
		if err != nil || r.State != engine.Done {
			t.Fatalf("request %d after one task: %v, %v; want done", i, r.State, err)
		}
		results = append(results, r.Result)
	}
	first, again := results[0], results[9]
	if again.Outcome != engine.Existing || again.Person.ID != first.Person.ID || len(store.st.persons) != 9 {
		t.Errorf("face 1 again, two batches later: %s person %d (face 1 is %d), %d persons; want existing, 9 persons",
			again.Outcome, again.Person.ID, first.Person.ID, len(store.st.persons))
	}
	reads := store.reads.Load()
	for _, id := range ids[1:] {
		if err := svc.ProcessEnroll(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	if n := store.reads.Load() - reads; n != 0 {
		t.Errorf("the backlog's tasks read their requests %d times; want none", n)
	}

	// Batches of one: the task decides its own and 16 more, no further.
	svc, store = newHeldServiceBatch(t, 1)
	faces = nil
	for i := range 20 {
		faces = append(faces, face(uint64(i+1), 1))
	}
	ids = submitPending(t, svc, faces...)
	if err := svc.ProcessEnroll(ctx, ids[0]); err != nil {
		t.Fatal(err)
	}
	done := 0
	for _, id := range ids {
		if r, _ := store.EnrollRequest(ctx, id); r.State == engine.Done {
			done++
		}
	}
	if done != 17 {
		t.Errorf("one task with batches of one decided %d of 20, want 17 (its own and 16 follow-on batches)", done)
	}
}

// TestTasksOfOneGalleryTakeTurns: tasks of one gallery run at once; the
// first to get its turn decides every pending request in one batch, and
// the others, when their turn comes, find theirs decided: one attempt is
// counted in all, not one per task waiting for the batch.
func TestTasksOfOneGalleryTakeTurns(t *testing.T) {
	svc, store := newHeldService(t)
	ctx := context.Background()
	ids := submitPending(t, svc, face(1, 1), face(2, 1), face(3, 1), face(4, 1), face(5, 1), face(6, 1), face(7, 1), face(8, 1))
	// The first decision holds the gallery until every task has looked at
	// its request (or 2 s), so the others arrive while it runs.
	var once sync.Once
	store.locked = func() {
		once.Do(func() {
			for deadline := time.Now().Add(2 * time.Second); store.reads.Load() < int64(len(ids)) && time.Now().Before(deadline); {
				time.Sleep(time.Millisecond)
			}
		})
	}
	var wg sync.WaitGroup
	for _, id := range ids {
		wg.Go(func() {
			if err := svc.ProcessEnroll(ctx, id); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	attempts := 0
	for i, id := range ids {
		r, err := store.EnrollRequest(ctx, id)
		if err != nil || r.State != engine.Done {
			t.Fatalf("request %d: %v, %v; want done", i, r.State, err)
		}
		attempts += r.Attempts
	}
	if attempts != 1 {
		t.Errorf("%d attempts counted for %d tasks decided in one batch, want 1", attempts, len(ids))
	}
	if n := len(store.st.persons); n != len(ids) {
		t.Errorf("%d persons, want %d", n, len(ids))
	}
}

// TestBatchedEnroll: one decision takes on every pending enroll of the
// gallery, each compared with the earlier ones: two enrolls of one new face
// make one person. The other tasks then find their requests done, without
// reading them.
func TestBatchedEnroll(t *testing.T) {
	svc, store := newHeldService(t)
	ctx := context.Background()
	ids := submitPending(t, svc, face(1, 1), face(2, 1), face(1, 2), face(3, 1), face(2, 2))
	if err := svc.ProcessEnroll(ctx, ids[0]); err != nil {
		t.Fatal(err)
	}
	persons := map[int]int64{}
	for i, id := range ids {
		r, err := store.EnrollRequest(ctx, id)
		if err != nil || r.State != engine.Done {
			t.Fatalf("request %d after one batch: %v, %v; want done", i, r.State, err)
		}
		persons[i] = r.Result.Person.ID
	}
	if persons[0] != persons[2] || persons[1] != persons[4] || persons[0] == persons[1] || persons[3] == persons[0] {
		t.Errorf("persons by request = %v, want faces 1, 2 and 3 to be three persons, once each", persons)
	}
	if n := len(store.st.persons); n != 3 {
		t.Errorf("%d persons, want 3", n)
	}
	reads := store.reads.Load()
	for _, id := range ids[1:] {
		if err := svc.ProcessEnroll(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(store.st.persons); n != 3 {
		t.Errorf("after the other tasks: %d persons, want 3 (they found their requests done)", n)
	}
	if n := store.reads.Load() - reads; n != 0 {
		t.Errorf("the other tasks read their requests %d times; the batch's process knows them decided", n)
	}
}

// TestBatchFailsOnlyTheBadItem: an item of a batch that fails is undone
// alone and stays pending for its own task; the rest of the batch commits.
func TestBatchFailsOnlyTheBadItem(t *testing.T) {
	svc, store := newHeldService(t)
	ctx := context.Background()
	ids := submitPending(t, svc, face(1, 1), face(2, 1), face(3, 1))
	store.failFinish = map[string]bool{ids[1]: true}
	if err := svc.ProcessEnroll(ctx, ids[0]); err != nil {
		t.Fatal(err)
	}
	for i, want := range []engine.EnrollState{engine.Done, engine.Pending, engine.Done} {
		if r, _ := store.EnrollRequest(ctx, ids[i]); r.State != want {
			t.Errorf("request %d: %s, want %s", i, r.State, want)
		}
	}
	if n := len(store.st.persons); n != 2 {
		t.Errorf("%d persons, want 2 (the failed item's person undone)", n)
	}
	store.failFinish = nil
	if err := svc.ProcessEnroll(ctx, ids[1]); err != nil {
		t.Fatal(err)
	}
	if r, _ := store.EnrollRequest(ctx, ids[1]); r.State != engine.Done || len(store.st.persons) != 3 {
		t.Errorf("the failed item retried: %s with %d persons, want done with 3", r.State, len(store.st.persons))
	}
}

// TestDedupDecidesAtItsLevel: enroll recognises an existing person at the
// dedup level's threshold for the gallery's size: a face that resembles
// one enrolled person as much as a lax level accepts is that person at
// DEDUP level low, and a new person at the default (high).
func TestDedupDecidesAtItsLevel(t *testing.T) {
	// alice, and a face at cosine halfway between the low and medium
	// thresholds of a one-template gallery.
	alice := synth.Vector(512, 31, 0, 0)
	tLow, tMedium := testenv.LowAndMedium(t)
	c := (tLow + tMedium) / 2
	near := synth.Float64s(synth.AtCosine(alice, c, 32))
	for _, tc := range []struct {
		level string
		want  engine.Outcome
	}{{"low", engine.Existing}, {"", engine.Created}} {
		svc, _ := newService(t, engine.Config{Levels: engine.Levels{Dedup: tc.level}})
		first := enroll(t, svc, [][]float64{synth.Float64s(alice)}, "")
		got := enroll(t, svc, [][]float64{near}, "")
		if got.Outcome != tc.want || (tc.want == engine.Existing) != (got.Person.ID == first.Person.ID) {
			t.Errorf("dedup level %q: a face at cosine %.3f to alice: %+v, want %v", tc.level, c, got, tc.want)
		}
	}
}

// busyStore is a memStore whose enroll-request writes or reads (as chosen)
// wait until their context ends, as on a database too busy to answer.
type busyStore struct {
	*memStore
	busyWrites, busyReads bool
}

func (s busyStore) CreateEnrollRequest(ctx context.Context, r engine.EnrollRequest) error {
	if s.busyWrites {
		<-ctx.Done()
		return ctx.Err()
	}
	return s.memStore.CreateEnrollRequest(ctx, r)
}

func (s busyStore) EnrollRequest(ctx context.Context, id string) (engine.EnrollRequest, error) {
	if s.busyReads {
		<-ctx.Done()
		return engine.EnrollRequest{}, ctx.Err()
	}
	return s.memStore.EnrollRequest(ctx, id)
}

// TestEnrollWaitCountsFromArrival: EnrollWait counts from the request's
// arrival, not from the call; a write the database does not finish by
// then answers ErrUnavailable (nothing recorded), and a look at the request that
// does not finish by then answers pending: no reply waits past EnrollWait
// for a busy database.
func TestEnrollWaitCountsFromArrival(t *testing.T) {
	const wait = time.Minute // a reply that waited for it fails the test's 10 s
	submit := func(store engine.Store, arrived time.Time) (engine.EnrollRequest, error) {
		t.Helper()
		svc := testenv.NewService(t, engine.Deps{Store: store, Index: store.(engine.Index), Jobs: &heldJobs{},
			Log: slog.New(slog.NewTextHandler(io.Discard, nil))}, engine.Config{EnrollWait: wait, PollInterval: time.Millisecond})
		type result struct {
			req engine.EnrollRequest
			err error
		}
		done := make(chan result, 1)
		go func() {
			req, err := svc.SubmitEnroll(context.Background(), engine.EnrollInput{Gallery: g, Vectors: face(1, 1), Arrived: arrived})
			done <- result{req, err}
		}()
		select {
		case r := <-done:
			return r.req, r.err
		case <-time.After(10 * time.Second):
			t.Fatal("SubmitEnroll waited past the deadline set by the request's arrival")
			return engine.EnrollRequest{}, nil
		}
	}

	t.Run("arrived before the call", func(t *testing.T) {
		store := newMemStore()
		req, err := submit(store, time.Now().Add(-wait+100*time.Millisecond))
		if err != nil || req.State != engine.Pending {
			t.Fatalf("SubmitEnroll without a worker = %+v, %v; want pending", req.State, err)
		}
		if got, err := store.EnrollRequest(context.Background(), req.ID); err != nil || got.State != engine.Pending {
			t.Errorf("the request is not recorded pending: %+v, %v", got.State, err)
		}
	})
	t.Run("a write that does not finish", func(t *testing.T) {
		store := busyStore{memStore: newMemStore(), busyWrites: true}
		_, err := submit(store, time.Now().Add(-wait+100*time.Millisecond))
		if !errors.Is(err, engine.ErrUnavailable) {
			t.Fatalf("SubmitEnroll on a database that does not write = %v, want ErrUnavailable", err)
		}
		if n := len(store.st.requests); n != 0 {
			t.Errorf("%d requests recorded, want none", n)
		}
	})
	t.Run("a look that does not finish", func(t *testing.T) {
		store := busyStore{memStore: newMemStore(), busyReads: true}
		req, err := submit(store, time.Now().Add(-wait+100*time.Millisecond))
		if err != nil || req.State != engine.Pending {
			t.Fatalf("SubmitEnroll on a database that does not answer reads = %+v, %v; want pending", req.State, err)
		}
	})
}

// TestIdentifyFindsKPersonsPastAFullPerson: the k persons of an identify
// are found even when the first holds MaxTemplatesPerPerson templates, all
// better than the second's best: the index must be asked for more than k
// templates ((k−1)·max + 1).
func TestIdentifyFindsKPersonsPastAFullPerson(t *testing.T) {
	const maxTemplates = 3
	svc, store := newService(t, engine.Config{MaxTemplatesPerPerson: maxTemplates})
	ctx := context.Background()
	p := probe(t, 1, 9)
	var full, second engine.Person
	err := store.InGallery(ctx, g, func(ctx context.Context, tx engine.GalleryTx) error {
		var err error
		if full, err = tx.CreatePerson(ctx, engine.Person{Gallery: g, PUID: "full"}); err != nil {
			return err
		}
		var close []engine.Embedding
		for sample := range uint64(maxTemplates) {
			close = append(close, probe(t, 1, sample))
		}
		if _, err := tx.AddTemplates(ctx, full, close); err != nil {
			return err
		}
		if second, err = tx.CreatePerson(ctx, engine.Person{Gallery: g, PUID: "second"}); err != nil {
			return err
		}
		_, err = tx.AddTemplates(ctx, second, []engine.Embedding{engine.Embedding(synth.AtCosine(p, 0.7, 5))})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	cands, _, err := svc.Identify(ctx, g, p, 2, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(cands) != 2 || cands[0].Person.ID != full.ID || cands[1].Person.ID != second.ID {
		t.Fatalf("Identify(k=2) = %+v, want the person with %d close templates, then the second (cosine 0.7)", cands, maxTemplates)
	}
}

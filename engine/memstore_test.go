package engine_test

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/biomatch/biomatch/engine"
)

// memStore is an in-memory engine.Store, engine.Index and engine.Follower,
// for the domain's own tests (upspin's inprocess is the model). A gallery
// transaction works on a copy of the state and commits it whole, or not at
// all when its function fails. Search is an exact scan.
type memStore struct {
	mu        sync.Mutex // guards st
	st        memState
	galleryMu sync.Map // Gallery → *sync.Mutex: InGallery's lock
	followed  []int64  // PersonChanged calls, in order
	// failFinish makes FinishEnrollRequest fail for these request ids (a
	// fault in one item of a batch).
	failFinish map[string]bool
	// reads counts EnrollRequest and EnrollState calls; locked, when not nil, runs as
	// InGallery has taken the gallery's lock.
	reads  atomic.Int64
	locked func()
}

type memState struct {
	persons   map[int64]engine.Person
	templates map[int64]memTemplate
	requests  map[string]engine.EnrollRequest
	audit     []engine.AuditEntry
	progress  map[string]int64
	nextID    int64
}

type memTemplate struct {
	person int64
	g      engine.Gallery
	e      engine.Embedding
}

func newMemStore() *memStore {
	return &memStore{st: memState{persons: map[int64]engine.Person{}, templates: map[int64]memTemplate{},
		requests: map[string]engine.EnrollRequest{}, progress: map[string]int64{}}}
}

func (s memState) clone() memState {
	s.persons, s.templates, s.requests, s.progress = maps.Clone(s.persons), maps.Clone(s.templates), maps.Clone(s.requests), maps.Clone(s.progress)
	s.audit = slices.Clone(s.audit)
	return s
}

var (
	_ engine.Store     = (*memStore)(nil)
	_ engine.Index     = (*memStore)(nil)
	_ engine.Follower  = (*memStore)(nil)
	_ engine.GalleryTx = (*memTx)(nil)
)

func (s *memStore) read(fn func(st *memState)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	fn(&s.st)
}

func (s *memStore) CreateEnrollRequest(ctx context.Context, r engine.EnrollRequest) error {
	s.read(func(st *memState) { r.CreatedAt = time.Now(); st.requests[r.ID] = r })
	return nil
}

func (s *memStore) EnrollRequest(ctx context.Context, id string) (r engine.EnrollRequest, err error) {
	s.reads.Add(1)
	s.read(func(st *memState) { r, err = st.request(id) })
	return r, err
}

func (s *memStore) EnrollState(ctx context.Context, id string) (engine.Gallery, engine.EnrollState, error) {
	s.reads.Add(1)
	var r engine.EnrollRequest
	var err error
	s.read(func(st *memState) { r, err = st.request(id) })
	return r.Gallery, r.State, err
}

func (st *memState) request(id string) (engine.EnrollRequest, error) {
	r, ok := st.requests[id]
	if !ok {
		return r, fmt.Errorf("enroll request %s: %w", id, engine.ErrNotFound)
	}
	if r.Result.Person.ID != 0 {
		r.Result.Person = st.persons[r.Result.Person.ID]
	}
	return r, nil
}

func (s *memStore) CountEnrollAttempt(ctx context.Context, id string) error {
	s.read(func(st *memState) { r := st.requests[id]; r.Attempts++; st.requests[id] = r })
	return nil
}

func (s *memStore) FailEnrollRequest(ctx context.Context, id, reason string) error {
	s.read(func(st *memState) {
		if r := st.requests[id]; r.State == engine.Pending {
			r.State, r.Result, r.Templates = engine.Failed, engine.EnrollResult{Outcome: engine.Rejected, Reason: reason}, nil
			st.requests[id] = r
		}
	})
	return nil
}

func (s *memStore) PendingEnrollRequests(ctx context.Context, before time.Time, limit int) (ids []string, err error) {
	s.read(func(st *memState) {
		for id, r := range st.requests {
			if r.State == engine.Pending && r.CreatedAt.Before(before) && len(ids) < limit {
				ids = append(ids, id)
			}
		}
	})
	return ids, nil
}

func (s *memStore) InGallery(ctx context.Context, g engine.Gallery, fn func(context.Context, engine.GalleryTx) error) error {
	lock, _ := s.galleryMu.LoadOrStore(g, &sync.Mutex{})
	lock.(*sync.Mutex).Lock()
	defer lock.(*sync.Mutex).Unlock()
	if s.locked != nil {
		s.locked()
	}
	tx := memTx{wrote: map[int64]bool{}, requests: map[string]bool{}, failFinish: s.failFinish}
	s.read(func(st *memState) { tx.st = st.clone() })
	if err := fn(ctx, &tx); err != nil {
		return err // nothing of the transaction is kept
	}
	// Commit what the transaction wrote, over what others wrote meanwhile.
	s.read(func(st *memState) {
		for id := range tx.wrote {
			if p, ok := tx.st.persons[id]; ok {
				st.persons[id] = p
			}
		}
		for id, t := range tx.st.templates {
			if _, ok := st.persons[t.person]; ok && tx.wrote[t.person] {
				st.templates[id] = t
			}
		}
		for id := range tx.requests {
			st.requests[id] = tx.st.requests[id]
		}
		maps.Copy(st.progress, tx.st.progress)
		st.audit = append(st.audit, tx.audit...)
		st.nextID = max(st.nextID, tx.st.nextID)
	})
	return nil
}

func (s *memStore) GallerySize(ctx context.Context, g engine.Gallery) (n int, err error) {
	s.read(func(st *memState) {
		for _, t := range st.templates {
			if t.g == g {
				n++
			}
		}
	})
	return n, nil
}

func (s *memStore) Galleries(ctx context.Context, tenant string) ([]engine.GalleryInfo, error) {
	by := map[string]*engine.GalleryInfo{}
	s.read(func(st *memState) {
		for _, p := range st.persons {
			if p.Gallery.Tenant == tenant {
				if by[p.Gallery.Version] == nil {
					by[p.Gallery.Version] = &engine.GalleryInfo{Version: p.Gallery.Version}
				}
				by[p.Gallery.Version].Persons++
			}
		}
		for _, t := range st.templates {
			if g := by[t.g.Version]; g != nil && t.g.Tenant == tenant {
				g.Templates++
			}
		}
	})
	var out []engine.GalleryInfo
	for _, v := range slices.Sorted(maps.Keys(by)) {
		out = append(out, *by[v])
	}
	return out, nil
}

// personsWhere returns the persons that keep says, by id.
func (s *memStore) personsWhere(keep func(engine.Person) bool) []engine.Person {
	var out []engine.Person
	s.read(func(st *memState) {
		for _, p := range st.persons {
			if keep(p) {
				out = append(out, p)
			}
		}
	})
	slices.SortFunc(out, func(a, b engine.Person) int { return cmp.Compare(a.ID, b.ID) })
	return out
}

func (s *memStore) ListPersons(ctx context.Context, g engine.Gallery, after int64, limit int) ([]engine.Person, error) {
	out := s.personsWhere(func(p engine.Person) bool { return p.Gallery == g && p.ID > after })
	return out[:min(limit, len(out))], nil
}

func (s *memStore) PersonsByExternalID(ctx context.Context, tenant, externalID, version string) ([]engine.Person, error) {
	return s.personsWhere(func(p engine.Person) bool {
		return p.Gallery.Tenant == tenant && p.ExternalID == externalID && (version == "" || p.Gallery.Version == version)
	}), nil
}

func (s *memStore) PersonByPUID(ctx context.Context, tenant, puid string) (engine.Person, error) {
	out := s.personsWhere(func(p engine.Person) bool { return p.Gallery.Tenant == tenant && p.PUID == puid })
	if len(out) == 0 {
		return engine.Person{}, engine.ErrNotFound
	}
	return out[0], nil
}

func (s *memStore) Persons(ctx context.Context, tenant string, ids []int64) (map[int64]engine.Person, error) {
	out := map[int64]engine.Person{}
	s.read(func(st *memState) {
		for _, id := range ids {
			if p, ok := st.persons[id]; ok && p.Gallery.Tenant == tenant {
				out[id] = p
			}
		}
	})
	return out, nil
}

func (s *memStore) PersonByIdentifier(ctx context.Context, g engine.Gallery, identifier string) (p engine.Person, err error) {
	err = fmt.Errorf("person %q: %w", identifier, engine.ErrNotFound)
	s.read(func(st *memState) {
		for _, q := range st.persons {
			if q.Gallery == g && (q.ExternalID == identifier || q.PUID == identifier) {
				p, err = q, nil
				if q.ExternalID == identifier {
					return
				}
			}
		}
	})
	return p, err
}

func (s *memStore) PersonTemplates(ctx context.Context, personID int64) (out []engine.Embedding, err error) {
	s.read(func(st *memState) {
		for _, id := range slices.Sorted(maps.Keys(st.templates)) {
			if t := st.templates[id]; t.person == personID {
				out = append(out, t.e)
			}
		}
	})
	return out, nil
}

func (s *memStore) DeletePerson(ctx context.Context, tenant, puid string, a engine.AuditEntry) (p engine.Person, err error) {
	err = fmt.Errorf("person %q: %w", puid, engine.ErrNotFound)
	s.read(func(st *memState) {
		for id, q := range st.persons {
			if q.Gallery.Tenant == tenant && q.PUID == puid {
				p, err = q, nil
				delete(st.persons, id)
				maps.DeleteFunc(st.templates, func(_ int64, t memTemplate) bool { return t.person == id })
				st.audit = append(st.audit, a)
				return
			}
		}
	})
	return p, err
}

func (s *memStore) EnrollLevels(ctx context.Context, tenant string, puids []string) (map[string]int, error) {
	out := map[string]int{}
	s.read(func(st *memState) {
		for _, p := range st.persons {
			if p.Gallery.Tenant == tenant && slices.Contains(puids, p.PUID) {
				out[p.PUID] = p.EnrollLevel
			}
		}
	})
	return out, nil
}

func (s *memStore) Audit(ctx context.Context, a engine.AuditEntry) error {
	s.read(func(st *memState) { st.audit = append(st.audit, a) })
	return nil
}

func (s *memStore) ImportProgress(ctx context.Context, source string) (n int64, err error) {
	s.read(func(st *memState) { n = st.progress[source] })
	return n, nil
}

func (s *memStore) Export(ctx context.Context, g engine.Gallery, withTemplates bool, fn func(engine.Person, []engine.Embedding) error) error {
	var ps []engine.Person
	s.read(func(st *memState) {
		for _, p := range st.persons {
			if p.Gallery == g {
				ps = append(ps, p)
			}
		}
	})
	slices.SortFunc(ps, func(a, b engine.Person) int { return cmp.Compare(a.ID, b.ID) })
	for _, p := range ps {
		var ts []engine.Embedding
		if withTemplates {
			ts, _ = s.PersonTemplates(ctx, p.ID)
		}
		if err := fn(p, ts); err != nil {
			return err
		}
	}
	return nil
}

// Nearest implements engine.Index: an exact scan of committed templates.
func (s *memStore) Nearest(ctx context.Context, g engine.Gallery, probe engine.Embedding, k int) (ms []engine.Match, err error) {
	s.read(func(st *memState) { ms = st.nearest(g, probe, k) })
	return ms, nil
}

func (st *memState) nearest(g engine.Gallery, probe engine.Embedding, k int) []engine.Match {
	var ms []engine.Match
	for id, t := range st.templates {
		if t.g == g && len(t.e) == len(probe) {
			ms = append(ms, engine.Match{PersonID: t.person, TemplateID: id, Score: engine.Cosine(t.e, probe)})
		}
	}
	slices.SortFunc(ms, engine.CompareMatches)
	return ms[:min(k, len(ms))]
}

// PersonChanged implements engine.Follower: it records the call.
func (s *memStore) PersonChanged(ctx context.Context, personID int64) error {
	s.mu.Lock()
	s.followed = append(s.followed, personID)
	s.mu.Unlock()
	return nil
}

// AwaitPerson implements engine.Follower: it records the call (the store
// is its own index: every commit is searchable at once).
func (s *memStore) AwaitPerson(ctx context.Context, personID int64) error {
	return s.PersonChanged(ctx, personID)
}

// memTx is a gallery transaction on a copy of the state; it remembers what
// it wrote, for the commit.
type memTx struct {
	st         memState
	wrote      map[int64]bool  // persons created or changed
	requests   map[string]bool // enroll requests finished
	audit      []engine.AuditEntry
	failFinish map[string]bool
}

func (t *memTx) LockEnrollRequest(ctx context.Context, id string) (engine.EnrollRequest, error) {
	return t.st.request(id)
}

func (t *memTx) LockPendingEnrolls(ctx context.Context, g engine.Gallery, except string, limit int) ([]engine.EnrollRequest, error) {
	var out []engine.EnrollRequest
	for id, r := range t.st.requests {
		if r.Gallery == g && r.State == engine.Pending && id != except {
			out = append(out, r)
		}
	}
	slices.SortFunc(out, func(a, b engine.EnrollRequest) int { return a.CreatedAt.Compare(b.CreatedAt) })
	return out[:min(limit, len(out))], nil
}

func (t *memTx) Savepoint(ctx context.Context, fn func(ctx context.Context) error) error {
	st, wrote, requests, audit := t.st.clone(), maps.Clone(t.wrote), maps.Clone(t.requests), len(t.audit)
	if err := fn(ctx); err != nil {
		t.st, t.wrote, t.requests, t.audit = st, wrote, requests, t.audit[:audit]
		return err
	}
	return nil
}

func (t *memTx) Nearest(ctx context.Context, g engine.Gallery, probe engine.Embedding, k int) ([]engine.Match, error) {
	return t.st.nearest(g, probe, k), nil
}

func (t *memTx) Person(ctx context.Context, tenant string, id int64) (engine.Person, error) {
	p, ok := t.st.persons[id]
	if !ok || p.Gallery.Tenant != tenant {
		return p, engine.ErrNotFound
	}
	return p, nil
}

func (t *memTx) PersonByExternalID(ctx context.Context, g engine.Gallery, externalID string) (engine.Person, error) {
	for _, p := range t.st.persons {
		if p.Gallery == g && p.ExternalID == externalID {
			return p, nil
		}
	}
	return engine.Person{}, engine.ErrNotFound
}

func (t *memTx) CreatePerson(ctx context.Context, p engine.Person) (engine.Person, error) {
	t.st.nextID++
	p.ID, p.CreatedAt = t.st.nextID, time.Now()
	t.st.persons[p.ID] = p
	t.wrote[p.ID] = true
	return p, nil
}

func (t *memTx) SetExternalID(ctx context.Context, person engine.Person, externalID string) error {
	p := t.st.persons[person.ID]
	p.ExternalID = externalID
	t.st.persons[person.ID] = p
	t.wrote[person.ID] = true
	return nil
}

func (t *memTx) AddTemplates(ctx context.Context, p engine.Person, ts []engine.Embedding) (int, error) {
	for _, e := range ts {
		t.st.nextID++
		t.st.templates[t.st.nextID] = memTemplate{person: p.ID, g: p.Gallery, e: e}
	}
	stored := t.st.persons[p.ID]
	stored.EnrollLevel += len(ts)
	t.st.persons[p.ID] = stored
	t.wrote[p.ID] = true
	return stored.EnrollLevel, nil
}

func (t *memTx) SaveImportProgress(ctx context.Context, source string, done int64) error {
	t.st.progress[source] = done
	return nil
}

// inlineJobs processes each enqueued enroll at once, in its own goroutine,
// as a worker would (engine.Jobs).
type inlineJobs struct {
	svc *engine.Service
	wg  sync.WaitGroup
}

func (j *inlineJobs) EnqueueEnroll(ctx context.Context, id string) error {
	j.wg.Go(func() { j.svc.ProcessEnroll(context.WithoutCancel(ctx), id) })
	return nil
}

// heldJobs records enqueued ids and processes nothing (a worker that is down).
type heldJobs struct {
	mu  sync.Mutex
	ids []string
}

func (j *heldJobs) EnqueueEnroll(ctx context.Context, id string) error {
	j.mu.Lock()
	j.ids = append(j.ids, id)
	j.mu.Unlock()
	return nil
}

// stuckJobs never answers an enqueue until its context ends, as a Redis
// in failover can keep a client retrying.
type stuckJobs struct{}

func (stuckJobs) EnqueueEnroll(ctx context.Context, id string) error {
	<-ctx.Done()
	return ctx.Err()
}

func (t *memTx) NearestBatch(ctx context.Context, g engine.Gallery, probes []engine.Embedding, k int, atLeast float64) ([][]engine.Match, error) {
	out := make([][]engine.Match, len(probes))
	for i, p := range probes {
		out[i] = engine.AtLeast(t.st.nearest(g, p, k), atLeast)
	}
	return out, nil
}

func (t *memTx) PersonsByExternalIDs(ctx context.Context, g engine.Gallery, ids []string) (map[string]engine.Person, error) {
	out := map[string]engine.Person{}
	for _, id := range ids {
		if p, err := t.PersonByExternalID(ctx, g, id); err == nil {
			out[id] = p
		}
	}
	return out, nil
}

func (t *memTx) CreatePersons(ctx context.Context, g engine.Gallery, ps []engine.NewPerson) ([]engine.Person, error) {
	out := make([]engine.Person, len(ps))
	for i, np := range ps {
		p, err := t.CreatePerson(ctx, np.Person)
		if err != nil {
			return nil, err
		}
		p.EnrollLevel = 0
		t.st.persons[p.ID] = p
		if p.EnrollLevel, err = t.AddTemplates(ctx, p, np.Templates); err != nil {
			return nil, err
		}
		out[i] = p
	}
	return out, nil
}

func (t *memTx) AuditAll(ctx context.Context, entries []engine.AuditEntry) error {
	t.audit = append(t.audit, entries...)
	return nil
}

func (t *memTx) FinishEnrollRequests(ctx context.Context, ids []string, res []engine.EnrollResult) error {
	for i, id := range ids {
		if t.failFinish[id] {
			return fmt.Errorf("finish %s: disk full", id)
		}
		r := t.st.requests[id]
		r.State, r.Result, r.Templates = engine.Done, res[i], nil
		if res[i].Outcome == engine.Rejected {
			r.State = engine.Failed
		}
		t.st.requests[id] = r
		t.requests[id] = true
	}
	return nil
}

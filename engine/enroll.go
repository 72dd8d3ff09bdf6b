package engine

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"sync"
	"time"
)

// EnrollState is where an enroll request is.
type EnrollState string

// The states of an enroll request.
const (
	Pending EnrollState = "pending"
	Done    EnrollState = "done"
	Failed  EnrollState = "failed"
)

// Outcome is what an enroll decided.
type Outcome string

// The outcomes of an enroll.
const (
	Created  Outcome = "created"  // a new person
	Existing Outcome = "existing" // the face was already enrolled: that person
	Rejected Outcome = "rejected" // refused; Reason says why
)

// EnrollRequest is an accepted enroll: the durability point between the API
// and the worker.
type EnrollRequest struct {
	ID         string // idempotency key; also the queue task id
	Gallery    Gallery
	KeyID      string
	RequestID  string // the HTTP request id, for the audit log
	ExternalID string
	Templates  []Embedding // validated; cleared once done
	State      EnrollState
	Attempts   int
	Result     EnrollResult
	CreatedAt  time.Time
}

// EnrollResult is the answer to an enroll.
type EnrollResult struct {
	Outcome Outcome
	Person  Person
	// Score: for Existing, the similarity to the recognised person; for
	// Created, the mean similarity of the enrolled templates to their mean
	// (1 for one template).
	Score  float64
	Reason string
}

// EnrollInput is what a client asks to enroll.
type EnrollInput struct {
	Gallery    Gallery
	KeyID      string
	RequestID  string
	ExternalID string
	Vectors    [][]float64 // raw, one per frame
	// Arrived is when the caller's request arrived: EnrollWait counts from
	// it (zero: from the call), so time spent before the call is not added.
	Arrived time.Time
}

// acceptWait is the least time recording and queueing an enroll get,
// however short EnrollWait.
const acceptWait = time.Second

// SubmitEnroll validates the input, records it durably, queues it and waits
// for the worker's answer: all within EnrollWait of the request's arrival
// (or acceptWait, if longer): a slow enqueue, as in a Redis failover, shortens
// the wait and never lengthens the reply past the clients' patience. The
// returned request is Done/Failed with its Result, or still Pending if the
// wait ended first: the enroll then completes later all the same. Validation
// errors wrap ErrInvalid or ErrRejected; nothing is written then. A request
// that could not be recorded before the wait ended (a database overloaded or
// unreachable) returns ErrUnavailable.
func (s *Service) SubmitEnroll(ctx context.Context, in EnrollInput) (EnrollRequest, error) {
	start := in.Arrived
	if start.IsZero() {
		start = time.Now()
	}
	deadline := start.Add(s.cfg.EnrollWait)
	// Recording and queueing get at least acceptWait, however short
	// EnrollWait: a request is accepted first, waited for second.
	acceptBy := start.Add(max(s.cfg.EnrollWait, acceptWait))
	es, err := NewEmbeddings(in.Vectors)
	if err != nil {
		return EnrollRequest{}, err
	}
	if es, err = DropOutliers(es); err != nil {
		return EnrollRequest{}, err
	}
	req := EnrollRequest{
		ID:         NewID(),
		Gallery:    in.Gallery,
		KeyID:      in.KeyID,
		RequestID:  in.RequestID,
		ExternalID: in.ExternalID,
		Templates:  es,
		State:      Pending,
	}
	// Subscribed before the request exists: no finish can slip past.
	var sub *subscription
	if s.finished != nil {
		sub = &subscription{finished: s.finished, id: req.ID}
		sub.woken, sub.end = s.finished.Subscribe(req.ID)
		defer sub.close()
	}
	recordCtx, cancel := context.WithDeadline(ctx, acceptBy)
	err = s.store.CreateEnrollRequest(recordCtx, req)
	cancel()
	if err != nil {
		if ctx.Err() == nil && recordCtx.Err() != nil {
			// In the rare case the commit landed as the wait ended, the
			// reconciler queues the request: it completes all the same.
			return EnrollRequest{}, fmt.Errorf("%w: the enroll could not be recorded within %s", ErrUnavailable, max(s.cfg.EnrollWait, acceptWait))
		}
		return EnrollRequest{}, fmt.Errorf("record enroll: %w", err)
	}
	enqueueCtx, cancel := context.WithDeadline(ctx, acceptBy)
	err = s.jobs.EnqueueEnroll(enqueueCtx, req.ID)
	cancel()
	if err != nil {
		// Accepted all the same: the reconciler enqueues it again.
		s.log.WarnContext(ctx, "enqueue enroll failed; the reconciler will retry", "enroll_request", req.ID, "err", err)
	}
	return s.awaitEnroll(ctx, req, sub, deadline)
}

// subscription is a waiting handler's subscription to its request's finish.
type subscription struct {
	finished Finished
	id       string
	woken    <-chan *EnrollRequest
	end      func()
}

// renew subscribes again, ending the spent subscription: done before the
// handler looks, so a finish after the look wakes the new one.
func (s *subscription) renew() {
	s.end()
	s.woken, s.end = s.finished.Subscribe(s.id)
}

func (s *subscription) close() { s.end() }

// awaitEnroll waits until the deadline for req to finish: woken by sub
// when not nil (the worker's commit, or a notification possibly missed),
// else polling.
func (s *Service) awaitEnroll(ctx context.Context, req EnrollRequest, sub *subscription, until time.Time) (EnrollRequest, error) {
	// Every look ends at the deadline too: a look waiting for a busy
	// database must not hold the reply past it.
	ctx, cancel := context.WithDeadline(ctx, until)
	defer cancel()
	var tick *time.Timer
	var poll <-chan time.Time
	if sub == nil {
		tick = time.NewTimer(s.cfg.PollInterval)
		defer tick.Stop()
		poll = tick.C
	}
	var retry <-chan time.Time // after a failed look, when woken
	for polls := 1; ; polls++ {
		var woken <-chan *EnrollRequest
		if sub != nil {
			woken = sub.woken
		}
		select {
		case <-ctx.Done():
			return req, nil
		case got := <-woken:
			if got != nil && got.ID == req.ID && got.State != Pending {
				return s.finishedEnroll(ctx, *got), nil // the notification carried it: no read
			}
			sub.renew()
		case <-retry:
		case <-poll:
			tick.Reset(pollDelay(s.cfg.PollInterval, polls))
		}
		retry = nil
		got, err := s.store.EnrollRequest(ctx, req.ID)
		if err != nil {
			if ctx.Err() != nil {
				return req, nil
			}
			if sub != nil {
				retry = time.After(s.cfg.PollInterval)
			}
			continue // a transient read error: keep waiting until the deadline
		}
		if got.State != Pending {
			return s.finishedEnroll(ctx, got), nil
		}
	}
}

// finishedEnroll is a finished request as SubmitEnroll returns it: once done,
// its person is searchable in this process (or ctx has ended).
func (s *Service) finishedEnroll(ctx context.Context, got EnrollRequest) EnrollRequest {
	if got.State == Done {
		s.forgetSize(got.Gallery)
		// Read back at once: the index applies the worker's commit from its
		// notification; waiting for that costs no read and no lock, and ends
		// at the deadline like every look.
		if s.follower != nil {
			_ = s.follower.AwaitPerson(ctx, got.Result.Person.ID)
		}
	}
	return got
}

// pollDelay is the wait before poll n+1: PollInterval for the first ten
// (an enroll usually takes two or three), then doubling up to ten times
// PollInterval, so a backlog of waiting enrolls does not multiply the
// database's load while the worker catches up.
func pollDelay(interval time.Duration, n int) time.Duration {
	if n < 10 {
		return interval
	}
	return min(interval<<min(n-9, 4), 10*interval)
}

// ProcessEnroll is the worker's step: it decides an accepted enroll under the
// gallery lock, with the other enrolls of that gallery waiting at that
// moment (up to Config.EnrollBatch, in one transaction and one commit; each is
// compared with the gallery and with the earlier ones of the batch, so two
// enrolls of one new face make one person), and records the results, in
// bulk. If the bulk write fails, the batch is undone and decided item by
// item: an item that fails is undone alone and stays pending for its own
// task. A full batch leaves a backlog: the task then decides the gallery's
// next pending enrolls too (followOnBatches at most, each its own
// transaction), instead of leaving them for their tasks, which the queue
// delivers behind the tasks of the requests just decided. It is
// idempotent: a request already done is left alone. A missing request
// returns ErrNotFound.
func (s *Service) ProcessEnroll(ctx context.Context, id string) error {
	if s.decided.has(id) {
		return nil // a batch of this process decided it: no read needed
	}
	// The task looks at the request's state only: its templates are read
	// by the batch that decides it.
	g, state, err := s.store.EnrollState(ctx, id)
	if err != nil || state != Pending {
		return err
	}
	// This process's tasks of one gallery take turns here, in memory: a
	// task whose request the running batch holds waits for that batch
	// without a transaction, an attempt counted or PostgreSQL's lock, and
	// finds its request decided when its turn comes.
	release, err := s.turns.take(ctx, g)
	if err != nil {
		return err
	}
	defer release()
	if s.decided.has(id) {
		return nil // the batch this task waited for decided it
	}
	if _, state, err = s.store.EnrollState(ctx, id); err != nil || state != Pending {
		return err
	}
	if err := s.store.CountEnrollAttempt(ctx, id); err != nil {
		return err
	}
	defer s.forgetSize(g)
	full, err := s.decidePending(ctx, g, id)
	for round := 0; err == nil && full && round < followOnBatches; round++ {
		// The asked-for request is done: a follow-on batch that fails is
		// left to its requests' own tasks.
		if full, err = s.decidePending(ctx, g, ""); err != nil {
			s.log.WarnContext(ctx, "a follow-on batch of enrolls failed; their own tasks retry them", "err", err)
			return nil
		}
	}
	return err
}

// followOnBatches is how many batches past its own a task decides while
// each is full: 16 batches of 64 clear a backlog of ~1,000 enrolls.
const followOnBatches = 16

// decidePending decides, in one transaction of g, the pending request
// asked (none: "") with the oldest other pending ones, EnrollBatch in all
// at most, and remembers those it finished once committed. full reports a
// batch of EnrollBatch: more may be waiting.
func (s *Service) decidePending(ctx context.Context, g Gallery, asked string) (full bool, err error) {
	var decided []string // the requests this transaction finishes, once it commits
	err = s.store.InGallery(ctx, g, func(ctx context.Context, tx GalleryTx) error {
		var batch []EnrollRequest
		if asked != "" {
			req, err := tx.LockEnrollRequest(ctx, asked)
			if err != nil {
				return err
			}
			if req.State != Pending {
				return nil // another delivery (or batch) finished it while we waited for the lock
			}
			batch = append(batch, req)
		}
		others, err := tx.LockPendingEnrolls(ctx, g, asked, s.cfg.EnrollBatch-len(batch))
		if err != nil {
			return err
		}
		if batch = append(batch, others...); len(batch) == 0 {
			return nil
		}
		full = len(batch) >= s.cfg.EnrollBatch
		err = tx.Savepoint(ctx, func(ctx context.Context) error { return s.finishBatch(ctx, tx, batch) })
		if err == nil {
			for _, r := range batch {
				decided = append(decided, r.ID)
			}
		}
		if err == nil || errors.Is(err, ErrUnavailable) || ctx.Err() != nil {
			return err
		}
		// Undone as a whole: decide them one by one, so an item that fails
		// fails alone.
		s.log.WarnContext(ctx, "a batch of enrolls failed as a whole; deciding its items one by one", "err", err)
		for i, r := range batch {
			err := tx.Savepoint(ctx, func(ctx context.Context) error { return s.finishBatch(ctx, tx, []EnrollRequest{r}) })
			switch {
			case err == nil:
				decided = append(decided, r.ID)
			case i == 0 && asked != "", errors.Is(err, ErrUnavailable), ctx.Err() != nil:
				return err // the asked-for request (its task retries), or the database
			default:
				s.log.WarnContext(ctx, "enroll of a batch failed alone; its own task retries it", "enroll_request", r.ID, "err", err)
			}
		}
		return nil
	})
	if err != nil {
		return false, err
	}
	s.decided.add(decided)
	return full, nil
}

// finishBatch decides the requests together (one batched search, new
// persons written in bulk) and records every result.
func (s *Service) finishBatch(ctx context.Context, tx GalleryTx, reqs []EnrollRequest) error {
	b := s.newBatch(tx, reqs[0].Gallery)
	ids := make([]string, len(reqs))
	for i, r := range reqs {
		ids[i] = r.ID
		b.items = append(b.items, batchItem{externalID: r.ExternalID, templates: r.Templates,
			audit: AuditEntry{KeyID: r.KeyID, Action: "enroll", RequestID: r.RequestID}})
	}
	if err := b.decideAndWrite(ctx); err != nil {
		return err
	}
	return tx.FinishEnrollRequests(ctx, ids, b.results)
}

func rejected(reason string) EnrollResult { return EnrollResult{Outcome: Rejected, Reason: reason} }

// consistency is the mean similarity of ts to their mean (0 when they
// cancel out, which DropOutliers has already excluded).
func consistency(ts []Embedding) float64 {
	m, err := Mean(ts)
	if err != nil {
		return 0
	}
	var s float64
	for _, t := range ts {
		s += Cosine(t, m)
	}
	return s / float64(len(ts))
}

// FailEnroll ends a pending request as failed, for a worker that has used
// its last retry.
func (s *Service) FailEnroll(ctx context.Context, id, reason string) error {
	return s.store.FailEnrollRequest(ctx, id, reason)
}

// ReconcileEnrolls enqueues again the requests pending since before
// (a lost enqueue, a crashed worker) and returns how many it enqueued.
func (s *Service) ReconcileEnrolls(ctx context.Context, before time.Time) (int, error) {
	ids, err := s.store.PendingEnrollRequests(ctx, before, 1000)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, id := range ids {
		if err := s.jobs.EnqueueEnroll(ctx, id); err != nil {
			return n, fmt.Errorf("re-enqueue %s: %w", id, err)
		}
		n++
	}
	return n, nil
}

// ImportProgress returns how many items of source are already imported.
func (s *Service) ImportProgress(ctx context.Context, source string) (int64, error) {
	return s.store.ImportProgress(ctx, source)
}

// galleryTurns lets one task of a gallery at a time into its decision
// (striped by gallery: two galleries may share a stripe, which only
// serializes them in this process). PostgreSQL's gallery lock still
// orders the decisions of different processes.
type galleryTurns struct {
	once    sync.Once
	stripes []chan struct{}
}

const turnStripes = 64

// take waits for g's turn, until ctx ends, and returns its release.
func (t *galleryTurns) take(ctx context.Context, g Gallery) (release func(), err error) {
	t.once.Do(func() {
		t.stripes = make([]chan struct{}, turnStripes)
		for i := range t.stripes {
			t.stripes[i] = make(chan struct{}, 1)
		}
	})
	h := fnv.New32a()
	h.Write([]byte(g.Tenant))
	h.Write([]byte{0})
	h.Write([]byte(g.Version))
	turn := t.stripes[h.Sum32()%turnStripes]
	select {
	case turn <- struct{}{}:
		return func() { <-turn }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// recentIDs remembers the last recentIDsKept requests this process's
// batches committed, so that their own tasks, which follow a batch by
// moments, finish without reading them again (at 64 requests a batch, that
// read was most of the worker's statements). Forgetting one only costs
// that read.
type recentIDs struct {
	mu   sync.Mutex
	ids  map[string]struct{}
	ring []string // in the order added; ring[next] is the next to forget
	next int
}

const recentIDsKept = 1 << 14

func (r *recentIDs) add(ids []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.ids == nil {
		r.ids = make(map[string]struct{}, recentIDsKept)
		r.ring = make([]string, 0, recentIDsKept)
	}
	for _, id := range ids {
		if _, ok := r.ids[id]; ok {
			continue
		}
		if len(r.ring) < recentIDsKept {
			r.ring = append(r.ring, id)
		} else {
			delete(r.ids, r.ring[r.next])
			r.ring[r.next] = id
			r.next = (r.next + 1) % recentIDsKept
		}
		r.ids[id] = struct{}{}
	}
}

func (r *recentIDs) has(id string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	_, ok := r.ids[id]
	return ok
}

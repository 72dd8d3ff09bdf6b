package engine

import (
	"context"
	"fmt"
	"log/slog"
)

// Service enrolls, identifies, verifies and deletes persons.
type Service struct {
	store    Store
	index    Index
	follower Follower
	finished Finished
	jobs     Jobs
	scratch  func() Scratch
	cfg      Config
	log      *slog.Logger
}

// Deps are what a Service calls.
type Deps struct {
	Store Store
	Index Index
	// Follower, when not nil, is told of every write this Service makes
	// (an in-memory index, so a caller reads its own write at once).
	Follower Follower
	// Finished, when not nil, wakes SubmitEnroll when the worker commits
	// its request; nil: SubmitEnroll polls the Store.
	Finished Finished
	Jobs     Jobs
	// NewScratch, when not nil, returns an empty exact index for one
	// import batch (vectorstore.NewScratch); nil: a plain scan.
	NewScratch func() Scratch
	Log        *slog.Logger
}

// NewService returns a Service over its dependencies. Zero fields of cfg take
// their documented defaults.
func NewService(d Deps, cfg Config) *Service {
	return &Service{store: d.Store, index: d.Index, follower: d.Follower, finished: d.Finished, jobs: d.Jobs, scratch: d.NewScratch, cfg: cfg.withDefaults(), log: d.Log}
}

// Identify returns up to k persons (at least 1) of g whose best template
// scores at or above the version's match threshold, best first, one entry
// per person. No match is an empty result, not an error.
func (s *Service) Identify(ctx context.Context, g Gallery, probe Embedding, k int) ([]Candidate, error) {
	k = max(k, 1)
	matches, err := s.index.Nearest(ctx, g, probe, k*s.cfg.MaxTemplatesPerPerson)
	if err != nil {
		return nil, fmt.Errorf("search %s: %w", g, err)
	}
	threshold := s.cfg.Thresholds(g.Version).Match
	var ids []int64
	scores := map[int64]float64{}
	for _, m := range matches {
		if m.Score < threshold || len(ids) == k {
			break
		}
		if _, dup := scores[m.PersonID]; dup {
			continue
		}
		scores[m.PersonID] = m.Score
		ids = append(ids, m.PersonID)
	}
	if len(ids) == 0 {
		return nil, nil
	}
	persons, err := s.store.Persons(ctx, ids)
	if err != nil {
		return nil, err
	}
	out := make([]Candidate, 0, len(ids))
	for _, id := range ids {
		if p, ok := persons[id]; ok { // a person deleted meanwhile is skipped
			out = append(out, Candidate{Person: p, Score: RoundScore(scores[id])})
		}
	}
	return out, nil
}

// Verify compares the probe with one person of g, named by external id or
// puid, and reports whether the best of its templates reaches the match
// threshold. An unknown person returns ErrNotFound.
func (s *Service) Verify(ctx context.Context, g Gallery, identifier string, probe Embedding) (Candidate, bool, error) {
	p, err := s.store.PersonByIdentifier(ctx, g, identifier)
	if err != nil {
		return Candidate{}, false, err
	}
	ts, err := s.store.PersonTemplates(ctx, p.ID)
	if err != nil {
		return Candidate{}, false, err
	}
	best := -1.0
	for _, t := range ts {
		if len(t) == len(probe) {
			best = max(best, Cosine(t, probe))
		}
	}
	return Candidate{Person: p, Score: RoundScore(best)}, best >= s.cfg.Thresholds(g.Version).Match, nil
}

// Delete erases the tenant's person with that puid, its templates included,
// and audits it. An unknown puid returns ErrNotFound.
func (s *Service) Delete(ctx context.Context, tenant, puid string, a AuditEntry) (Person, error) {
	a.Tenant, a.Action, a.PUID = tenant, "delete", puid
	p, err := s.store.DeletePerson(ctx, tenant, puid, a)
	if err == nil {
		s.followWrite(ctx, p.ID)
	}
	return p, err
}

// followWrite tells the Follower about a write this Service made. A
// failure is logged, not returned: the write is committed, and the index
// catches up from the change notification.
func (s *Service) followWrite(ctx context.Context, personID int64) {
	if s.follower == nil {
		return
	}
	if err := s.follower.PersonChanged(ctx, personID); err != nil {
		s.log.WarnContext(ctx, "refresh in-memory index", "person_id", personID, "err", err)
	}
}

// EnrollLevels returns each known puid's enroll level; unknown ones are absent.
func (s *Service) EnrollLevels(ctx context.Context, tenant string, puids []string) (map[string]int, error) {
	return s.store.EnrollLevels(ctx, tenant, puids)
}

// Audit records a.
func (s *Service) Audit(ctx context.Context, a AuditEntry) error { return s.store.Audit(ctx, a) }

// Probe validates raw predict vectors and returns one probe: the
// normalised mean when several frames are sent. Invalid vectors return
// ErrInvalid; frames that cancel out, ErrRejected.
func Probe(raw [][]float64) (Embedding, error) {
	es, err := NewEmbeddings(raw)
	if err != nil {
		return nil, err
	}
	return Mean(es)
}

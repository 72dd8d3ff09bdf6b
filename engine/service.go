package engine

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
)

// Service enrolls, identifies, verifies and deletes persons.
type Service struct {
	store    Store
	index    Index
	follower Follower
	finished Finished
	jobs     Jobs
	pairs    PairsFunc
	cfg      Config
	cal      *Calibration
	sizes    gallerySizes
	turns    galleryTurns
	decided  recentIDs
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
	// Pairs, when not nil, compares a batch's templates with each other
	// (vectorstore.BatchPairs); nil: a plain scan.
	Pairs PairsFunc
	Log   *slog.Logger
}

// NewService returns a Service over its dependencies. Zero fields of cfg take
// their documented defaults; cfg.Levels.Calibration is required. It fails
// when the calibration is invalid or a level or model cfg names is not in it.
func NewService(d Deps, cfg Config) (*Service, error) {
	cal := cfg.Levels.Calibration
	if cal == nil {
		return nil, fmt.Errorf("%w: no calibration (package calibration embeds one)", ErrInvalid)
	}
	if err := cal.Validate(); err != nil {
		return nil, err
	}
	s := &Service{store: d.Store, index: d.Index, follower: d.Follower, finished: d.Finished, jobs: d.Jobs,
		pairs: d.Pairs, cfg: cfg.withDefaults(), cal: cal, log: d.Log}
	l := cfg.Levels
	for setting, name := range map[string]string{"match level": l.Match, "dedup level": l.Dedup} {
		if err := s.CheckLevel(name); err != nil {
			return nil, fmt.Errorf("%s: %w", setting, err)
		}
	}
	for v, name := range l.PerVersion {
		if err := s.CheckLevel(name); err != nil {
			return nil, fmt.Errorf("level of version %s: %w", v, err)
		}
	}
	for v, id := range l.Models {
		if _, ok := cal.Models[id]; !ok {
			return nil, fmt.Errorf("%w: version %s: the calibration has no model %q (it has %s)", ErrInvalid, v, id, modelNames(cal))
		}
	}
	return s, nil
}

func modelNames(cal *Calibration) string {
	return strings.Join(slices.Sorted(maps.Keys(cal.Models)), ", ")
}

// Identify returns up to k persons (at least 1) of g whose best template
// scores at or above the threshold of the security level (level "": the
// version's) for a search of the whole gallery, best first, one entry per
// person, and how it decided. No match is an empty result, not an error.
func (s *Service) Identify(ctx context.Context, g Gallery, probe Embedding, k int, level string) ([]Candidate, Decision, error) {
	k = max(k, 1)
	n, err := s.gallerySize(ctx, g)
	if err != nil {
		return nil, Decision{}, err
	}
	d := s.decide(g.Version, s.matchLevel(g.Version, level), n, false)
	// The first k persons of the ranking lie within its first (k−1)·max + 1
	// templates (each person has at most max): k = 1 needs the best one.
	matches, err := s.index.Nearest(ctx, g, probe, (k-1)*s.cfg.MaxTemplatesPerPerson+1)
	if err != nil {
		return nil, d, fmt.Errorf("search %s: %w", g, err)
	}
	if len(matches) > 0 {
		d = s.withScore(g.Version, d, matches[0].Score)
	}
	threshold := d.Threshold
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
		return nil, d, nil
	}
	persons, err := s.store.Persons(ctx, g.Tenant, ids)
	if err != nil {
		return nil, d, err
	}
	out := make([]Candidate, 0, len(ids))
	for _, id := range ids {
		if p, ok := persons[id]; ok { // a person deleted meanwhile is skipped
			out = append(out, Candidate{Person: p, Score: RoundScore(scores[id])})
		}
	}
	return out, d, nil
}

// Verify compares the probe with one person of g, named by external id or
// puid, and reports whether the best of its templates reaches the
// threshold of the security level (level "": the version's) for that many
// comparisons, and how it decided. An unknown person returns ErrNotFound.
func (s *Service) Verify(ctx context.Context, g Gallery, identifier string, probe Embedding, level string) (Candidate, bool, Decision, error) {
	p, err := s.store.PersonByIdentifier(ctx, g, identifier)
	if err != nil {
		return Candidate{}, false, Decision{}, err
	}
	ts, err := s.store.PersonTemplates(ctx, p.ID)
	if err != nil {
		return Candidate{}, false, Decision{}, err
	}
	best, n := -1.0, 0
	for _, t := range ts {
		if len(t) == len(probe) {
			best = max(best, Cosine(t, probe))
			n++
		}
	}
	d := s.decide(g.Version, s.matchLevel(g.Version, level), max(n, 1), false)
	if n > 0 {
		d = s.withScore(g.Version, d, best)
	}
	return Candidate{Person: p, Score: RoundScore(best)}, n > 0 && best >= d.Threshold, d, nil
}

// Delete erases the tenant's person with that puid, its templates included,
// and audits it. An unknown puid returns ErrNotFound.
func (s *Service) Delete(ctx context.Context, tenant, puid string, a AuditEntry) (Person, error) {
	a.Tenant, a.Action, a.PUID = tenant, "delete", puid
	p, err := s.store.DeletePerson(ctx, tenant, puid, a)
	if err == nil {
		s.forgetSize(p.Gallery)
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
	if err := s.follower.PersonChanged(ctx, personID); err != nil && ctx.Err() == nil {
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

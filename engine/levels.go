package engine

import (
	"context"
	"fmt"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"
)

// Levels turns security levels into cosine thresholds through the
// calibrated FMR curves (calibration.go). A level is a false match
// rate: per comparison for 1:1, and for a search of a gallery of N
// templates the false-positive identification rate of the whole search,
// so the threshold rises with N (calibration.PerComparison).
type Levels struct {
	Calibration *Calibration      // nil: the embedded calibration
	Match       string            // level of identify and verify; "": the calibration's default
	Dedup       string            // level of the enroll decision; "": Match
	PerVersion  map[string]string // version → match level, overriding Match
	Models      map[string]string // version → calibrated model; absent: the calibration's default model
}

// Decision is how one match decision was taken, for response headers and
// logs. FMR and FPIR are those of the best score, when there was one.
type Decision struct {
	Level     string  // "" when a bare threshold decided
	Threshold float64 // the cosine the score had to reach
	Compared  int     // templates the probe was compared with: N
	Clamped   bool    // the level asks beyond the calibrated curve: its strictest threshold was used
	Scored    bool    // a best score exists (Score, FMR and FPIR are set)
	Score     float64
	FMR       float64 // share of impostor comparisons scoring as high (0 when bare)
	FPIR      float64 // FMR over N comparisons: 1 − (1 − FMR)^N
}

// CheckLevel returns ErrInvalid when name is not a level; "" is the default.
func (s *Service) CheckLevel(name string) error {
	if name == "" {
		return nil
	}
	if _, ok := s.cal.Level(name); !ok {
		return fmt.Errorf("%w: unknown security level %q (use one of %s)", ErrInvalid, name, s.cal.LevelNames())
	}
	return nil
}

// LevelAllowed returns ErrForbidden when asked is laxer than the key's
// minimum level (either may be "": no constraint, the default).
func (s *Service) LevelAllowed(keyLevel, asked string) error {
	if err := s.CheckLevel(asked); err != nil {
		return err
	}
	if keyLevel == "" || asked == "" || s.cal.AtLeast(asked, keyLevel) {
		return nil
	}
	return fmt.Errorf("%w: this API key requires security level %s or stricter; %s is laxer", ErrForbidden, keyLevel, asked)
}

// matchLevel is the level a match decision of version uses when the
// caller asked for asked ("" for none).
func (s *Service) matchLevel(version, asked string) string {
	if asked != "" {
		return asked
	}
	if l, ok := s.cfg.Levels.PerVersion[version]; ok {
		return l
	}
	if s.cfg.Levels.Match != "" {
		return s.cfg.Levels.Match
	}
	return s.cal.DefaultLevel
}

// dedupLevel is the level of version's enroll decisions.
func (s *Service) dedupLevel(version string) string {
	if s.cfg.Levels.Dedup != "" {
		return s.cfg.Levels.Dedup
	}
	return s.matchLevel(version, "")
}

func (s *Service) model(version string) ModelCalibration {
	if id, ok := s.cfg.Levels.Models[version]; ok {
		return s.cal.Models[id]
	}
	return s.cal.Models[s.cal.DefaultModel]
}

// decide returns the threshold of a match (or, with dedup, enroll) decision
// of version over n templates: the operator's bare threshold when one is
// set, else the level's.
func (s *Service) decide(version, level string, n int, dedup bool) Decision {
	if t, ok := s.bareThreshold(version); ok {
		th := t.Match
		if dedup {
			th = t.Dedup
		}
		return Decision{Threshold: th, Compared: n}
	}
	l, _ := s.cal.Level(level)
	th, clamped := s.model(version).Threshold(PerComparisonFMR(l.FMR, n))
	return Decision{Level: level, Threshold: th, Compared: n, Clamped: clamped}
}

// withScore records the best score and its error rates in d.
func (s *Service) withScore(version string, d Decision, score float64) Decision {
	d.Scored, d.Score = true, score
	if d.Level != "" {
		d.FMR = s.model(version).FMR(score)
		d.FPIR = FPIR(d.FMR, d.Compared)
	}
	return d
}

func (s *Service) bareThreshold(version string) (Thresholds, bool) {
	if t, ok := s.cfg.PerVersion[version]; ok {
		return t, true
	}
	if s.cfg.Default != nil {
		return *s.cfg.Default, true
	}
	return Thresholds{}, false
}

// sizeTTL is how long a gallery's template count is reused: it moves the
// threshold only logarithmically.
const sizeTTL = 5 * time.Second

// sizeQueryTimeout bounds the count query the callers share.
const sizeQueryTimeout = 5 * time.Second

// gallerySizes caches the template count of each gallery.
type gallerySizes struct {
	mu       sync.Mutex
	m        map[Gallery]sizeAt
	inflight singleflight.Group // one count query per gallery at a time
}

type sizeAt struct {
	n  int
	at time.Time
}

func sizeKey(g Gallery) string { return g.Tenant + "\x00" + g.Version }

// forgetSize drops g's cached size after this Service changed the gallery,
// so its next decision counts what it just wrote (other processes' writes
// show within sizeTTL): a count already running may predate the write, so
// the next caller starts its own.
func (s *Service) forgetSize(g Gallery) {
	s.sizes.mu.Lock()
	delete(s.sizes.m, g)
	s.sizes.mu.Unlock()
	s.sizes.inflight.Forget(sizeKey(g))
}

// gallerySize returns g's template count (at least 1), at most sizeTTL old.
// When the cached count expires, the requests that find it so share one
// query: under load they would otherwise each take a connection at once
// (and the pool open new ones, seconds of CPU on a small machine).
func (s *Service) gallerySize(ctx context.Context, g Gallery) (int, error) {
	s.sizes.mu.Lock()
	c, ok := s.sizes.m[g]
	s.sizes.mu.Unlock()
	if ok && time.Since(c.at) < sizeTTL {
		return c.n, nil
	}
	v, err, _ := s.sizes.inflight.Do(sizeKey(g), func() (any, error) {
		// Shared by every waiter: one leaving does not cancel it.
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), sizeQueryTimeout)
		defer cancel()
		return s.countTemplates(ctx, g)
	})
	if err != nil {
		return 0, err
	}
	return v.(int), nil
}

// countTemplates reads g's template count from the Store and caches it.
func (s *Service) countTemplates(ctx context.Context, g Gallery) (int, error) {
	n, err := s.store.GallerySize(ctx, g)
	if err != nil {
		return 0, err
	}
	n = max(n, 1)
	s.sizes.mu.Lock()
	if s.sizes.m == nil {
		s.sizes.m = map[Gallery]sizeAt{}
	}
	s.sizes.m[g] = sizeAt{n, time.Now()}
	s.sizes.mu.Unlock()
	return n, nil
}

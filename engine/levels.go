package engine

import (
	"context"
	"fmt"
	"sync"
	"time"
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

// sizeQueryTimeout bounds the count query the callers share (none of
// them cancels it by leaving).
const sizeQueryTimeout = 5 * time.Second

// gallerySizes caches the template count of each gallery.
type gallerySizes struct {
	mu    sync.Mutex
	m     map[Gallery]sizeAt
	calls map[Gallery]*sizeCall // the count query running for a gallery
}

type sizeAt struct {
	n  int
	at time.Time
}

// sizeCall is one count query, shared by the callers that wait for it.
type sizeCall struct {
	done chan struct{} // closed when n and err are set
	n    int
	err  error
}

// forgetSize drops g's cached size after this Service changed the gallery,
// so its next decision counts what it just wrote (other processes' writes
// show within sizeTTL): a count already running may predate the write, so
// it is neither cached nor joined.
func (s *Service) forgetSize(g Gallery) {
	s.sizes.mu.Lock()
	delete(s.sizes.m, g)
	delete(s.sizes.calls, g)
	s.sizes.mu.Unlock()
}

// gallerySize returns g's template count (at least 1), at most sizeTTL old.
// The callers that find it missing or expired share one query: under load
// they would otherwise each take a connection at once, and the pool open
// new ones (tenths of a second of the machine's CPU when it is small).
func (s *Service) gallerySize(ctx context.Context, g Gallery) (int, error) {
	s.sizes.mu.Lock()
	if c, ok := s.sizes.m[g]; ok && time.Since(c.at) < sizeTTL {
		s.sizes.mu.Unlock()
		return c.n, nil
	}
	call, running := s.sizes.calls[g]
	if !running {
		call = &sizeCall{done: make(chan struct{})}
		if s.sizes.calls == nil {
			s.sizes.calls = map[Gallery]*sizeCall{}
		}
		s.sizes.calls[g] = call
	}
	s.sizes.mu.Unlock()
	if !running {
		go s.countTemplates(context.WithoutCancel(ctx), g, call)
	}
	select {
	case <-call.done:
		return call.n, call.err
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}

// countTemplates runs call: it reads g's template count from the Store
// and caches it, unless forgetSize dropped the call meanwhile.
func (s *Service) countTemplates(ctx context.Context, g Gallery, call *sizeCall) {
	ctx, cancel := context.WithTimeout(ctx, sizeQueryTimeout)
	defer cancel()
	n, err := s.store.GallerySize(ctx, g)
	n = max(n, 1)
	s.sizes.mu.Lock()
	if s.sizes.calls[g] == call {
		delete(s.sizes.calls, g)
		if err == nil {
			if s.sizes.m == nil {
				s.sizes.m = map[Gallery]sizeAt{}
			}
			s.sizes.m[g] = sizeAt{n, time.Now()}
		}
	}
	s.sizes.mu.Unlock()
	call.n, call.err = n, err
	close(call.done)
}

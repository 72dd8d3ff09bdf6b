package engine

// The security levels and, per face model, the calibrated curve that turns
// a false match rate into a cosine threshold and back. The curves come from
// bench/accuracy (real embeddings from the real SDKs); package calibration
// reads the file the binary embeds.

import (
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
)

// SecurityLevel is a named security level: a false match rate per comparison, or,
// for a search of a whole gallery, the false-positive identification rate.
type SecurityLevel struct {
	Name string
	FMR  float64
}

// CurvePoint is one point of a model's curve: impostor comparisons score at or
// above Threshold with probability FMR. Measured points rest on at least
// ten false matches in the evaluation; the others are extrapolated.
type CurvePoint struct {
	Threshold float64
	FMR       float64
	Measured  bool
}

// ModelCalibration is the calibration of one face model (one SDK version).
type ModelCalibration struct {
	Package       string
	Report        string
	EER           float64
	ImpostorPairs int
	GenuinePairs  int
	// Curve: thresholds strictly rising, FMRs strictly falling.
	Curve []CurvePoint
}

// Calibration is every level and every model's curve.
type Calibration struct {
	Note         string
	Levels       []SecurityLevel // laxest first
	DefaultLevel string
	DefaultModel string
	Models       map[string]ModelCalibration
}

// Validate checks that levels grow strictly stricter, the defaults exist,
// and every curve is monotonic within [-1, 1] and (0, 1).
func (f *Calibration) Validate() error {
	var errs []error
	if len(f.Levels) == 0 {
		errs = append(errs, errors.New("no levels"))
	}
	for i, l := range f.Levels {
		if l.Name == "" || !(l.FMR > 0 && l.FMR < 1) {
			errs = append(errs, fmt.Errorf("level %d: want a name and an FMR in (0, 1)", i))
		}
		if i > 0 && !(l.FMR < f.Levels[i-1].FMR) {
			errs = append(errs, fmt.Errorf("level %q: its FMR must be below %q's", l.Name, f.Levels[i-1].Name))
		}
	}
	if _, ok := f.Level(f.DefaultLevel); !ok {
		errs = append(errs, fmt.Errorf("default_level %q is not a level", f.DefaultLevel))
	}
	if _, ok := f.Models[f.DefaultModel]; !ok {
		errs = append(errs, fmt.Errorf("default_model %q has no curve", f.DefaultModel))
	}
	for _, id := range slices.Sorted(maps.Keys(f.Models)) {
		c := f.Models[id].Curve
		if len(c) < 2 {
			errs = append(errs, fmt.Errorf("model %q: a curve needs two points or more", id))
			continue
		}
		for i, p := range c {
			if p.Threshold < -1 || p.Threshold > 1 || !(p.FMR > 0 && p.FMR < 1) {
				errs = append(errs, fmt.Errorf("model %q point %d: want a threshold in [-1, 1] and an FMR in (0, 1)", id, i))
			}
			if i > 0 && !(p.Threshold > c[i-1].Threshold && p.FMR < c[i-1].FMR) {
				errs = append(errs, fmt.Errorf("model %q point %d: the curve is not monotonic (thresholds must rise as FMRs fall)", id, i))
			}
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("calibration: %w", errors.Join(errs...))
	}
	return nil
}

// Level returns the level called name.
func (f *Calibration) Level(name string) (SecurityLevel, bool) {
	i := slices.IndexFunc(f.Levels, func(l SecurityLevel) bool { return l.Name == name })
	if i < 0 {
		return SecurityLevel{}, false
	}
	return f.Levels[i], true
}

// LevelNames lists the levels, laxest first, for messages.
func (f *Calibration) LevelNames() string {
	var names []string
	for _, l := range f.Levels {
		names = append(names, l.Name)
	}
	return strings.Join(names, ", ")
}

// AtLeast reports whether level a is as strict as b or stricter.
func (f *Calibration) AtLeast(a, b string) bool {
	la, _ := f.Level(a)
	lb, _ := f.Level(b)
	return la.FMR <= lb.FMR
}

// Threshold returns the lowest score whose FMR is at most fmr, interpolating
// log10(FMR) linearly between curve points. Outside the curve it returns
// the nearest end and clamped = true.
func (m ModelCalibration) Threshold(fmr float64) (t float64, clamped bool) {
	c := m.Curve
	switch {
	case fmr >= c[0].FMR:
		return c[0].Threshold, fmr > c[0].FMR
	case fmr <= c[len(c)-1].FMR:
		return c[len(c)-1].Threshold, fmr < c[len(c)-1].FMR
	}
	i := slices.IndexFunc(c, func(p CurvePoint) bool { return p.FMR <= fmr }) // c[i-1].FMR > fmr ≥ c[i].FMR
	a, b := c[i-1], c[i]
	w := (math.Log10(a.FMR) - math.Log10(fmr)) / (math.Log10(a.FMR) - math.Log10(b.FMR))
	return a.Threshold + w*(b.Threshold-a.Threshold), false
}

// FMR returns the false match rate of a comparison that scored score: the
// share of impostor comparisons that score as high. Beyond the curve it
// returns the end's FMR (an upper bound above the top, a lower one below).
func (m ModelCalibration) FMR(score float64) float64 {
	c := m.Curve
	switch {
	case score <= c[0].Threshold:
		return c[0].FMR
	case score >= c[len(c)-1].Threshold:
		return c[len(c)-1].FMR
	}
	i := slices.IndexFunc(c, func(p CurvePoint) bool { return p.Threshold >= score })
	a, b := c[i-1], c[i]
	w := (score - a.Threshold) / (b.Threshold - a.Threshold)
	return math.Pow(10, math.Log10(a.FMR)+w*(math.Log10(b.FMR)-math.Log10(a.FMR)))
}

// FPIR is the false-positive identification rate of a search over n
// templates that each match an impostor with probability fmr,
// 1 − (1 − fmr)^n: about n·fmr while that is small. It assumes the
// comparisons are independent.
func FPIR(fmr float64, n int) float64 {
	if n <= 1 {
		return fmr
	}
	return -math.Expm1(float64(n) * math.Log1p(-fmr))
}

// PerComparisonFMR inverts FPIR: the FMR per comparison that keeps a search
// over n templates at fpir, 1 − (1 − fpir)^(1/n) ≈ fpir/n.
func PerComparisonFMR(fpir float64, n int) float64 {
	if n <= 1 {
		return fpir
	}
	return -math.Expm1(math.Log1p(-fpir) / float64(n))
}

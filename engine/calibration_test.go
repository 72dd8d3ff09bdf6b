package engine

import (
	"math"
	"testing"
)

// testCalibration is a small valid calibration: one model, log-linear
// between 1e-2 at 0.2 and 1e-12 at 0.7.
func testCalibration() *Calibration {
	c := &Calibration{DefaultLevel: "high", DefaultModel: "m", Models: map[string]ModelCalibration{}}
	for i, name := range []string{"low", "medium", "high", "very_high", "highest"} {
		c.Levels = append(c.Levels, SecurityLevel{name, math.Pow(10, -float64(i+2))})
	}
	var curve []CurvePoint
	for e := 2; e <= 12; e++ {
		curve = append(curve, CurvePoint{Threshold: 0.2 + 0.05*float64(e-2), FMR: math.Pow(10, -float64(e))})
	}
	c.Models["m"] = ModelCalibration{Curve: curve}
	return c
}

// TestCurveInterpolates: FMR and Threshold are inverse inside the curve,
// log-linear between its points, and clamp outside it.
func TestCurveInterpolates(t *testing.T) {
	m := ModelCalibration{Curve: []CurvePoint{{0.2, 1e-2, true}, {0.3, 1e-4, false}, {0.4, 1e-6, false}}}
	if th, clamped := m.Threshold(1e-3); math.Abs(th-0.25) > 1e-9 || clamped {
		t.Errorf("Threshold(1e-3) = %v (clamped %v), want 0.25 (halfway in log FMR)", th, clamped)
	}
	if f := m.FMR(0.35); math.Abs(math.Log10(f)+5) > 1e-9 {
		t.Errorf("FMR(0.35) = %v, want 1e-5", f)
	}
	for _, f := range []float64{3e-3, 1e-4, 2e-5, 1e-6} {
		if back := m.FMR(must(m.Threshold(f))); math.Abs(math.Log10(back)-math.Log10(f)) > 1e-9 {
			t.Errorf("FMR(Threshold(%v)) = %v", f, back)
		}
	}
	if th, clamped := m.Threshold(1e-9); th != 0.4 || !clamped {
		t.Errorf("Threshold beyond the curve = %v (clamped %v), want its strictest point, clamped", th, clamped)
	}
	if f := m.FMR(0.9); f != 1e-6 {
		t.Errorf("FMR above the curve = %v, want its last FMR", f)
	}
}

func must(th float64, _ bool) float64 { return th }

// TestGallerySizeRaisesThreshold: for a search of N templates the level is
// the FPIR of the whole search, so the per-comparison FMR is about FPIR/N
// and the threshold rises with N; 1:1 keeps the level's FMR.
func TestGallerySizeRaisesThreshold(t *testing.T) {
	for _, n := range []int{1, 10, 1000, 1_000_000} {
		f := PerComparisonFMR(1e-4, n)
		if back := FPIR(f, n); math.Abs(back-1e-4)/1e-4 > 1e-9 {
			t.Errorf("N=%d: FPIR(PerComparisonFMR(1e-4)) = %v", n, back)
		}
		if want := 1e-4 / float64(n); math.Abs(f-want)/want > 1e-3 {
			t.Errorf("N=%d: per-comparison FMR %v, want about %v", n, f, want)
		}
	}
	cal := testCalibration()
	s := &Service{cal: cal, cfg: Config{}.withDefaults()}
	prev := -2.0
	for _, n := range []int{1, 1000, 100_000, 1_000_000} {
		d := s.decide("FACE3_1", "high", n, false)
		want, _ := cal.Models[cal.DefaultModel].Threshold(PerComparisonFMR(1e-4, n))
		if d.Threshold != want || d.Threshold <= prev || d.Level != "high" || d.Compared != n {
			t.Errorf("N=%d: %+v, want threshold %.4f above %.4f", n, d, want, prev)
		}
		prev = d.Threshold
	}
	d := s.withScore("FACE3_1", s.decide("FACE3_1", "high", 1000, false), 0.45)
	if want := FPIR(d.FMR, 1000); d.FPIR != want || d.FMR <= 0 || d.FPIR <= d.FMR {
		t.Errorf("score 0.45 in a gallery of 1000: %+v, want FPIR = 1−(1−FMR)^1000 = %v", d, want)
	}
	// A bare threshold set by the operator decides instead, with no rate.
	s.cfg.Default = &Thresholds{Match: 0.6, Dedup: 0.7}
	if d := s.decide("FACE3_1", "high", 1000, true); d.Threshold != 0.7 || d.Level != "" {
		t.Errorf("bare thresholds: %+v, want dedup 0.7 and no level", d)
	}
}

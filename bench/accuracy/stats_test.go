package main

import (
	"math"
	"math/rand/v2"
	"testing"
)

// TestUpperBound: zero false matches in n pairs bound the FMR at about 3/n
// (one-sided 95 %), as the 16,000 pairs → 1.9·10⁻⁴.
func TestUpperBound(t *testing.T) {
	if got := upperBound(0, 16000); math.Abs(got-1.87e-4) > 0.01e-4 {
		t.Errorf("upperBound(0, 16000) = %.3g, want 1.87e-4", got)
	}
	if got, want := upperBound(0, 100), 1-math.Pow(0.05, 1.0/100); math.Abs(got-want) > 1e-9 {
		t.Errorf("upperBound(0, 100) = %v, want 1 − 0.05^(1/n) = %v", got, want)
	}
	if a, b := upperBound(3, 1000), upperBound(30, 10000); !(a > 0.003 && b > 0.003 && b < a) {
		t.Errorf("upper bounds of 3/1000 and 30/10000: %v, %v (want above the rate, tighter with more data)", a, b)
	}
	if lo, hi := interval(5, 100); !(lo < 0.05 && hi > 0.05 && lo > 0 && hi < 1) {
		t.Errorf("interval(5, 100) = %v – %v", lo, hi)
	}
}

// TestRatesAndEER on two known sets of scores.
func TestRatesAndEER(t *testing.T) {
	imp := sorted([]float64{0.1, 0.2, 0.3, 0.4})
	gen := sorted([]float64{0.35, 0.5, 0.6, 0.7})
	if fmr(imp, 0.3) != 0.5 || fnmr(gen, 0.5) != 0.25 {
		t.Errorf("FMR(0.3) = %v, FNMR(0.5) = %v; want 0.5, 0.25", fmr(imp, 0.3), fnmr(gen, 0.5))
	}
	if rate, th := eer(imp, gen); rate != 0.25 || th != 0.35 && th != 0.4 {
		t.Errorf("EER = %v at %v, want 0.25 where one impostor and one genuine pair are on the wrong side", rate, th)
	}
	if rate, _ := eer(sorted([]float64{0.1, 0.2}), sorted([]float64{0.8, 0.9})); rate != 0 {
		t.Errorf("separated sets: EER %v, want 0", rate)
	}
	// The empirical threshold lets through exactly the allowed false matches.
	many := make([]float64, 1000)
	for i := range many {
		many[i] = float64(i) / 1000
	}
	s := sorted(many)
	for _, f := range []float64{0.1, 0.01, 0.001, 0.0001} {
		th := empiricalThreshold(s, f)
		if k := s.atOrAbove(th); k != int(f*1000) {
			t.Errorf("f=%v: %d scores at or above %v, want %d", f, k, th, int(f*1000))
		}
	}
}

// TestTailFitRecoversANormal: scores drawn from a normal law after the z
// transform give back its parameters, and its extrapolated thresholds.
func TestTailFitRecoversANormal(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	const mean, sd = 0.02, 0.08
	imp := make([]float64, 200_000)
	for i := range imp {
		imp[i] = math.Tanh(mean + sd*r.NormFloat64())
	}
	fit := fitTail(imp)
	if math.Abs(fit.Mean-mean) > 0.005 || math.Abs(fit.SD-sd) > 0.005 {
		t.Errorf("fit %+v, want mean %v sd %v", fit, mean, sd)
	}
	want := math.Tanh(mean + sd*4.753424) // Φ⁻¹(1 − 1e-6)
	if got := fit.threshold(1e-6); math.Abs(got-want) > 0.01 {
		t.Errorf("threshold at 1e-6 = %v, want %v", got, want)
	}
	if f := fit.fmr(fit.threshold(1e-5)); math.Abs(math.Log10(f)+5) > 1e-6 {
		t.Errorf("fmr(threshold(1e-5)) = %v", f)
	}
}

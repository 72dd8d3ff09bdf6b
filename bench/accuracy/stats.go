package main

import (
	"math"
	"math/rand/v2"
	"slices"
	"sort"

	"gonum.org/v1/gonum/stat"
	"gonum.org/v1/gonum/stat/distuv"
)

// scores are the similarity scores of one kind of pair, sorted ascending.
type scores []float64

func sorted(s []float64) scores {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

// atOrAbove counts the scores ≥ t.
func (s scores) atOrAbove(t float64) int {
	return len(s) - sort.SearchFloat64s(s, t)
}

// rate is the fraction of impostor scores ≥ t (FMR) or of genuine scores
// < t (FNMR).
func fmr(imp scores, t float64) float64 { return float64(imp.atOrAbove(t)) / float64(len(imp)) }
func fnmr(gen scores, t float64) float64 {
	return float64(len(gen)-gen.atOrAbove(t)) / float64(len(gen))
}

// eer returns the equal error rate and the threshold where FMR and FNMR
// cross, scanning every observed score.
func eer(imp, gen scores) (rate, threshold float64) {
	cands := slices.Concat(imp, gen)
	slices.Sort(cands)
	best := math.Inf(1)
	for _, t := range cands {
		a, b := fmr(imp, t), fnmr(gen, t)
		if d := math.Abs(a - b); d < best {
			best, rate, threshold = d, (a+b)/2, t
		}
	}
	return rate, threshold
}

// upperBound is the one-sided 95 % Clopper–Pearson upper bound of a rate
// with k events in n trials (k = 0 gives 1 − 0.05^(1/n) ≈ 3/n).
func upperBound(k, n int) float64 {
	if k >= n {
		return 1
	}
	return distuv.Beta{Alpha: float64(k + 1), Beta: float64(n - k)}.Quantile(0.95)
}

// interval is the two-sided 95 % Clopper–Pearson interval.
func interval(k, n int) (lo, hi float64) {
	if k > 0 {
		lo = distuv.Beta{Alpha: float64(k), Beta: float64(n - k + 1)}.Quantile(0.025)
	}
	hi = 1
	if k < n {
		hi = distuv.Beta{Alpha: float64(k + 1), Beta: float64(n - k)}.Quantile(0.975)
	}
	return lo, hi
}

// tail is a normal law for the upper tail of the impostor scores after
// Fisher's z transform (atanh, which tames the bounded cosine's tails):
// FMR(t) = 1 − Φ((atanh t − Mean) / SD). It is fitted by least squares to
// the measured quantiles of the upper tail (FMR from 10 % down to what ten
// false matches can show), so it follows the tail rather than the bulk. It
// is how thresholds for FMRs below what the data can show are extrapolated.
type tail struct {
	Mean float64 `json:"mean_z"`
	SD   float64 `json:"sd_z"`
}

// tailFrom is the highest FMR the tail fit uses.
const tailFrom = 0.1

func fitTail(imp []float64) tail {
	s := sorted(imp)
	var xs, zs []float64
	for _, f := range curveFMRs() {
		if f <= tailFrom && f*float64(len(s)) >= minEvents {
			xs = append(xs, distuv.UnitNormal.Quantile(1-f))
			zs = append(zs, atanh(empiricalThreshold(s, f)))
		}
	}
	if len(xs) < 2 {
		z := make([]float64, len(s))
		for i, v := range s {
			z[i] = atanh(v)
		}
		m, sd := stat.MeanStdDev(z, nil)
		return tail{m, sd}
	}
	a, b := stat.LinearRegression(xs, zs, nil, false)
	return tail{a, b}
}

func atanh(s float64) float64 { return math.Atanh(max(-0.999999, min(0.999999, s))) }

func (t tail) fmr(threshold float64) float64 {
	return distuv.UnitNormal.Survival((atanh(threshold) - t.Mean) / t.SD)
}

func (t tail) threshold(fmr float64) float64 {
	return math.Tanh(t.Mean + t.SD*distuv.UnitNormal.Quantile(1-fmr))
}

// minEvents is how many false matches a measured threshold rests on: an
// FMR target f is measured when f·n ≥ minEvents, extrapolated otherwise.
const minEvents = 10

// empiricalThreshold is the lowest threshold with at most f·n impostor
// scores at or above it.
func empiricalThreshold(imp scores, f float64) float64 {
	k := int(math.Floor(f * float64(len(imp)))) // false matches allowed
	// The (k+1)-th largest score must fall below the threshold.
	return math.Nextafter(imp[len(imp)-1-k], 2)
}

// identityPair names two identities (a < b): a reviewed pair of portraits,
// or an impostor pair of the bootstrap.
type identityPair struct{ a, b int }

// bootstrapThresholds resamples identities with replacement (b times),
// refits the tail on the impostor pairs among them (sim holds the score of
// every pair of identities' base images) and returns the 2.5 and 97.5
// percentiles of the extrapolated threshold for each FMR target.
func bootstrapThresholds(sim [][]float64, pairs pairKinds, targets []float64, b int, seed uint64) (lo, hi []float64) {
	r := rand.New(rand.NewPCG(seed, 1))
	n := len(sim)
	per := make([][]float64, len(targets))
	draw := make([]int, n)
	var imp []float64
	for range b {
		for i := range draw {
			draw[i] = r.IntN(n)
		}
		imp = imp[:0]
		for i := range draw {
			for j := i + 1; j < n; j++ {
				a, c := min(draw[i], draw[j]), max(draw[i], draw[j])
				if a == c || pairs.reviewed(identityPair{a, c}) {
					continue
				}
				imp = append(imp, sim[a][c])
			}
		}
		t := fitTail(imp)
		for k, f := range targets {
			per[k] = append(per[k], t.threshold(f))
		}
	}
	for k := range targets {
		slices.Sort(per[k])
		lo = append(lo, stat.Quantile(0.025, stat.Empirical, per[k], nil))
		hi = append(hi, stat.Quantile(0.975, stat.Empirical, per[k], nil))
	}
	return lo, hi
}

// cosine is the cosine similarity of a and b (the engine's score: it
// compares unit vectors by their dot product).
func cosine(a, b []float64) float64 {
	var ab, aa, bb float64
	for i := range a {
		ab += a[i] * b[i]
		aa += a[i] * a[i]
		bb += b[i] * b[i]
	}
	if aa == 0 || bb == 0 {
		return 0
	}
	return ab / math.Sqrt(aa*bb)
}

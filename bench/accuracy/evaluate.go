package main

import (
	"bufio"
	"fmt"
	"math"
	"os"
	"slices"
	"strings"

	"github.com/biomatch/biomatch/engine"
)

// level is a named security level: the false match rate it stands for.
type level struct {
	Name string
	FMR  float64
}

// levels are the server's security levels (engine.SecurityLevels mirrors them).
var levels = []level{{"low", 1e-2}, {"medium", 1e-3}, {"high", 1e-4}, {"very_high", 1e-5}, {"highest", 1e-6}}

// Evaluation is what bench/results/accuracy_<model>.json holds.
type Evaluation struct {
	Model        string `json:"model"`
	Package      string `json:"package"`
	Identities   int    `json:"identities"`
	Images       int    `json:"images"`
	RefusedBySDK int    `json:"refused_by_sdk"`

	ImpostorPairs  int    `json:"impostor_pairs"`
	GenuinePairs   int    `json:"genuine_pairs"`
	RealPairs      int    `json:"genuine_pairs_real_second_photo"`
	GenuineCaveat  string `json:"genuine_caveat"`
	ImpostorSource string `json:"impostor_source"`

	ImpostorMean float64      `json:"impostor_mean"`
	ImpostorSD   float64      `json:"impostor_sd"`
	ImpostorMax  float64      `json:"impostor_max"`
	GenuineMean  float64      `json:"genuine_mean"`
	GenuineMin   float64      `json:"genuine_min"`
	RealScores   []float64    `json:"real_second_photo_scores"`
	Unsure       []unsurePair `json:"unsure_pairs"`

	EER          float64    `json:"eer"`
	EERThreshold float64    `json:"eer_threshold"`
	Tail         tail       `json:"tail_fit"`
	FitCheck     []fitPoint `json:"tail_fit_check"`

	Levels []levelResult `json:"levels"`
	// Gallery: for a search of N templates, the threshold each level takes
	// (the level's FMR read as the search's FPIR) and the FNMR there.
	Gallery []galleryRow `json:"by_gallery_size"`
	Curve   []curvePoint `json:"curve"`
	Rates   []ratePoint  `json:"rates"`

	// DET: FMR (measured where ten false matches or more show it, else from
	// the fitted tail) against FNMR, threshold by threshold.
	DET       []detPoint `json:"det"`
	Histogram histogram  `json:"histogram"`
	// OldThreshold is the bare 0.5 every decision used before levels.
	OldThreshold ratePoint `json:"old_threshold_0_5"`
}

// unsurePair is a reviewed pair in neither set, with its base images' score.
type unsurePair struct {
	A, B  string
	Score float64
}

type fitPoint struct {
	FMR                float64 `json:"fmr"`
	EmpiricalThreshold float64 `json:"empirical_threshold"`
	FittedThreshold    float64 `json:"fitted_threshold"`
}

type levelResult struct {
	Name        string    `json:"name"`
	FMR         float64   `json:"fmr"`
	Threshold   float64   `json:"threshold"`
	Source      string    `json:"source"`                   // "measured" or "extrapolated"
	ThresholdCI []float64 `json:"threshold_ci95,omitempty"` // extrapolated levels: 2.5 and 97.5 percentiles
	// FalseMatches are the impostor pairs at or above the threshold, and
	// FMRUpper95 the one-sided 95 % upper bound of the FMR they allow.
	FalseMatches int        `json:"false_matches"`
	FMRUpper95   float64    `json:"fmr_upper95"`
	FNMR         float64    `json:"fnmr"`
	FNMRCI       [2]float64 `json:"fnmr_ci95"`
	FNMRReal     float64    `json:"fnmr_real_second_photo"`
}

// curvePoint is one point of the calibrated FMR curve the server reads.
type curvePoint struct {
	Threshold float64 `json:"threshold"`
	FMR       float64 `json:"fmr"`
	Measured  bool    `json:"measured"`
}

type galleryRow struct {
	Level     string  `json:"level"`
	N         int     `json:"templates"`
	FMR       float64 `json:"fmr_per_comparison"`
	Threshold float64 `json:"threshold"`
	Clamped   bool    `json:"beyond_curve"`
	FNMR      float64 `json:"fnmr"`
	FNMRReal  float64 `json:"fnmr_real_second_photo"`
}

type detPoint struct {
	Threshold float64 `json:"threshold"`
	FMR       float64 `json:"fmr"`
	FNMR      float64 `json:"fnmr"`
	Measured  bool    `json:"measured"`
}

type ratePoint struct {
	Threshold float64 `json:"threshold"`
	FMR       float64 `json:"fmr"`
	FNMR      float64 `json:"fnmr"`
}

type histogram struct {
	From     float64 `json:"from"`
	Width    float64 `json:"width"`
	Impostor []int   `json:"impostor"`
	Genuine  []int   `json:"genuine"`
}

// curveFMRs are the FMRs of the calibration curve: a quarter decade apart
// from 10^-0.5 to 10^-12.
func curveFMRs() []float64 {
	var out []float64
	for k := 2; k <= 48; k++ {
		out = append(out, math.Pow(10, -float64(k)/4))
	}
	return out
}

// pairKinds are the reviewed pairs of different portraits: same person, or
// undecided.
type pairKinds struct {
	same, unsure map[identityPair]bool
}

// readPairs reads same_person.txt: lines "same A B" or "unsure A B" naming
// portraits ("men/3.jpg"); # starts a comment.
func readPairs(path string, index map[string]int) (pairKinds, error) {
	k := pairKinds{same: map[identityPair]bool{}, unsure: map[identityPair]bool{}}
	f, err := os.Open(path)
	if err != nil {
		return k, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for line := 1; sc.Scan(); line++ {
		text, _, _ := strings.Cut(sc.Text(), "#")
		fields := strings.Fields(text)
		if len(fields) == 0 {
			continue
		}
		if len(fields) != 3 || (fields[0] != "same" && fields[0] != "unsure") {
			return k, fmt.Errorf("%s:%d: want \"same A B\" or \"unsure A B\"", path, line)
		}
		a, okA := index[fields[1]]
		b, okB := index[fields[2]]
		if !okA || !okB || a == b {
			return k, fmt.Errorf("%s:%d: want two different portraits of the set", path, line)
		}
		into := k.same
		if fields[0] == "unsure" {
			into = k.unsure
		}
		into[identityPair{min(a, b), max(a, b)}] = true
	}
	return k, sc.Err()
}

// reviewed reports whether a pair of portraits is in either list.
func (k pairKinds) reviewed(p identityPair) bool { return k.same[p] || k.unsure[p] }

// evaluate scores every pair: genuine pairs are two variants of one
// portrait, and every variant pair of two portraits of one person;
// impostor pairs are the base images of two different people.
func evaluate(m model, ids []string, emb embeddings, pairs pairKinds, bootstrap int) Evaluation {
	ev := Evaluation{Model: m.ID, Package: m.Package, Identities: len(ids),
		GenuineCaveat: "Genuine pairs are mostly variants of one photo (mirror, ±8° rotation, brightness, framing, " +
			"downscale + JPEG + blur): easier than two photos taken on different days, so FNMR here is optimistic. " +
			"Real second photos are few and listed apart.",
		ImpostorSource: "base images of two different people (each pair once)"}
	var gen, imp, real []float64
	for _, id := range ids {
		for _, v := range variants {
			if emb[id][v] != nil {
				ev.Images++
			} else {
				ev.RefusedBySDK++
			}
		}
	}
	for _, id := range ids {
		for i, a := range variants {
			for _, b := range variants[i+1:] {
				if emb[id][a] != nil && emb[id][b] != nil {
					gen = append(gen, cosine(emb[id][a], emb[id][b]))
				}
			}
		}
	}
	sim := make([][]float64, len(ids))
	for i := range ids {
		sim[i] = make([]float64, len(ids))
	}
	for i := range ids {
		for j := i + 1; j < len(ids); j++ {
			a, b := emb[ids[i]]["base"], emb[ids[j]]["base"]
			if pairs.unsure[identityPair{i, j}] {
				if a != nil && b != nil {
					ev.Unsure = append(ev.Unsure, unsurePair{ids[i], ids[j], round4(cosine(a, b))})
				}
				continue
			}
			if pairs.same[identityPair{i, j}] {
				for _, va := range emb[ids[i]] {
					for _, vb := range emb[ids[j]] {
						real = append(real, cosine(va, vb))
					}
				}
				if a != nil && b != nil {
					ev.RealScores = append(ev.RealScores, round4(cosine(a, b)))
				}
				continue
			}
			if a == nil || b == nil {
				continue
			}
			sim[i][j] = cosine(a, b)
			imp = append(imp, sim[i][j])
		}
	}
	gen = slices.Concat(gen, real)
	impS, genS, realS := sorted(imp), sorted(gen), sorted(real)
	ev.ImpostorPairs, ev.GenuinePairs, ev.RealPairs = len(imp), len(gen), len(real)
	ev.ImpostorMean, ev.ImpostorSD = meanSD(imp)
	ev.ImpostorMax = impS[len(impS)-1]
	ev.GenuineMean, _ = meanSD(gen)
	ev.GenuineMin = genS[0]
	ev.EER, ev.EERThreshold = eer(impS, genS)
	ev.Tail = fitTail(imp)
	ev.OldThreshold = ratePoint{0.5, fmr(impS, 0.5), fnmr(genS, 0.5)}

	n := float64(len(imp))
	measured := func(f float64) bool { return f*n >= minEvents }
	for _, f := range []float64{0.1, 0.03, 0.01, 0.003, 0.001} {
		if measured(f) {
			ev.FitCheck = append(ev.FitCheck, fitPoint{f, empiricalThreshold(impS, f), ev.Tail.threshold(f)})
		}
	}
	// Below what ten false matches can show, the fitted tail decides, but
	// never a threshold with more false matches here than f allows.
	thresholdAt := func(f float64) (float64, string) {
		if measured(f) {
			return empiricalThreshold(impS, f), "measured"
		}
		return max(ev.Tail.threshold(f), empiricalThreshold(impS, f)), "extrapolated"
	}
	// The curve: thresholds rise strictly as the FMR falls (where the
	// measured part meets the fitted one, a threshold is raised to keep it so).
	prev := -1.0
	for _, f := range curveFMRs() {
		t, src := thresholdAt(f)
		t = max(ceil4(t), prev+1e-4)
		ev.Curve = append(ev.Curve, curvePoint{t, f, src == "measured"})
		prev = t
	}
	curve := engine.ModelCalibration{}
	for _, p := range ev.Curve {
		curve.Curve = append(curve.Curve, engine.CurvePoint{Threshold: p.Threshold, FMR: p.FMR, Measured: p.Measured})
	}
	var targets []float64
	for _, l := range levels {
		targets = append(targets, l.FMR)
	}
	lo, hi := bootstrapThresholds(sim, pairs, targets, bootstrap, 1)
	for i, l := range levels {
		// What the server will use: the curve at the level's FMR.
		t, _ := curve.Threshold(l.FMR)
		src := "measured"
		if !measured(l.FMR) {
			src = "extrapolated"
		}
		k := impS.atOrAbove(t)
		misses := len(genS) - genS.atOrAbove(t)
		fl, fh := interval(misses, len(genS))
		r := levelResult{Name: l.Name, FMR: l.FMR, Threshold: t, Source: src, FalseMatches: k,
			FMRUpper95: upperBound(k, len(imp)), FNMR: fnmr(genS, t), FNMRCI: [2]float64{fl, fh}}
		if len(realS) > 0 {
			r.FNMRReal = fnmr(realS, t)
		}
		if src == "extrapolated" {
			r.ThresholdCI = []float64{lo[i], hi[i]}
		}
		ev.Levels = append(ev.Levels, r)
	}
	for t := -0.2; t <= 1.0001; t += 0.02 {
		ev.Rates = append(ev.Rates, ratePoint{round4(t), fmr(impS, t), fnmr(genS, t)})
	}
	for _, l := range levels {
		for _, n := range []int{1, 1_000, 100_000, 1_000_000} {
			f := engine.PerComparisonFMR(l.FMR, n)
			t, clamped := curve.Threshold(f)
			r := galleryRow{Level: l.Name, N: n, FMR: f, Threshold: round4(t), Clamped: clamped, FNMR: fnmr(genS, t)}
			if len(realS) > 0 {
				r.FNMRReal = fnmr(realS, t)
			}
			ev.Gallery = append(ev.Gallery, r)
		}
	}
	for t := 0.0; t <= 1.0001; t += 0.005 {
		k := impS.atOrAbove(t)
		p := detPoint{Threshold: round4(t), FMR: fmr(impS, t), FNMR: fnmr(genS, t), Measured: k >= minEvents}
		if !p.Measured {
			p.FMR = ev.Tail.fmr(t)
		}
		ev.DET = append(ev.DET, p)
	}
	ev.Histogram = histogram{From: -0.4, Width: 0.02, Impostor: make([]int, 70), Genuine: make([]int, 70)}
	bin := func(s float64) int { return min(69, max(0, int((s+0.4)/0.02))) }
	for _, s := range imp {
		ev.Histogram.Impostor[bin(s)]++
	}
	for _, s := range gen {
		ev.Histogram.Genuine[bin(s)]++
	}
	return ev
}

func meanSD(x []float64) (float64, float64) {
	var s, ss float64
	for _, v := range x {
		s += v
	}
	m := s / float64(len(x))
	for _, v := range x {
		ss += (v - m) * (v - m)
	}
	return m, math.Sqrt(ss / float64(max(1, len(x)-1)))
}

func round4(x float64) float64 { return math.Round(x*1e4) / 1e4 }

// ceil4 rounds a threshold up to four decimals: never below the one computed.
func ceil4(x float64) float64 { return math.Ceil(x*1e4-1e-9) / 1e4 }

// Command accuracy measures how well biomatch's decisions separate the same
// face from different faces, on real face embeddings that PrivateID's own
// web SDKs compute in headless Chromium, and writes the calibration the
// server's security levels come from.
//
//	bash bench/accuracy/setup.sh && go run ./bench/accuracy   # make accuracy
//
// It writes bench/results/accuracy_<model>.{json,md,png} and
// calibration/calibration.json. Photos and embeddings of real people are
// never written inside the repository (only with -cache, where you say).
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
)

func main() {
	var (
		dist      = flag.String("dist", "bench/accuracy/web/dist", "the pages, SDKs and portraits bench/accuracy/setup.sh builds")
		out       = flag.String("out", "bench/results", "directory of the reports")
		calib     = flag.String("calibration", "calibration/calibration.json", "the calibration file to write (embedded in the server)")
		samePath  = flag.String("same", "bench/accuracy/same_person.txt", "pairs of portraits that show one person")
		only      = flag.String("models", "", "comma-separated model ids (default: all)")
		cacheDir  = flag.String("cache", "", "keep embeddings in this directory and reuse them (outside git: they are biometric data)")
		bootstrap = flag.Int("bootstrap", 500, "resamples of the identities for the extrapolated thresholds' intervals")
		verbose   = flag.Bool("v", false, "log the page's console and every request")
	)
	flag.Parse()
	lvl := slog.LevelInfo
	if *verbose {
		lvl = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lvl}))
	if err := run(context.Background(), *dist, *out, *calib, *samePath, *only, *cacheDir, *bootstrap, *verbose, log); err != nil {
		fmt.Fprintln(os.Stderr, "accuracy:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, dist, out, calib, samePath, only, cacheDir string, bootstrap int, verbose bool, log *slog.Logger) error {
	ids, err := portraits(dist)
	if err != nil {
		return err
	}
	index := map[string]int{}
	for i, id := range ids {
		index[id] = i
	}
	pairs, err := readPairs(samePath, index)
	if err != nil {
		return err
	}
	var evs []Evaluation
	for _, m := range models {
		if only != "" && !strings.Contains(","+only+",", ","+m.ID+",") {
			continue
		}
		cache := ""
		if cacheDir != "" {
			cache = filepath.Join(cacheDir, "embeddings_"+m.ID+".json")
		}
		emb, err := embedAll(ctx, m, dist, cache, ids, verbose, log)
		if err != nil {
			return fmt.Errorf("%s: %w", m.ID, err)
		}
		reportDuplicates(m, ids, emb, pairs, log)
		ev := evaluate(m, ids, emb, pairs, bootstrap)
		base := filepath.Join(out, "accuracy_"+m.ID)
		for _, w := range []func() error{
			func() error { return writeJSON(base+".json", ev) },
			func() error { return writeMarkdown(base+".md", ev) },
			func() error { return writePlot(base+".png", ev) },
		} {
			if err := w(); err != nil {
				return err
			}
		}
		log.Info("evaluated", "model", m.ID, "eer", ev.EER, "impostor_pairs", ev.ImpostorPairs, "genuine_pairs", ev.GenuinePairs, "report", base+".md")
		evs = append(evs, ev)
	}
	return writeCalibration(calib, evs)
}

// reportDuplicates logs the pairs of different portraits whose base images
// score like genuine pairs: candidates for same_person.txt, to be checked
// by eye (the file lists the pairs a person looked at).
func reportDuplicates(m model, ids []string, emb embeddings, pairs pairKinds, log *slog.Logger) {
	for i := range ids {
		for j := i + 1; j < len(ids); j++ {
			a, b := emb[ids[i]]["base"], emb[ids[j]]["base"]
			if a == nil || b == nil || pairs.reviewed(identityPair{i, j}) {
				continue
			}
			if s := cosine(a, b); s >= 0.5 {
				log.Warn("two portraits score like one person: check them and list them in same_person.txt if so",
					"model", m.ID, "a", ids[i], "b", ids[j], "score", round4(s))
			}
		}
	}
}

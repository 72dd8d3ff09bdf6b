package main

import (
	"os"

	"github.com/biomatch/biomatch/calibration"
	"github.com/biomatch/biomatch/engine"
)

// defaultLevel is the server's level when the operator names none.
const defaultLevel = "high"

// writeCalibration writes the levels and each evaluated model's curve to
// path, keeping the models of the file that were not evaluated this run.
func writeCalibration(path string, evs []Evaluation) error {
	f := engine.Calibration{Models: map[string]engine.ModelCalibration{}}
	if b, err := os.ReadFile(path); err == nil {
		if old, err := calibration.Parse(b); err == nil {
			f = *old // keep the models not evaluated this run; a file that does not parse is replaced
		}
	}
	f.Note = "Written by `make accuracy` (go run ./bench/accuracy): FMR per comparison by cosine threshold, per face model, " +
		"from real embeddings of the real SDKs. Measured points rest on ten or more false matches; the rest are " +
		"extrapolated from a normal fit of Fisher-z impostor scores. See docs/accuracy.md."
	f.Levels = nil
	for _, l := range levels {
		f.Levels = append(f.Levels, engine.SecurityLevel{Name: l.Name, FMR: l.FMR})
	}
	f.DefaultLevel, f.DefaultModel = defaultLevel, models[0].ID
	if f.Models == nil {
		f.Models = map[string]engine.ModelCalibration{}
	}
	for _, ev := range evs {
		m := engine.ModelCalibration{Package: ev.Package, Report: "bench/results/accuracy_" + ev.Model + ".md", EER: round4(ev.EER),
			ImpostorPairs: ev.ImpostorPairs, GenuinePairs: ev.GenuinePairs}
		for _, p := range ev.Curve {
			m.Curve = append(m.Curve, engine.CurvePoint{Threshold: p.Threshold, FMR: p.FMR, Measured: p.Measured})
		}
		f.Models[ev.Model] = m
	}
	b, err := calibration.Marshal(&f)
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o644)
}

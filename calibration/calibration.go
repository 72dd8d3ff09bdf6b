// Package calibration reads and writes the calibration file — security
// levels and, per face model, the curve from cosine threshold to false
// match rate — that bench/accuracy produces and the binary embeds. The
// engine uses what it returns (engine.Calibration); the file format lives
// here, so the domain carries no encoding.
package calibration

import (
	_ "embed"
	"encoding/json"
	"fmt"

	"github.com/biomatch/biomatch/engine"
)

//go:embed calibration.json
var embedded []byte

// Embedded returns the calibration built into the binary.
func Embedded() (*engine.Calibration, error) { return Parse(embedded) }

// Parse reads and validates a calibration file.
func Parse(b []byte) (*engine.Calibration, error) {
	var f file
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("calibration: %w", err)
	}
	c := &engine.Calibration{Note: f.Note, DefaultLevel: f.DefaultLevel, DefaultModel: f.DefaultModel,
		Models: map[string]engine.ModelCalibration{}}
	for _, l := range f.Levels {
		c.Levels = append(c.Levels, engine.SecurityLevel{Name: l.Name, FMR: l.FMR})
	}
	for id, m := range f.Models {
		mc := engine.ModelCalibration{Package: m.Package, Report: m.Report, EER: m.EER, ImpostorPairs: m.ImpostorPairs, GenuinePairs: m.GenuinePairs}
		for _, p := range m.Curve {
			mc.Curve = append(mc.Curve, engine.CurvePoint{Threshold: p.Threshold, FMR: p.FMR, Measured: p.Measured})
		}
		c.Models[id] = mc
	}
	return c, c.Validate()
}

// Marshal returns c as a calibration file, after validating it.
func Marshal(c *engine.Calibration) ([]byte, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	f := file{Note: c.Note, DefaultLevel: c.DefaultLevel, DefaultModel: c.DefaultModel, Models: map[string]model{}}
	for _, l := range c.Levels {
		f.Levels = append(f.Levels, level{l.Name, l.FMR})
	}
	for id, m := range c.Models {
		fm := model{Package: m.Package, Report: m.Report, EER: m.EER, ImpostorPairs: m.ImpostorPairs, GenuinePairs: m.GenuinePairs}
		for _, p := range m.Curve {
			fm.Curve = append(fm.Curve, point{p.Threshold, p.FMR, p.Measured})
		}
		f.Models[id] = fm
	}
	b, err := json.MarshalIndent(f, "", "  ")
	return append(b, '\n'), err
}

// file is calibration.json.
type file struct {
	Note         string           `json:"note"`
	Levels       []level          `json:"levels"` // laxest first
	DefaultLevel string           `json:"default_level"`
	DefaultModel string           `json:"default_model"`
	Models       map[string]model `json:"models"`
}

type level struct {
	Name string  `json:"name"`
	FMR  float64 `json:"fmr"`
}

type model struct {
	Package       string  `json:"package"`
	Report        string  `json:"report"`
	EER           float64 `json:"eer"`
	ImpostorPairs int     `json:"impostor_pairs"`
	GenuinePairs  int     `json:"genuine_pairs"`
	Curve         []point `json:"curve"` // thresholds strictly rising, FMRs strictly falling
}

type point struct {
	Threshold float64 `json:"threshold"`
	FMR       float64 `json:"fmr"`
	Measured  bool    `json:"measured"`
}

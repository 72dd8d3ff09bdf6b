package main

import (
	"fmt"
	"image/color"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
)

// plotResults draws p50 latency (log scale) against recall@10, one labelled
// point per backend.
func plotResults(results []Result, o options, path string) error {
	p := plot.New()
	p.Title.Text = fmt.Sprintf("top-%d search, %d × %d-d (2 cores): latency vs recall", o.k, o.n, o.dim)
	p.X.Label.Text = "p50 latency (ms, log scale)"
	p.Y.Label.Text = "recall@10 against the exact answer"
	p.X.Scale = plot.LogScale{}
	p.X.Tick.Marker = plot.LogTicks{Prec: -1}
	p.Add(plotter.NewGrid())
	var xys plotter.XYLabels
	for _, r := range results {
		xys.XYs = append(xys.XYs, plotter.XY{X: max(r.P50ms, 0.01), Y: r.RecallAt10})
		xys.Labels = append(xys.Labels, fmt.Sprintf(" %s", r.Backend))
	}
	points, err := plotter.NewScatter(xys)
	if err != nil {
		return err
	}
	points.GlyphStyle.Radius = vg.Points(4)
	points.GlyphStyle.Color = color.RGBA{R: 200, G: 40, B: 40, A: 255}
	labels, err := plotter.NewLabels(xys)
	if err != nil {
		return err
	}
	p.Add(points, labels)
	p.Y.Max = 1.02
	p.X.Max *= 3 // room for the labels of the slowest points
	return p.Save(7*vg.Inch, 4.5*vg.Inch, path)
}

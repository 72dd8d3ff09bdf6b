package calibration

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestEmbedded: the calibration built into the binary parses, names both
// SDK generations, and every model's thresholds rise strictly from the
// laxest level to the strictest; writing it back gives the same file.
func TestEmbedded(t *testing.T) {
	cal, err := Embedded()
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"low", "medium", "high", "very_high", "highest"}
	if got := strings.Split(cal.LevelNames(), ", "); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("levels %v, want %v", got, want)
	}
	for _, id := range []string{"web-sdk-4.4.3-alpha", "web-sdk-3.3.3"} {
		m, ok := cal.Models[id]
		if !ok {
			t.Fatalf("no curve for %s", id)
		}
		prev := -2.0
		for _, l := range cal.Levels {
			th, clamped := m.Threshold(l.FMR)
			if clamped || th <= prev || th < -1 || th > 1 {
				t.Errorf("%s level %s: threshold %.4f (clamped %v) after %.4f: want inside the curve and rising", id, l.Name, th, clamped, prev)
			}
			prev = th
		}
	}
	if _, ok := cal.Level(cal.DefaultLevel); !ok || cal.DefaultLevel != "high" {
		t.Errorf("default level %q", cal.DefaultLevel)
	}
	again, err := Marshal(cal)
	if err != nil || string(again) != string(embedded) {
		t.Errorf("Marshal(Parse(file)) differs from the file (%v)", err)
	}
}

// TestParseRefusesBrokenFiles: a file that is not monotonic, names an
// unknown default or leaves [-1, 1] is refused with the reason.
func TestParseRefusesBrokenFiles(t *testing.T) {
	good := func() file {
		return file{
			Levels:       []level{{"low", 1e-2}, {"high", 1e-4}},
			DefaultLevel: "high", DefaultModel: "m",
			Models: map[string]model{"m": {Curve: []point{{0.2, 1e-2, true}, {0.3, 1e-4, false}, {0.4, 1e-6, false}}}},
		}
	}
	for _, tc := range []struct {
		name  string
		spoil func(f *file)
		want  string
	}{
		{"fine", func(f *file) {}, ""},
		{"curve falls back", func(f *file) { f.Models["m"].Curve[2].Threshold = 0.25 }, "not monotonic"},
		{"FMR rises", func(f *file) { f.Models["m"].Curve[1].FMR = 0.5 }, "not monotonic"},
		{"threshold beyond 1", func(f *file) { f.Models["m"].Curve[2].Threshold = 1.5 }, "[-1, 1]"},
		{"levels not stricter", func(f *file) { f.Levels[1].FMR = 0.1 }, "must be below"},
		{"unknown default level", func(f *file) { f.DefaultLevel = "paranoid" }, `default_level "paranoid"`},
		{"default model missing", func(f *file) { f.DefaultModel = "other" }, `default_model "other"`},
		{"one point", func(f *file) { f.Models["m"] = model{Curve: f.Models["m"].Curve[:1]} }, "two points"},
	} {
		f := good()
		tc.spoil(&f)
		b, _ := json.Marshal(f)
		_, err := Parse(b)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: error %v, want one saying %q", tc.name, err, tc.want)
		}
	}
	if _, err := Parse([]byte(`{"levels": "many"}`)); err == nil {
		t.Error("a file of the wrong shape parsed")
	}
}

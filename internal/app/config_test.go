package app

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/biomatch/biomatch/engine"
)

// TestCalibrationFileIsChecked: an operator's calibration file that is not
// monotonic, or lacks a model a version names, stops start-up naming the
// setting; a good one is used.
func TestCalibrationFileIsChecked(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		path := dir + "/" + name
		if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	levels := `"levels":[{"name":"low","fmr":0.01},{"name":"high","fmr":0.0001}],"default_level":"high","default_model":"m"`
	good := write("good.json", `{`+levels+`,"models":{"m":{"curve":[{"threshold":0.2,"fmr":0.01},{"threshold":0.4,"fmr":0.0001}]}}}`)
	falling := write("falling.json", `{`+levels+`,"models":{"m":{"curve":[{"threshold":0.4,"fmr":0.01},{"threshold":0.2,"fmr":0.0001}]}}}`)
	for _, tc := range []struct {
		env  map[string]string
		want string // in the error; "" for none
	}{
		{map[string]string{"CALIBRATION_FILE": good, "SECURITY_LEVEL": "low"}, ""},
		{map[string]string{"CALIBRATION_FILE": falling}, "CALIBRATION_FILE"},
		{map[string]string{"CALIBRATION_FILE": good, "SECURITY_LEVEL": "medium"}, "SECURITY_LEVEL"}, // not in this file
		{map[string]string{"CALIBRATION_FILE": good, "VERSION_MODELS": "FACE3_1=web-sdk-3.3.3"}, "VERSION_MODELS"},
	} {
		cfg, err := LoadConfig(func(k string) string { return tc.env[k] })
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%v: %v", tc.env, err)
		case tc.want == "" && cfg.Engine.Levels.Calibration.DefaultModel != "m":
			t.Errorf("%v: the file was not used", tc.env)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%v: error %v, want one naming %s", tc.env, err, tc.want)
		}
	}
}

func TestConfigErrorsNameTheVariable(t *testing.T) {
	for name, value := range map[string]string{
		"ENROLL_WAIT":        "soon",
		"MATCH_THRESHOLD":    "2",
		"MAX_BODY_BYTES":     "-5",
		"LOG_LEVEL":          "loud",
		"VERSION_THRESHOLDS": "FACE3_1=0.5",
		"HNSW_EF_SEARCH":     "many",
		"DEDUP_THRESHOLD":    "-1.5",
		// Levels and models must be in the calibration.
		"SECURITY_LEVEL":          "paranoid",
		"DEDUP_SECURITY_LEVEL":    "HIGH",
		"VERSION_SECURITY_LEVELS": "FACE3_2=extreme",
		"VERSION_MODELS":          "FACE3_2=web-sdk-9.9.9",
		"CALIBRATION_FILE":        "/nonexistent/calibration.json",
		"SEARCH_BATCH_WINDOW":     "2s",
	} {
		_, err := LoadConfig(func(k string) string {
			if k == name {
				return value
			}
			return ""
		})
		if err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("%s=%q: error %v, want one naming %s", name, value, err, name)
		}
	}
	// Every /node reply must come inside the SDKs' 5 s patience.
	for value, ok := range map[string]bool{"4s": true, "4.5s": true, "5s": false, "10s": false} {
		cfg, err := LoadConfig(func(k string) string {
			if k == "ENROLL_WAIT" {
				return value
			}
			return ""
		})
		if ok != (err == nil) || (err != nil && !strings.Contains(err.Error(), "5 s")) {
			t.Errorf("ENROLL_WAIT=%s: error %v, want accepted=%v (refusals give the SDKs' 5 s as the reason)", value, err, ok)
		}
		if ok && cfg.Engine.EnrollWait.String() != value {
			t.Errorf("ENROLL_WAIT=%s read as %v", value, cfg.Engine.EnrollWait)
		}
	}
	if cfg, _ := LoadConfig(func(string) string { return "" }); cfg.Engine.EnrollWait > MaxEnrollWait || cfg.Engine.EnrollWait.Seconds() > 4 {
		t.Errorf("default ENROLL_WAIT %v, want at most 4 s", cfg.Engine.EnrollWait)
	}
	for value, want := range map[string]time.Duration{"": 20 * time.Millisecond, "5ms": 5 * time.Millisecond, "off": -1, "0": -1} {
		cfg, err := LoadConfig(func(k string) string {
			if k == "SEARCH_BATCH_WINDOW" {
				return value
			}
			return ""
		})
		if err != nil || cfg.SearchWindow != want {
			t.Errorf("SEARCH_BATCH_WINDOW=%q read as %v, %v; want %v", value, cfg.SearchWindow, err, want)
		}
	}
	for _, value := range []string{"FACE3_1=1.5/0.5", "FACE3_1=0.5/-2", "FACE3_1=0.5/0.5,FACE3_2=7/0"} {
		_, err := LoadConfig(func(k string) string {
			if k == "VERSION_THRESHOLDS" {
				return value
			}
			return ""
		})
		if err == nil || !strings.Contains(err.Error(), "VERSION_THRESHOLDS") {
			t.Errorf("VERSION_THRESHOLDS=%q out of [-1, 1]: error %v, want one naming the variable", value, err)
		}
	}
	// 0 is a threshold an operator may choose, not "unset".
	zero, err := LoadConfig(func(k string) string {
		if k == "MATCH_THRESHOLD" || k == "DEDUP_THRESHOLD" {
			return "0"
		}
		return ""
	})
	if err != nil {
		t.Fatal(err)
	}
	if th := zero.Engine.Default; th == nil || *th != (engine.Thresholds{}) {
		t.Errorf("MATCH_THRESHOLD=0 DEDUP_THRESHOLD=0: thresholds %+v, want 0/0", th)
	}
	cfg, err := LoadConfig(func(k string) string {
		if k == "VERSION_THRESHOLDS" {
			return "FACE3_2=0.6/0.7"
		}
		return ""
	})
	if err != nil {
		t.Fatal(err)
	}
	if th := cfg.Engine.PerVersion["FACE3_2"]; th.Match != 0.6 || th.Dedup != 0.7 {
		t.Errorf("FACE3_2 thresholds = %+v", th)
	}
	if cfg.Engine.Default != nil {
		t.Errorf("no MATCH_THRESHOLD: bare default thresholds %+v, want none (the levels decide)", *cfg.Engine.Default)
	}
	if cfg.BareThresholdWarning() == "" {
		t.Error("VERSION_THRESHOLDS set, but no warning that its decisions state no error rate")
	}
}

// TestREADMEListsEveryVariable: the configuration table cannot drift from
// the code.
func TestREADMEListsEveryVariable(t *testing.T) {
	raw, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	for name, def := range EnvDefaults {
		row := "| `" + name + "` |"
		i := strings.Index(string(raw), row)
		if i < 0 {
			t.Errorf("README's configuration table lacks %s", name)
			continue
		}
		line := string(raw[i:])
		line = line[:strings.IndexByte(line, '\n')]
		if def != "" && !strings.Contains(line, "`"+def+"`") {
			t.Errorf("README gives %s another default than %q: %s", name, def, line)
		}
	}
}

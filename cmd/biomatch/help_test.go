package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// TestEveryCommandExplainsItself: `biomatch <command> -h` prints the
// command's synopsis, what it does, its flags and an example, and exits 0,
// even where the environment would not configure the service.
func TestEveryCommandExplainsItself(t *testing.T) {
	broken := func(k string) string {
		if k == "ENROLL_WAIT" {
			return "soon" // a bad configuration must not hide the help
		}
		return ""
	}
	for command, h := range helps {
		for _, flag := range []string{"-h", "--help"} {
			var out, errOut bytes.Buffer
			args := append([]string{"biomatch"}, strings.Fields(command)...)
			if err := run(context.Background(), append(args, flag), broken, strings.NewReader(""), &out, &errOut); err != nil {
				t.Errorf("biomatch %s %s: %v", command, flag, err)
				continue
			}
			for _, want := range []string{"usage: biomatch " + h.usage, h.about, "example:\n  " + h.example} {
				if !strings.Contains(out.String(), want) {
					t.Errorf("biomatch %s %s lacks %q:\n%s", command, flag, want, out.String())
				}
			}
		}
	}
	var out bytes.Buffer
	if err := run(context.Background(), []string{"biomatch", "import", "-h"}, broken, nil, &out, &out); err != nil ||
		!strings.Contains(out.String(), `{"external_id": "...", "embedding": [...]}`) || !strings.Contains(out.String(), "-batch") {
		t.Errorf("import -h does not say what FILE holds, or lists no flags: %v\n%s", err, out.String())
	}
	for _, group := range []string{"apikey", "client"} {
		var out bytes.Buffer
		if err := run(context.Background(), []string{"biomatch", group, "-h"}, broken, nil, &out, &out); err != nil {
			t.Errorf("biomatch %s -h: %v", group, err)
		}
		for _, sub := range subcommands[group] {
			if !strings.Contains(out.String(), "biomatch "+helps[group+" "+sub].usage) {
				t.Errorf("biomatch %s -h does not list %s:\n%s", group, sub, out.String())
			}
		}
	}
}

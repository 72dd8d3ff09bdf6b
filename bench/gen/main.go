// Command gen writes a synthetic gallery for `biomatch import`: JSONL
// ({"external_id", "embedding"} per line), identities × noisy samples from
// internal/synth, so imports can be measured without real biometric data.
//
//	go run ./bench/gen -n 100000 -dim 512 > gallery.jsonl
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"os"

	"github.com/biomatch/biomatch/internal/synth"
)

func main() {
	n := flag.Int("n", 100000, "templates")
	dim := flag.Int("dim", 512, "dimensions")
	samples := flag.Int("samples", 1, "templates per identity")
	noise := flag.Float64("noise", 0.3, "per-sample noise")
	flag.Parse()
	w := bufio.NewWriterSize(os.Stdout, 1<<20)
	enc := json.NewEncoder(w)
	for i := range *n {
		id := i / *samples
		enc.Encode(map[string]any{"external_id": fmt.Sprintf("id-%d", id),
			"embedding": synth.Vector(*dim, uint64(id), *noise, uint64(i%*samples))})
	}
	if err := w.Flush(); err != nil {
		fmt.Fprintln(os.Stderr, "gen:", err)
		os.Exit(1)
	}
}

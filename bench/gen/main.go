// Command gen writes a synthetic gallery for `biomatch import`,
// identities × noisy samples from internal/synth, so imports can be
// measured without real biometric data: JSONL ({"external_id",
// "embedding"} per line) or a float32 .npy matrix (rows only).
//
//	go run ./bench/gen -n 100000 -dim 512 > gallery.jsonl
//	go run ./bench/gen -n 1000000 -dim 512 -format npy > gallery.npy
//	go run ./bench/gen -n 1000 -sample 1 > returning.jsonl   # new samples of 1000 of them
package main

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"os"
	"strings"

	"github.com/biomatch/biomatch/internal/synth"
)

func main() {
	n := flag.Int("n", 100000, "templates")
	dim := flag.Int("dim", 512, "dimensions")
	samples := flag.Int("samples", 1, "templates per identity")
	noise := flag.Float64("noise", 0.3, "per-sample noise")
	seed := flag.Uint64("seed", 0, "first identity")
	sample := flag.Uint64("sample", 0, "first sample of each identity (1: new samples of the identities sample 0 wrote)")
	format := flag.String("format", "jsonl", "jsonl or npy")
	flag.Parse()
	w := bufio.NewWriterSize(os.Stdout, 1<<20)
	vec := func(i int) []float32 {
		id := uint64(i / *samples)
		return synth.Vector(*dim, *seed+id, *noise, *sample+uint64(i%*samples))
	}
	switch *format {
	case "jsonl":
		enc := json.NewEncoder(w)
		for i := range *n {
			enc.Encode(map[string]any{"external_id": fmt.Sprintf("id-%d", *seed+uint64(i / *samples)), "embedding": vec(i)})
		}
	case "npy":
		hdr := fmt.Sprintf("{'descr': '<f4', 'fortran_order': False, 'shape': (%d, %d), }", *n, *dim)
		hdr += strings.Repeat(" ", 64-(10+len(hdr)+1)%64) + "\n"
		w.WriteString("\x93NUMPY\x01\x00")
		binary.Write(w, binary.LittleEndian, uint16(len(hdr)))
		w.WriteString(hdr)
		buf := make([]byte, 4**dim)
		for i := range *n {
			for j, x := range vec(i) {
				binary.LittleEndian.PutUint32(buf[4*j:], math.Float32bits(x))
			}
			w.Write(buf)
		}
	default:
		fmt.Fprintln(os.Stderr, "gen: -format is jsonl or npy")
		os.Exit(2)
	}
	if err := w.Flush(); err != nil {
		fmt.Fprintln(os.Stderr, "gen:", err)
		os.Exit(1)
	}
}

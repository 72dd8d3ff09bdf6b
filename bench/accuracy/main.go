// Command accuracy measures how well biomatch's decisions separate the same
// face from different faces, on real face embeddings computed by PrivateID's
// own web SDKs in headless Chromium, and writes the calibration the server's
// security levels come from.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
)

func main() {
	var (
		dist  = flag.String("dist", "bench/accuracy/web/dist", "the page, SDKs and portraits bench/accuracy/setup.sh builds")
		sdk   = flag.String("sdk", "v4", "")
		limit = flag.Int("n", 3, "")
	)
	flag.Parse()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	dir, _ := os.MkdirTemp("", "accuracy-chromium")
	defer os.RemoveAll(dir)
	e, err := startEmbedder(context.Background(), *dist, *sdk, dir, true, log)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	defer e.close()
	for i := range *limit {
		for _, v := range []string{"base", "mirror", "rotate+8", "rotate-8", "dark", "bright", "close", "far", "degraded"} {
			vec, last, err := e.embed(image{Identity: fmt.Sprintf("men/%d.jpg", i), Variant: v})
			fmt.Println(i, v, len(vec), last, err)
		}
	}
}

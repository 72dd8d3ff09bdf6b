package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	"github.com/biomatch/biomatch/engine"
	"github.com/biomatch/biomatch/internal/app"
	"github.com/biomatch/biomatch/postgres"
)

// itemReader yields import items; io.EOF ends.
type itemReader interface {
	next() (engine.ImportItem, error)
}

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
	r, total, err := openItems(path, *ids)
	if err != nil {
		return err
	}
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
		if _, err := r.next(); err != nil {
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
			it, err := r.next()
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

// openItems opens a JSONL or .npy file and returns its reader and item count.
func openItems(path, idsPath string) (itemReader, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, err
	}
	if strings.HasSuffix(path, ".npy") {
		r, rows, err := openNPY(bufio.NewReaderSize(f, 1<<20), f.Name())
		if err != nil {
			return nil, 0, err
		}
		if idsPath != "" {
			idf, err := os.Open(idsPath)
			if err != nil {
				return nil, 0, err
			}
			r.ids = bufio.NewScanner(idf)
		}
		return r, rows, nil
	}
	var total int64
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	for sc.Scan() {
		if len(bytes.TrimSpace(sc.Bytes())) > 0 {
			total++
		}
	}
	if err := sc.Err(); err != nil {
		return nil, 0, err
	}
	f.Seek(0, io.SeekStart)
	sc = bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	return &jsonlReader{sc: sc}, total, nil
}

type jsonlReader struct {
	sc   *bufio.Scanner
	line int
}

func (r *jsonlReader) next() (engine.ImportItem, error) {
	for r.sc.Scan() {
		r.line++
		raw := bytes.TrimSpace(r.sc.Bytes())
		if len(raw) == 0 {
			continue
		}
		var rec struct {
			ExternalID string    `json:"external_id"`
			Embedding  []float64 `json:"embedding"`
		}
		if err := json.Unmarshal(raw, &rec); err != nil {
			return engine.ImportItem{}, fmt.Errorf("line %d: not a JSON object with external_id and embedding", r.line)
		}
		return engine.ImportItem{ExternalID: rec.ExternalID, Vector: rec.Embedding}, nil
	}
	if err := r.sc.Err(); err != nil {
		return engine.ImportItem{}, err
	}
	return engine.ImportItem{}, io.EOF
}

var npyHeader = regexp.MustCompile(`'descr':\s*'([<|]f[48])'.*'fortran_order':\s*(False|True).*'shape':\s*\((\d+),\s*(\d+),?\)`)

type npyReader struct {
	r        io.Reader
	ids      *bufio.Scanner
	rows     int64
	dim      int
	f64      bool
	row      int64
	rowBytes []byte
}

// openNPY reads the header of a 2-D little-endian float32/float64 C-order
// .npy matrix; the rows follow. Hand-written on purpose: the maintained
// reader (codeberg.org/sbinet/npyio v0.14) panics on a header without its
// trailing newline and accepts negative shapes, and an import must answer
// a malformed file with an error. FuzzOpenNPY holds this one to that.
func openNPY(br io.Reader, name string) (*npyReader, int64, error) {
	magic := make([]byte, 8)
	if _, err := io.ReadFull(br, magic); err != nil || string(magic[:6]) != "\x93NUMPY" {
		return nil, 0, fmt.Errorf("%s: not a .npy file", name)
	}
	var hlen int
	switch magic[6] {
	case 1:
		var b [2]byte
		if _, err := io.ReadFull(br, b[:]); err != nil {
			return nil, 0, fmt.Errorf("%s: truncated header", name)
		}
		hlen = int(binary.LittleEndian.Uint16(b[:]))
	case 2, 3:
		var b [4]byte
		if _, err := io.ReadFull(br, b[:]); err != nil {
			return nil, 0, fmt.Errorf("%s: truncated header", name)
		}
		hlen = int(binary.LittleEndian.Uint32(b[:]))
	default:
		return nil, 0, fmt.Errorf("%s: .npy format version %d is not supported", name, magic[6])
	}
	if hlen > 1<<16 {
		return nil, 0, fmt.Errorf("%s: a header of %d bytes is not a matrix's", name, hlen)
	}
	hdr := make([]byte, hlen)
	if _, err := io.ReadFull(br, hdr); err != nil {
		return nil, 0, fmt.Errorf("%s: truncated header", name)
	}
	m := npyHeader.FindSubmatch(hdr)
	if m == nil || string(m[2]) == "True" {
		return nil, 0, fmt.Errorf("%s: want a C-order 2-D float32 or float64 matrix, header %q", name, hdr)
	}
	rows, err1 := strconv.ParseInt(string(m[3]), 10, 64)
	dim, err2 := strconv.Atoi(string(m[4]))
	if err1 != nil || err2 != nil || dim < 1 || dim > 1<<16 {
		return nil, 0, fmt.Errorf("%s: shape (%s, %s) is not one of templates", name, m[3], m[4])
	}
	r := &npyReader{r: br, rows: rows, dim: dim, f64: strings.HasSuffix(string(m[1]), "8")}
	width := 4
	if r.f64 {
		width = 8
	}
	r.rowBytes = make([]byte, dim*width)
	return r, rows, nil
}

func (r *npyReader) next() (engine.ImportItem, error) {
	if r.row == r.rows {
		return engine.ImportItem{}, io.EOF
	}
	if _, err := io.ReadFull(r.r, r.rowBytes); err != nil {
		if errors.Is(err, io.EOF) { // no byte of the row: the file is shorter than its header says
			err = io.ErrUnexpectedEOF
		}
		return engine.ImportItem{}, fmt.Errorf("row %d of %d: the file ends early (truncated?): %w", r.row+1, r.rows, err)
	}
	r.row++
	v := make([]float64, r.dim)
	for i := range v {
		if r.f64 {
			v[i] = math.Float64frombits(binary.LittleEndian.Uint64(r.rowBytes[8*i:]))
		} else {
			v[i] = float64(math.Float32frombits(binary.LittleEndian.Uint32(r.rowBytes[4*i:])))
		}
	}
	it := engine.ImportItem{Vector: v}
	if r.ids != nil && r.ids.Scan() {
		it.ExternalID = strings.TrimSpace(r.ids.Text())
	}
	return it, nil
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
	a, err := app.New(ctx, cfg, slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn})), false)
	if err != nil {
		return nil, err
	}
	if pending, err := postgres.MigrationsPending(ctx, a.Pool); err != nil || pending {
		a.Close()
		if err == nil {
			err = errors.New("the database schema is behind this binary: run biomatch migrate first")
		}
		return nil, err
	}
	return a, nil
}

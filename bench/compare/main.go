// Command compare builds one synthetic, identity-clustered dataset, loads it
// into the in-memory exact index and into pgvector (exact scan, and HNSW at
// several ef_search), runs the same probes against each, and prints one
// JSON line per backend plus a markdown table, and writes both and a
// latency/recall plot to bench/results/.
//
//	make services && go run ./bench/compare -n 100000 -dim 512 -json
//
// Recall is measured against the float32 exact answer; mate recall is the
// share of the probe's true same-identity templates returned in the top k.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/pgvector/pgvector-go"

	"github.com/biomatch/biomatch/engine"
	"github.com/biomatch/biomatch/internal/synth"
	"github.com/biomatch/biomatch/postgres"
	"github.com/biomatch/biomatch/vectorstore"
	"github.com/biomatch/biomatch/vectorstore/kernel"
)

var gallery = engine.Gallery{Tenant: "bench", Version: "FACE3_1"}

type options struct {
	n, dim, queries, k, samples int
	noise                       float64
	seed                        uint64
	json                        bool
	out                         string
	efs                         []int
}

// Result is one backend's line.
type Result struct {
	Backend     string  `json:"backend"`
	N           int     `json:"n"`
	Dim         int     `json:"dim"`
	BuildS      float64 `json:"build_s"`
	P50ms       float64 `json:"p50_ms"`
	P99ms       float64 `json:"p99_ms"`
	QPS1        float64 `json:"qps_1"`
	QPS2        float64 `json:"qps_2"`
	RecallAt1   float64 `json:"recall_at_1"`
	RecallAt10  float64 `json:"recall_at_10"`
	MateRecall  float64 `json:"mate_recall"`
	MemoryBytes int64   `json:"memory_bytes,omitempty"`
	Note        string  `json:"note,omitempty"`
}

func main() {
	var o options
	flag.IntVar(&o.n, "n", 100000, "templates in the gallery")
	flag.IntVar(&o.dim, "dim", 512, "dimensions")
	flag.IntVar(&o.queries, "queries", 200, "probes per backend")
	flag.IntVar(&o.k, "k", 10, "top k")
	flag.IntVar(&o.samples, "samples", 5, "templates per identity")
	flag.Float64Var(&o.noise, "noise", 0.6, "per-sample noise (0.6: same-identity cosine ≈ 0.73)")
	flag.Uint64Var(&o.seed, "seed", 1, "dataset seed")
	flag.BoolVar(&o.json, "json", false, "print one JSON line per backend")
	flag.StringVar(&o.out, "out", "bench/results", "folder for the .jsonl, .md and .png")
	efs := flag.String("ef", "40,100,200", "hnsw.ef_search values")
	flag.Parse()
	for _, s := range strings.Split(*efs, ",") {
		var ef int
		fmt.Sscan(s, &ef)
		o.efs = append(o.efs, ef)
	}
	if err := run(context.Background(), o, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "compare:", err)
		os.Exit(1)
	}
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s "+format+"\n", append([]any{time.Now().Format("15:04:05")}, args...)...)
}

func run(ctx context.Context, o options, stdout io.Writer) error {
	rows := dataset(o)
	probes, identities := probeSet(o)
	logf("dataset: %d templates × %d dims, %d identities, %d probes", o.n, o.dim, o.n/o.samples, len(probes))

	pool, cleanup, err := benchDatabase(ctx, o)
	if err != nil {
		return err
	}
	defer cleanup()
	loadS, err := insert(ctx, pool, o, rows)
	if err != nil {
		return err
	}
	logf("inserted into PostgreSQL in %.1fs", loadS)
	store, err := vectorstore.NewPGVector(ctx, pool, vectorstore.PGVectorConfig{})
	if err != nil {
		return err
	}

	// The truth: the float32 exact scan (proven equal to a plain scan by
	// vectorstore's tests), computed once.
	truthIdx := vectorstore.NewExact(vectorstore.ExactConfig{Int8: "off"})
	start := time.Now()
	truthIdx.Add(rows...)
	addS := time.Since(start).Seconds()
	truth := make([][]engine.Match, len(probes))
	for i, p := range probes {
		truth[i], _ = truthIdx.Nearest(ctx, gallery, p, o.k)
	}
	mates := func(i int) int { return identities[i] }

	var results []Result
	measureInto := func(r Result, search func(engine.Embedding) ([]engine.Match, error)) error {
		r.N, r.Dim = o.n, o.dim
		if err := measure(&r, probes, truth, mates, o, search); err != nil {
			return fmt.Errorf("%s: %w", r.Backend, err)
		}
		logf("%s: p50 %.2f ms, p99 %.2f ms, recall@10 %.4f", r.Backend, r.P50ms, r.P99ms, r.RecallAt10)
		results = append(results, r)
		return nil
	}

	// Our index, loaded the way the service loads it: one binary COPY.
	mem := vectorstore.NewSynced(store, vectorstore.ExactConfig{}, 0, slog.New(slog.NewTextHandler(io.Discard, nil)))
	runtime.GC()
	_, took, err := mem.Load(ctx)
	if err != nil {
		return err
	}
	note := "int8 pre-scan (" + kernel.NameI8 + ") + float32 re-rank, all cores; build = binary COPY load"
	if !mem.Int8() {
		note = "float32 (" + kernel.NameF32 + "), all cores; build = binary COPY load"
	}
	if err := measureInto(Result{Backend: "exact", BuildS: took.Seconds(), MemoryBytes: mem.Bytes(), Note: note},
		func(p engine.Embedding) ([]engine.Match, error) { return mem.Nearest(ctx, gallery, p, o.k) }); err != nil {
		return err
	}
	if mem.Int8() {
		if err := measureInto(Result{Backend: "exact-f32", BuildS: addS, MemoryBytes: truthIdx.Bytes(),
			Note: "float32 only (" + kernel.NameF32 + "), all cores; build = in-memory insert"},
			func(p engine.Embedding) ([]engine.Match, error) { return truthIdx.Nearest(ctx, gallery, p, o.k) }); err != nil {
			return err
		}
	}
	mem.Reset()
	runtime.GC()

	if err := measureInto(Result{Backend: "pgvector-exact", BuildS: loadS, Note: "sequential scan; build = COPY of the rows"},
		func(p engine.Embedding) ([]engine.Match, error) {
			return vectorstore.ExactScan(ctx, pool, gallery, p, o.k)
		}); err != nil {
		return err
	}

	logf("building the HNSW index (m=16, ef_construction=64)…")
	start = time.Now()
	if _, err := pool.Exec(ctx, `SET maintenance_work_mem = '8GB'`); err != nil {
		return err
	}
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return err
	}
	conn.Exec(ctx, `SET maintenance_work_mem = '8GB'`)
	conn.Exec(ctx, `SET max_parallel_maintenance_workers = 1`)
	_, err = conn.Exec(ctx, fmt.Sprintf(`CREATE INDEX templates_hnsw_%[1]d ON templates
		USING hnsw ((embedding::vector(%[1]d)) vector_cosine_ops) WHERE dim = %[1]d`, o.dim))
	conn.Release()
	if err != nil {
		return err
	}
	hnswS := time.Since(start).Seconds()
	logf("HNSW built in %.1fs", hnswS)
	for _, ef := range o.efs {
		if err := measureInto(Result{Backend: fmt.Sprintf("pgvector-hnsw-ef%d", ef), BuildS: hnswS,
			Note: "iterative_scan relaxed_order; build = CREATE INDEX"},
			func(p engine.Embedding) ([]engine.Match, error) {
				return vectorstore.HNSWScan(ctx, pool, gallery, p, o.k, ef, false)
			}); err != nil {
			return err
		}
	}
	return report(results, o, stdout)
}

// dataset: identity i has samples noisy templates; template j belongs to
// identity j / samples. Ids are 1-based, as the database assigns them.
func dataset(o options) []vectorstore.Row {
	rows := make([]vectorstore.Row, o.n)
	var wg sync.WaitGroup
	workers := runtime.GOMAXPROCS(0)
	for w := range workers {
		wg.Go(func() {
			for j := w; j < o.n; j += workers {
				id := uint64(j/o.samples) + o.seed<<32
				rows[j] = vectorstore.Row{TemplateID: int64(j + 1), PersonID: int64(j/o.samples + 1), Gallery: gallery,
					Embedding: synth.Vector(o.dim, id, o.noise, uint64(j%o.samples))}
			}
		})
	}
	wg.Wait()
	return rows
}

// probeSet draws probes: a new sample of a random identity each. It also
// returns, per probe, how many of its identity's templates are stored.
func probeSet(o options) ([]engine.Embedding, []int) {
	r := rand.New(rand.NewPCG(o.seed, 7))
	identities := o.n / o.samples
	probes := make([]engine.Embedding, o.queries)
	mates := make([]int, o.queries)
	for i := range probes {
		id := r.IntN(identities)
		probes[i] = synth.Vector(o.dim, uint64(id)+o.seed<<32, o.noise, uint64(1000+i))
		mates[i] = o.samples
	}
	return probes, mates
}

func databaseURL() (string, error) {
	if v := os.Getenv("DATABASE_URL"); v != "" {
		return v, nil
	}
	f, err := os.Open(".data/env")
	if err != nil {
		return "", fmt.Errorf("DATABASE_URL is not set and .data/env is missing: run make services")
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "export DATABASE_URL="); ok {
			return v, nil
		}
	}
	return "", fmt.Errorf(".data/env has no DATABASE_URL")
}

// benchDatabase creates a fresh database for the run and drops it after.
func benchDatabase(ctx context.Context, o options) (*pgxpool.Pool, func(), error) {
	base, err := databaseURL()
	if err != nil {
		return nil, nil, err
	}
	name := fmt.Sprintf("biomatch_bench_%d_%d", o.n, o.dim)
	admin, err := pgx.Connect(ctx, base)
	if err != nil {
		return nil, nil, err
	}
	defer admin.Close(ctx)
	admin.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		return nil, nil, err
	}
	u, _ := url.Parse(base)
	u.Path = "/" + name
	pool, err := postgres.OpenPool(ctx, u.String())
	if err != nil {
		return nil, nil, err
	}
	if _, err := postgres.Migrate(ctx, pool); err != nil {
		return nil, nil, err
	}
	pool.Reset()
	return pool, func() {
		pool.Close()
		if c, err := pgx.Connect(context.Background(), base); err == nil {
			c.Exec(context.Background(), "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
			c.Close(context.Background())
		}
	}, nil
}

// insert loads persons and templates with COPY and returns the seconds it took.
func insert(ctx context.Context, pool *pgxpool.Pool, o options, rows []vectorstore.Row) (float64, error) {
	start := time.Now()
	identities := o.n / o.samples
	_, err := pool.CopyFrom(ctx, pgx.Identifier{"persons"}, []string{"id", "tenant", "version", "puid", "guid", "enroll_level"},
		pgx.CopyFromSlice(identities, func(i int) ([]any, error) {
			return []any{int64(i + 1), gallery.Tenant, gallery.Version, fmt.Sprintf("p%d", i+1), fmt.Sprintf("g%d", i+1), o.samples}, nil
		}))
	if err != nil {
		return 0, fmt.Errorf("copy persons: %w", err)
	}
	_, err = pool.CopyFrom(ctx, pgx.Identifier{"templates"}, []string{"id", "person_id", "tenant", "version", "dim", "embedding"},
		pgx.CopyFromSlice(len(rows), func(i int) ([]any, error) {
			r := rows[i]
			return []any{r.TemplateID, r.PersonID, r.Gallery.Tenant, r.Gallery.Version, len(r.Embedding), pgvector.NewVector(r.Embedding)}, nil
		}))
	if err != nil {
		return 0, fmt.Errorf("copy templates: %w", err)
	}
	for _, sql := range []string{
		`SELECT setval('persons_id_seq', (SELECT max(id) FROM persons))`,
		`SELECT setval('templates_id_seq', (SELECT max(id) FROM templates))`,
		fmt.Sprintf(`INSERT INTO galleries VALUES ('%s', '%s', %d, %d)`, gallery.Tenant, gallery.Version, identities, len(rows)),
		`VACUUM ANALYZE templates`,
	} {
		if _, err := pool.Exec(ctx, sql); err != nil {
			return 0, err
		}
	}
	return time.Since(start).Seconds(), nil
}

// measure runs every probe once sequentially (latency, qps_1, recall), then
// all probes again on two goroutines (qps_2).
func measure(r *Result, probes []engine.Embedding, truth [][]engine.Match, mates func(int) int, o options,
	search func(engine.Embedding) ([]engine.Match, error)) error {
	for _, p := range probes[:min(5, len(probes))] { // warm up
		if _, err := search(p); err != nil {
			return err
		}
	}
	lat := make([]float64, len(probes))
	var at1, at10, mate float64
	start := time.Now()
	for i, p := range probes {
		t0 := time.Now()
		got, err := search(p)
		lat[i] = float64(time.Since(t0).Microseconds()) / 1000
		if err != nil {
			return err
		}
		at1 += recall(got, truth[i], 1)
		at10 += recall(got, truth[i], o.k)
		mate += mateRecall(got, truth[i], mates(i), o)
	}
	r.QPS1 = float64(len(probes)) / time.Since(start).Seconds()
	n := float64(len(probes))
	r.RecallAt1, r.RecallAt10, r.MateRecall = at1/n, at10/n, mate/n
	slices.Sort(lat)
	r.P50ms, r.P99ms = lat[len(lat)/2], lat[min(len(lat)-1, len(lat)*99/100)]

	start = time.Now()
	var wg sync.WaitGroup
	var firstErr error
	var mu sync.Mutex
	for w := range 2 {
		wg.Go(func() {
			for i := w; i < len(probes); i += 2 {
				if _, err := search(probes[i]); err != nil {
					mu.Lock()
					firstErr = err
					mu.Unlock()
					return
				}
			}
		})
	}
	wg.Wait()
	r.QPS2 = float64(len(probes)) / time.Since(start).Seconds()
	return firstErr
}

// recall is |got ∩ want| / |want| over the first k of each, by template id.
func recall(got, want []engine.Match, k int) float64 {
	want = want[:min(k, len(want))]
	if len(want) == 0 {
		return 1
	}
	hit := 0
	for _, w := range want {
		for _, g := range got[:min(k, len(got))] {
			if g.TemplateID == w.TemplateID {
				hit++
				break
			}
		}
	}
	return float64(hit) / float64(len(want))
}

// mateRecall is the share of the probe identity's stored templates found in
// got. The identity is the person of the exact answer's best match, which
// for these data is the probe's own identity.
func mateRecall(got, truth []engine.Match, mates int, o options) float64 {
	if len(truth) == 0 {
		return 0
	}
	person := truth[0].PersonID
	found := 0
	for _, g := range got {
		if g.PersonID == person {
			found++
		}
	}
	return float64(found) / float64(min(mates, o.k))
}

func report(results []Result, o options, stdout io.Writer) error {
	if err := os.MkdirAll(o.out, 0o755); err != nil {
		return err
	}
	base := filepath.Join(o.out, fmt.Sprintf("compare_n%d_d%d", o.n, o.dim))
	var jsonl, md strings.Builder
	for _, r := range results {
		line, _ := json.Marshal(r)
		jsonl.Write(append(line, '\n'))
	}
	fmt.Fprintf(&md, "| backend | n | dim | build s | p50 ms | p99 ms | qps 1 | qps 2 | recall@1 | recall@10 | mate recall | memory |\n")
	fmt.Fprintf(&md, "|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, r := range results {
		mem := ""
		if r.MemoryBytes > 0 {
			mem = fmt.Sprintf("%.2f GB", float64(r.MemoryBytes)/1e9)
		}
		fmt.Fprintf(&md, "| %s | %d | %d | %.1f | %.2f | %.2f | %.0f | %.0f | %.4f | %.4f | %.4f | %s |\n",
			r.Backend, r.N, r.Dim, r.BuildS, r.P50ms, r.P99ms, r.QPS1, r.QPS2, r.RecallAt1, r.RecallAt10, r.MateRecall, mem)
	}
	if o.json {
		io.WriteString(stdout, jsonl.String())
	}
	io.WriteString(stdout, "\n"+md.String())
	if err := os.WriteFile(base+".jsonl", []byte(jsonl.String()), 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(base+".md", []byte(md.String()), 0o644); err != nil {
		return err
	}
	return plotResults(results, o, base+".png")
}

package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/biomatch/biomatch/internal/synth"
	"github.com/biomatch/biomatch/internal/testenv"
)

func TestImportExport(t *testing.T) {
	env := map[string]string{"DATABASE_URL": testenv.NewDatabase(t), "REDIS_URL": testenv.Env(t, "REDIS_URL")}
	getenv := func(k string) string { return env[k] }
	runIt := func(args ...string) (string, string) {
		t.Helper()
		var out, errOut bytes.Buffer
		if err := run(context.Background(), append([]string{"biomatch"}, args...), getenv, nil, &out, &errOut); err != nil {
			t.Fatalf("biomatch %s: %v\n%s", strings.Join(args, " "), err, errOut.String())
		}
		return out.String(), errOut.String()
	}
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty.jsonl")
	os.WriteFile(empty, nil, 0o600)
	// Before the schema exists, a tool says what to do at once (it used to wait for it forever).
	errOut := new(bytes.Buffer)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	err := run(ctx, []string{"biomatch", "import", "--tenant", "acme", empty}, getenv, nil, io.Discard, errOut)
	if err == nil || !strings.Contains(err.Error(), "run biomatch migrate first") {
		t.Fatalf("import into a database never migrated: %v, want an error saying to run biomatch migrate\n%s", err, errOut)
	}
	runIt("migrate")

	// 10 identities × 2 samples, with external ids on the first sample, and 3 invalid items.
	var lines []string
	for i := range 10 {
		for s := range 2 {
			rec := map[string]any{"embedding": synth.Vector(256, uint64(500+i), 0.2, uint64(s))}
			if s == 0 {
				rec["external_id"] = fmt.Sprintf("user-%d", i)
			}
			b, _ := json.Marshal(rec)
			lines = append(lines, string(b))
		}
	}
	lines = append(lines, `{"external_id":"short","embedding":[1,2,3]}`, `{"embedding":[]}`,
		`{"embedding":`+strings.Repeat("[0", 1)+strings.Repeat(",0", 255)+`]}`)
	jsonl := filepath.Join(dir, "gallery.jsonl")
	os.WriteFile(jsonl, []byte(strings.Join(lines, "\n")+"\n"), 0o600)

	_, log := runIt("import", "--tenant", "acme", "--batch", "7", "--hnsw", jsonl)
	if !strings.Contains(log, "23 items") || !strings.Contains(log, "10 new persons, 10 already enrolled, 3 rejected") {
		t.Fatalf("import summary:\n%s", log)
	}
	if !strings.Contains(log, "import: 23/23 (100%)") {
		t.Errorf("no plain progress line off a terminal:\n%s", log)
	}
	// The search index of the imported dimension is built once, at the end.
	if !strings.Contains(log, "HNSW index of dimension [256] built") {
		t.Errorf("import did not build the HNSW index:\n%s", log)
	}
	assertValidIndex(t, env["DATABASE_URL"], "templates_hnsw_256")
	if _, log = runIt("import", "--tenant", "acme", jsonl); !strings.Contains(log, "resuming after 23 of 23") || !strings.Contains(log, "0 items") {
		t.Errorf("a second run did not resume from the checkpoint:\n%s", log)
	}
	if _, log = runIt("import", "--tenant", "acme", "--restart", jsonl); !strings.Contains(log, "0 new persons, 20 already enrolled, 3 rejected") {
		t.Errorf("--restart is not idempotent through dedup:\n%s", log)
	}
	if !strings.Contains(log, "HNSW index not built: identify runs on the in-memory exact index") {
		t.Errorf("without -hnsw, under SEARCH_BACKEND=auto, import should not build HNSW:\n%s", log)
	}

	// A .npy float32 matrix of 5 new identities, external ids from a file.
	npy := filepath.Join(dir, "more.npy")
	writeNPY(t, npy, 5, 256, func(r int) []float32 { return synth.Vector(256, uint64(600+r), 0, 0) })
	ids := filepath.Join(dir, "more.ids")
	os.WriteFile(ids, []byte("npy-0\nnpy-1\nnpy-2\nnpy-3\nnpy-4\n"), 0o600)
	if _, log = runIt("import", "--tenant", "acme", "--ids", ids, npy); !strings.Contains(log, "5 new persons, 0 already enrolled, 0 rejected") {
		t.Errorf(".npy import:\n%s", log)
	}

	// Servers on pgvector: the import still deduplicates in memory, and
	// keeps the HNSW index those servers search.
	env["SEARCH_BACKEND"] = "pgvector"
	again := filepath.Join(dir, "again.npy")
	writeNPY(t, again, 3, 256, func(r int) []float32 { return synth.Vector(256, uint64(700+r%2), 0, 0) })
	_, log = runIt("import", "--tenant", "acme", again)
	if !strings.Contains(log, "2 new persons, 1 already enrolled, 0 rejected") || strings.Contains(log, "HNSW index not built") {
		t.Errorf("import with SEARCH_BACKEND=pgvector:\n%s", log)
	}
	delete(env, "SEARCH_BACKEND")

	out, _ := runIt("export", "--tenant", "acme")
	recs := decodeLines(t, out)
	if len(recs) != 17 {
		t.Fatalf("export has %d persons, want 17", len(recs))
	}
	ext := map[string]bool{}
	for _, r := range recs {
		ext[fmt.Sprint(r["external_id"])] = true
		if _, ok := r["embeddings"]; ok {
			t.Fatal("export without --with-embeddings wrote embeddings")
		}
	}
	for _, want := range []string{"user-0", "user-9", "npy-4"} {
		if !ext[want] {
			t.Errorf("export lacks external id %s", want)
		}
	}
	out, _ = runIt("export", "--tenant", "acme", "--with-embeddings")
	for _, r := range decodeLines(t, out) {
		embs, _ := r["embeddings"].([]any)
		if len(embs) == 0 || len(embs) != int(r["enroll_level"].(float64)) {
			t.Fatalf("export --with-embeddings: %d embeddings for level %v", len(embs), r["enroll_level"])
		}
	}
	if out, _ = runIt("export", "--tenant", "nobody"); out != "" {
		t.Errorf("another tenant's export is not empty: %.200s", out)
	}
}

func decodeLines(t *testing.T, s string) []map[string]any {
	t.Helper()
	var out []map[string]any
	sc := bufio.NewScanner(strings.NewReader(s))
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("export line is not JSON: %v", err)
		}
		out = append(out, m)
	}
	return out
}

// writeNPY writes a version 1.0 .npy of little-endian float32 rows.
func writeNPY(t *testing.T, path string, rows, dim int, row func(int) []float32) {
	t.Helper()
	hdr := fmt.Sprintf("{'descr': '<f4', 'fortran_order': False, 'shape': (%d, %d), }", rows, dim)
	pad := 64 - (10+len(hdr)+1)%64
	hdr += strings.Repeat(" ", pad) + "\n"
	var b bytes.Buffer
	b.WriteString("\x93NUMPY\x01\x00")
	binary.Write(&b, binary.LittleEndian, uint16(len(hdr)))
	b.WriteString(hdr)
	for r := range rows {
		for _, x := range row(r) {
			binary.Write(&b, binary.LittleEndian, math.Float32bits(x))
		}
	}
	if err := os.WriteFile(path, b.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
}

// assertValidIndex fails unless the database has that index, valid.
func assertValidIndex(t *testing.T, databaseURL, name string) {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, databaseURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var valid bool
	if err := conn.QueryRow(ctx, `SELECT indisvalid FROM pg_index WHERE indexrelid = to_regclass($1)`, name).Scan(&valid); err != nil || !valid {
		t.Errorf("index %s: valid=%v, err=%v; want a valid index", name, valid, err)
	}
}

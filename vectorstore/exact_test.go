package vectorstore

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/biomatch/biomatch/engine"
	"github.com/biomatch/biomatch/internal/synth"
	"github.com/biomatch/biomatch/vectorstore/kernel"
)

var testGallery = engine.Gallery{Tenant: "t", Version: "v"}

// plainScan is the reference: every row scored by Dot64, best first, ties
// by template id.
func plainScan(rows []Row, probe engine.Embedding, k int) []engine.Match {
	var all []engine.Match
	for _, r := range rows {
		if len(r.Embedding) == len(probe) {
			all = append(all, engine.Match{TemplateID: r.TemplateID, PersonID: r.PersonID, Score: kernel.Dot64(r.Embedding, probe)})
		}
	}
	slices.SortFunc(all, engine.CompareMatches)
	return all[:min(k, len(all))]
}

func unit(v []float64) engine.Embedding {
	var s float64
	for _, x := range v {
		s += x * x
	}
	out := make(engine.Embedding, len(v))
	for i, x := range v {
		out[i] = float32(x / math.Sqrt(s))
	}
	return out
}

// dataset makes n rows: identity-clustered samples, exact duplicates and
// near-ties (a row and itself nudged by one ulp-sized step).
func dataset(r *rand.Rand, n, dim int) []Row {
	rows := make([]Row, 0, n)
	for i := 0; len(rows) < n; i++ {
		var e engine.Embedding
		switch {
		case i%10 == 3 && len(rows) > 0: // an exact duplicate of an earlier row
			e = slices.Clone(rows[r.IntN(len(rows))].Embedding)
		case i%10 == 7 && len(rows) > 0: // a near-tie
			e = slices.Clone(rows[r.IntN(len(rows))].Embedding)
			j := r.IntN(dim)
			e[j] = math.Nextafter32(e[j], 2)
		default:
			e = engine.Embedding(synth.Vector(dim, uint64(r.IntN(n/4+1)), 0.4, r.Uint64()))
		}
		rows = append(rows, Row{TemplateID: int64(1000 + r.IntN(1<<40)), PersonID: int64(i), Gallery: testGallery, Embedding: e})
	}
	return rows
}

func TestExactEqualsPlainScan(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	for _, tc := range []struct {
		n, dim int
		int8   string
	}{
		{50, 128, "off"}, {2000, 300, "off"}, {2000, 512, "on"},
		{parallelMin + 500, 256, "off"}, {parallelMin + 500, 256, "on"},
	} {
		rows := dataset(r, tc.n, tc.dim)
		e := NewExact(ExactConfig{Int8: tc.int8, Workers: 3})
		e.Add(rows...)
		if got := e.Len(); got != len(rows) {
			t.Fatalf("Len = %d, want %d", got, len(rows))
		}
		for trial := range 25 {
			var probe engine.Embedding
			switch trial % 3 {
			case 0: // a stored row: exact ties with its duplicates
				probe = rows[r.IntN(len(rows))].Embedding
			case 1: // a noisy sample of an identity
				probe = engine.Embedding(synth.Vector(tc.dim, uint64(r.IntN(tc.n/4+1)), 0.5, r.Uint64()))
			default: // anything
				v := make([]float64, tc.dim)
				for i := range v {
					v[i] = r.NormFloat64()
				}
				probe = unit(v)
			}
			for _, k := range []int{1, 10, 37} {
				got, err := e.Nearest(context.Background(), testGallery, probe, k)
				if err != nil {
					t.Fatal(err)
				}
				want := plainScan(rows, probe, k)
				if diff := cmp.Diff(want, got); diff != "" {
					t.Fatalf("n=%d dim=%d int8=%s k=%d trial %d (-plain +exact):\n%s", tc.n, tc.dim, tc.int8, k, trial, diff)
				}
			}
		}
	}
}

// TestExactBatchEqualsPlainScan scores batches of queries (mixed k, every
// group shape of the batch kernels) in one pass and holds each answer to
// a plain float32 scan, with and without the int8 pre-scan, on one part
// and on several.
func TestExactBatchEqualsPlainScan(t *testing.T) {
	r := rand.New(rand.NewPCG(15, 16))
	for _, tc := range []struct {
		n, dim int
		int8   string
	}{
		{300, 131, "on"}, {2000, 512, "on"}, {2000, 512, "off"}, {parallelMin + 300, 256, "on"},
	} {
		rows := dataset(r, tc.n, tc.dim)
		e := NewExact(ExactConfig{Int8: tc.int8, Workers: 3})
		e.Add(rows...)
		m := e.galleries[galleryKey{testGallery.Tenant, testGallery.Version, tc.dim}]
		for _, size := range []int{1, 2, 3, 8, 13, 32} {
			qs := make([]query, size)
			for j := range qs {
				qs[j].k = []int{1, 10, 37}[j%3]
				if j%2 == 0 {
					qs[j].probe = rows[r.IntN(len(rows))].Embedding
				} else {
					qs[j].probe = engine.Embedding(synth.Vector(tc.dim, uint64(r.IntN(tc.n/4+1)), 0.5, r.Uint64()))
				}
			}
			for j, got := range m.search(qs, math.Inf(-1), e.workers) {
				if diff := cmp.Diff(plainScan(rows, qs[j].probe, qs[j].k), got); diff != "" {
					t.Fatalf("n=%d dim=%d int8=%s batch %d query %d (-plain +batch):\n%s", tc.n, tc.dim, tc.int8, size, j, diff)
				}
			}
		}
	}
}

// TestExactAtLeastEqualsPlainScan holds searches for matches scoring at
// least a threshold (the enroll decision's) to a plain float32 scan cut at
// that threshold, across thresholds above and below headMin, for int8
// matrices with and without a head (dimensions 512 and 128; the head
// scanned row by row and, where the CPU has them, as tiles) and float32
// ones: probes at cosines just above, at and just below the threshold of
// a stored row, stored rows with their duplicates, nobody stored, and
// probes close to rows with almost all their weight past the head, whose
// match the head scan must not rule out. Then a third of the persons are
// removed (rows move to fill the gaps, chunks are released) and the
// searches are held to the rows left; then again with the removed rows
// added back.
func TestExactAtLeastEqualsPlainScan(t *testing.T) {
	r := rand.New(rand.NewPCG(19, 20))
	all := []float64{0.3, headMin, 0.45, 0.5, 0.62, 0.9}
	type testCase struct {
		n, dim     int
		int8       string
		tiles      bool
		head       int
		thresholds []float64
	}
	cases := []testCase{
		{3000, 512, "on", false, 384, all}, {parallelMin + 300, 256, "on", false, 192, []float64{0.3, 0.5}},
		{2000, 128, "on", false, 0, all}, {2000, 512, "off", false, 0, all},
	}
	if kernel.HasTiles {
		cases = append(cases, testCase{3000, 512, "on", true, 352, all},
			testCase{parallelMin + 300, 256, "on", true, 176, []float64{0.45, 0.5}})
	}
	for _, tc := range cases {
		rows := dataset(r, tc.n, tc.dim)
		var heavy []int // rows with almost all their weight past the head
		for i := range 6 {
			v := make([]float64, tc.dim)
			for d := tc.dim * 3 / 4; d < tc.dim; d++ {
				v[d] = r.NormFloat64()
			}
			v[i] = 0.01
			heavy = append(heavy, i*(tc.n/6))
			rows[i*(tc.n/6)].Embedding = unit(v)
		}
		e := NewExact(ExactConfig{Int8: tc.int8, Workers: 3})
		e.noTiles = !tc.tiles
		e.Add(rows...)
		m := e.galleries[galleryKey{testGallery.Tenant, testGallery.Version, tc.dim}]
		if m.head != tc.head || (m.tiles != nil) != tc.tiles {
			t.Fatalf("dim %d int8 %s: head = %d (tiles %v), want %d (%v)", tc.dim, tc.int8, m.head, m.tiles != nil, tc.head, tc.tiles)
		}
		name := fmt.Sprintf("n=%d dim=%d int8=%s tiles=%v", tc.n, tc.dim, tc.int8, tc.tiles)
		all := rows
		for pass := range 3 {
			switch pass {
			case 2: // the removed rows back, at the end (into released chunks)
				left := map[int64]bool{}
				for _, row := range rows {
					left[row.TemplateID] = true
				}
				var back []Row
				for _, row := range all {
					if !left[row.TemplateID] {
						back = append(back, row)
					}
				}
				e.Add(back...)
				rows = append(rows, back...)
				if m.len() != len(all) {
					t.Fatalf("%s: %d rows after adding %d back, want %d", name, m.len(), len(back), len(all))
				}
			case 1: // remove the persons of every third row, but the heavy rows'
				keep, gone := map[int64]bool{}, map[int64]bool{}
				for _, i := range heavy {
					keep[rows[i].PersonID] = true
				}
				for i, row := range rows {
					if i%3 == 1 && !keep[row.PersonID] && !gone[row.PersonID] {
						gone[row.PersonID] = true
						e.RemovePerson(row.PersonID)
					}
				}
				heavyIDs := map[int64]bool{}
				for _, i := range heavy {
					heavyIDs[rows[i].TemplateID] = true
				}
				rows = slices.DeleteFunc(slices.Clone(rows), func(row Row) bool { return gone[row.PersonID] })
				heavy = heavy[:0]
				for i, row := range rows {
					if heavyIDs[row.TemplateID] {
						heavy = append(heavy, i)
					}
				}
				if len(gone) == 0 || m.len() != len(rows) {
					t.Fatalf("%s: %d rows after removing %d persons, want %d", name, m.len(), len(gone), len(rows))
				}
			}
			for _, atLeast := range tc.thresholds {
				checkAtLeast(t, r, e, m, rows, heavy, atLeast, fmt.Sprintf("%s pass %d atLeast %v", name, pass, atLeast))
			}
		}
	}
}

// checkAtLeast holds e's searches at atLeast to a plain scan of rows, with
// probes of every kind TestExactAtLeastEqualsPlainScan names.
func checkAtLeast(t *testing.T, r *rand.Rand, e *Exact, m *matrix, rows []Row, heavy []int, atLeast float64, name string) {
	t.Helper()
	dim := len(rows[0].Embedding)
	qs := make([]query, 15) // probe groups of 8, 4, 2 and 1
	for j := range qs {
		qs[j].k = []int{1, 1, 3, 10}[j%4]
		row := rows[r.IntN(len(rows))].Embedding
		switch j % 5 {
		case 0, 1: // just above, at or just below the threshold
			c := atLeast + []float64{1e-3, 0, -1e-3, 1e-6}[r.IntN(4)]
			qs[j].probe = engine.Embedding(synth.AtCosine(row, c, r.Uint64()))
		case 2: // a stored row: exact ties with its duplicates
			qs[j].probe = row
		case 3: // near a row the head hardly sees
			c := atLeast + []float64{2e-3, -2e-3, 0.05}[r.IntN(3)]
			if len(heavy) > 0 {
				row = rows[heavy[j%len(heavy)]].Embedding
			}
			qs[j].probe = engine.Embedding(synth.AtCosine(row, c, r.Uint64()))
		default: // nobody stored
			v := make([]float64, dim)
			for i := range v {
				v[i] = r.NormFloat64()
			}
			qs[j].probe = unit(v)
		}
	}
	got, err := e.NearestBatch(context.Background(), testGallery, probes(qs[:1]), 1, atLeast)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(engine.AtLeast(plainScan(rows, qs[0].probe, 1), atLeast), got[0], cmpopts.EquateEmpty()); diff != "" {
		t.Fatalf("%s, NearestBatch (-plain +got):\n%s", name, diff)
	}
	for j, got := range m.search(qs, atLeast, e.workers) {
		want := engine.AtLeast(plainScan(rows, qs[j].probe, qs[j].k), atLeast)
		if diff := cmp.Diff(want, got, cmpopts.EquateEmpty()); diff != "" {
			t.Fatalf("%s query %d (k=%d) (-plain +search):\n%s", name, j, qs[j].k, diff)
		}
	}
}

func probes(qs []query) []engine.Embedding {
	out := make([]engine.Embedding, len(qs))
	for j, q := range qs {
		out[j] = q.probe
	}
	return out
}

// TestExactPrePassEqualsPlainScan holds identify's pre-pass (half of each
// row, then a proof or a full scan) to a plain float32 scan, in batches of
// every kernel group shape: returning persons (a close sample of a stored
// row, whose identity has several templates), stored rows with their
// exact duplicates, and probes of nobody stored. In a second gallery a few
// rows carry almost all their weight past the prefix, and probes close to
// them must not be settled by the pre-pass: their match hides from it.
// Where the CPU has tiles, the pre-pass on the tiles must settle exactly
// the probes the pre-pass on its own copy of the prefixes settles, with
// the same answers (the estimates are the same int8 products), also after
// a third of the persons left.
func TestExactPrePassEqualsPlainScan(t *testing.T) {
	r := rand.New(rand.NewPCG(17, 18))
	const n, dim = parallelMin + 300, 256
	balanced := dataset(r, n, dim)
	skewed := slices.Clone(balanced)
	var heavy []int // rows of skewed with almost all their weight past the prefix
	for i := range 5 {
		v := make([]float64, dim)
		for d := dim / 2; d < dim; d++ {
			v[d] = r.NormFloat64()
		}
		v[0] = 0.01
		heavy = append(heavy, i*1000)
		skewed[i*1000].Embedding = unit(v)
	}
	for _, tc := range []struct {
		name string
		rows []Row
	}{{"balanced", balanced}, {"skewed", skewed}} {
		e := NewExact(ExactConfig{Int8: "on", Workers: 3})
		e.Add(tc.rows...)
		m := e.galleries[galleryKey{testGallery.Tenant, testGallery.Version, dim}]
		if m.prefix != dim/2 || (m.tiles != nil) != kernel.HasTiles || (m.pre != nil) == kernel.HasTiles {
			t.Fatalf("prefix = %d (tiles %v, a copy %v), want %d (tiles %v)", m.prefix, m.tiles != nil, m.pre != nil, dim/2, kernel.HasTiles)
		}
		var rowMajor *matrix // the pre-pass on its copy of the prefixes, where m's reads tiles
		if kernel.HasTiles {
			other := NewExact(ExactConfig{Int8: "on", Workers: 3})
			other.noTiles = true
			other.Add(tc.rows...)
			rowMajor = other.galleries[galleryKey{testGallery.Tenant, testGallery.Version, dim}]
			defer func() { // and again after a third of the persons left
				for i, row := range tc.rows {
					if i%3 == 1 && !slices.Contains(heavy, i) {
						e.RemovePerson(row.PersonID)
						other.RemovePerson(row.PersonID)
					}
				}
				qs := make([]query, 32)
				for j := range qs {
					qs[j] = query{engine.Embedding(synth.AtCosine(tc.rows[r.IntN(n)].Embedding, 0.95, r.Uint64())), 1 + j%3}
				}
				checkSamePrePass(t, m, rowMajor, qs, e.workers, tc.name+", after removals")
			}()
		}
		for _, size := range []int{1, 3, 8, 13, 32} {
			qs := make([]query, size)
			for j := range qs {
				qs[j].k = []int{1, 1, 3, 10}[j%4]
				switch {
				case j%3 == 0: // a returning person
					qs[j].probe = engine.Embedding(synth.AtCosine(tc.rows[r.IntN(n)].Embedding, 0.95, r.Uint64()))
				case j%3 == 1: // a stored row: exact ties with its duplicates
					qs[j].probe = tc.rows[r.IntN(n)].Embedding
				case tc.name == "skewed": // close to a row the prefix hardly sees
					qs[j].probe = engine.Embedding(synth.AtCosine(tc.rows[heavy[j%len(heavy)]].Embedding, 0.9, r.Uint64()))
				default: // nobody stored
					v := make([]float64, dim)
					for i := range v {
						v[i] = r.NormFloat64()
					}
					qs[j].probe = unit(v)
				}
			}
			m.mu.RLock()
			_, open := m.scanPrefix(qs, e.workers)
			m.mu.RUnlock()
			if rowMajor != nil {
				checkSamePrePass(t, m, rowMajor, qs, e.workers, fmt.Sprintf("%s, batch %d", tc.name, size))
			}
			if tc.name == "balanced" && slices.Contains(open, 0) {
				t.Errorf("batch %d: the pre-pass did not settle the returning person's k=1 probe", size)
			}
			for j := 2; tc.name == "skewed" && j < size; j += 3 {
				if !slices.Contains(open, j) {
					t.Errorf("skewed, batch %d: the pre-pass settled query %d, whose match it cannot see", size, j)
				}
			}
			for j, got := range m.identify(qs, e.workers) {
				if diff := cmp.Diff(plainScan(tc.rows, qs[j].probe, qs[j].k), got); diff != "" {
					t.Fatalf("%s, batch %d query %d (k=%d, pre-pass open: %v) (-plain +identify):\n%s", tc.name, size, j, qs[j].k, open, diff)
				}
			}
		}
	}
}

// checkSamePrePass holds the tile pre-pass of m to the row-major one of
// rowMajor, a matrix of the same rows: the same probes settled, with the
// same answers.
func checkSamePrePass(t *testing.T, m, rowMajor *matrix, qs []query, workers int, name string) {
	t.Helper()
	m.mu.RLock()
	got, gotOpen := m.scanPrefix(qs, workers)
	m.mu.RUnlock()
	rowMajor.mu.RLock()
	want, wantOpen := rowMajor.scanPrefix(qs, workers)
	rowMajor.mu.RUnlock()
	if !slices.Equal(gotOpen, wantOpen) {
		t.Fatalf("%s: tiles leave open %v, the prefix copy %v", name, gotOpen, wantOpen)
	}
	if diff := cmp.Diff(want, got, cmpopts.EquateEmpty()); diff != "" {
		t.Fatalf("%s: (-prefix copy +tiles):\n%s", name, diff)
	}
	if len(wantOpen) == len(qs) {
		t.Fatalf("%s: the pre-pass settled none of %d probes: the comparison tests nothing", name, len(qs))
	}
}

// TestExactCoalescesWaitingQueries holds a gallery's scan back (a write
// in progress) until ten more queries wait, then checks that they were
// answered by one more scan, each answer equal to a plain scan.
func TestExactCoalescesWaitingQueries(t *testing.T) {
	r := rand.New(rand.NewPCG(17, 18))
	rows := dataset(r, 3000, 256)
	e := NewExact(ExactConfig{})
	e.Add(rows...)
	m := e.galleries[galleryKey{testGallery.Tenant, testGallery.Version, 256}]
	m.mu.Lock() // the first scan waits for this "write"
	type answer struct {
		probe engine.Embedding
		got   []engine.Match
		err   error
	}
	answers := make(chan answer, 11)
	ask := func(probe engine.Embedding) {
		got, err := e.Nearest(context.Background(), testGallery, probe, 5)
		answers <- answer{probe, got, err}
	}
	go ask(rows[0].Embedding)
	for runs, _ := m.scans.Stats(); runs == 0; runs, _ = m.scans.Stats() {
		runtime.Gosched() // until the first query's scan has taken it
	}
	for i := 1; i <= 10; i++ {
		go ask(rows[i*7].Embedding)
	}
	for m.scans.Waiting() < 10 {
		runtime.Gosched()
	}
	m.mu.Unlock()
	for range 11 {
		a := <-answers
		if a.err != nil {
			t.Fatal(a.err)
		}
		if diff := cmp.Diff(plainScan(rows, a.probe, 5), a.got); diff != "" {
			t.Fatalf("(-plain +coalesced):\n%s", diff)
		}
	}
	if scans, queries := e.Scans(); scans != 2 || queries != 11 {
		t.Errorf("11 queries, 10 of them waiting together, took %d scans for %d queries; want 2 scans", scans, queries)
	}
}

func TestExactUpdates(t *testing.T) {
	for _, dim := range []int{128, 512} { // 512: the int8 rows as tiles, where the CPU has them
		r := rand.New(rand.NewPCG(13, 14))
		e := NewExact(ExactConfig{Int8: "on"})
		rows := dataset(r, 500, dim)
		e.Add(rows...)
		before := e.Bytes()
		// Replacing a row changes nothing in size; removing a person drops its rows.
		e.Add(rows[0])
		if e.Bytes() != before {
			t.Errorf("dim %d: re-adding a row changed Bytes from %d to %d", dim, before, e.Bytes())
		}
		// A row replaced by another (then back) keeps its block's bounds exact,
		// and is found by its values of the moment (other's are like no
		// other row's).
		fresh := make([]float64, dim)
		for i := range fresh {
			fresh[i] = r.NormFloat64()
		}
		other := rows[1]
		other.Embedding = unit(fresh)
		m := e.galleries[galleryKey{testGallery.Tenant, testGallery.Version, dim}]
		for i, row := range []Row{other, rows[1]} {
			e.Add(row)
			checkBlockBounds(t, m)
			now := slices.Clone(rows)
			now[1] = row
			for _, probe := range []engine.Embedding{rows[1].Embedding, other.Embedding} {
				got, _ := e.Nearest(context.Background(), testGallery, probe, 1)
				if diff := cmp.Diff(plainScan(now, probe, 1), got); diff != "" {
					t.Fatalf("dim %d, replacement %d (-plain +exact):\n%s", dim, i, diff)
				}
			}
		}
		victim := rows[42].PersonID
		e.RemovePerson(victim)
		var kept []Row
		for _, row := range rows {
			if row.PersonID != victim {
				kept = append(kept, row)
			}
		}
		if e.Len() != len(kept) || e.Bytes() >= before {
			t.Errorf("dim %d: after RemovePerson: Len %d (want %d), Bytes %d (was %d)", dim, e.Len(), len(kept), e.Bytes(), before)
		}
		for _, probe := range []engine.Embedding{rows[42].Embedding, rows[len(rows)-1].Embedding} {
			got, _ := e.Nearest(context.Background(), testGallery, probe, 5)
			if diff := cmp.Diff(plainScan(kept, probe, 5), got); diff != "" {
				t.Fatalf("dim %d: after RemovePerson (-plain +exact):\n%s", dim, diff)
			}
		}
		if got, _ := e.Nearest(context.Background(), engine.Gallery{Tenant: "other", Version: "v"}, rows[0].Embedding, 5); len(got) != 0 {
			t.Errorf("dim %d: another tenant's gallery returned %v", dim, got)
		}
	}
}

// checkBlockBounds fails unless each block's bounds are the largest inv,
// res and qn of its rows, for every block and no more.
func checkBlockBounds(t *testing.T, m *matrix) {
	t.Helper()
	if want := (len(m.ids) + blockRows - 1) / blockRows; len(m.blocks) != want {
		t.Fatalf("%d rows have %d block bounds, want %d", len(m.ids), len(m.blocks), want)
	}
	for b, got := range m.blocks {
		var want rowBounds
		for i := b * blockRows; i < min((b+1)*blockRows, len(m.ids)); i++ {
			want = rowBounds{max(want.inv, m.inv[i]), max(want.res, m.res[i]), max(want.qn, m.qn[i]), max(want.suf, m.suf[i])}
		}
		if got != want {
			t.Fatalf("block %d: bounds %+v, its rows' largest %+v", b, got, want)
		}
	}
}

// TestBlockBoundsStayExact: the per-block bounds the int8 scan sets its
// skip floors from stay the largest inv, res and qn of each block's rows
// while rows are added, replaced and removed, and searches stay exact. A
// few rows are peaked (one large value: the largest 1/scale in their
// block), so replacing or removing one lowers its block's bound.
func TestBlockBoundsStayExact(t *testing.T) {
	const dim = 128
	r := rand.New(rand.NewPCG(19, 20))
	vector := func() engine.Embedding {
		e := engine.Embedding(synth.Vector(dim, r.Uint64(), 0, 0))
		if r.IntN(20) == 0 {
			e[r.IntN(dim)] += 3
			normalize(e)
		}
		return e
	}
	e := NewExact(ExactConfig{Int8: "on"})
	var rows []Row
	for i := range 3*blockRows + 10 {
		rows = append(rows, Row{TemplateID: int64(i), PersonID: int64(i), Gallery: testGallery, Embedding: vector()})
	}
	e.Add(rows...)
	m := e.galleries[galleryKey{testGallery.Tenant, testGallery.Version, dim}]
	next := int64(len(rows))
	for op := range 600 {
		i := r.IntN(len(rows))
		switch op % 3 {
		case 0: // replace
			rows[i].Embedding = vector()
			e.Add(rows[i])
		case 1: // remove
			e.RemovePerson(rows[i].PersonID)
			rows = slices.Delete(rows, i, i+1)
		case 2: // add
			rows = append(rows, Row{TemplateID: next, PersonID: next, Gallery: testGallery, Embedding: vector()})
			e.Add(rows[len(rows)-1])
			next++
		}
		checkBlockBounds(t, m)
	}
	for range 20 {
		probe := rows[r.IntN(len(rows))].Embedding
		got, _ := e.Nearest(context.Background(), testGallery, probe, 5)
		if diff := cmp.Diff(plainScan(rows, probe, 5), got); diff != "" {
			t.Fatalf("(-plain +exact):\n%s", diff)
		}
	}
}

// TestExactGrowsAndShrinksByChunks: a matrix holds its rows in chunks of
// chunkRows (growing never copies them all). Rows added one by one past
// several chunks, then removed (swap-removes across chunks, the last
// chunks emptied and dropped) and added again, must search exactly like a
// plain scan of what is left, with and without the int8 pre-scan, and
// every chunk but the last must stay full.
func TestExactGrowsAndShrinksByChunks(t *testing.T) {
	for _, int8 := range []string{"on", "off"} {
		r := rand.New(rand.NewPCG(17, 18))
		e := NewExact(ExactConfig{Int8: int8, Workers: 3})
		rows := dataset(r, 3*chunkRows+100, 128)
		for _, row := range rows {
			e.Add(row)
		}
		removed := map[int64]bool{}
		for _, row := range rows[len(rows)-chunkRows-150:] { // empties the last chunk and more
			removed[row.PersonID] = true
		}
		for range 500 { // and some anywhere
			removed[rows[r.IntN(len(rows))].PersonID] = true
		}
		for p := range removed {
			e.RemovePerson(p)
		}
		var kept []Row
		for _, row := range rows {
			if !removed[row.PersonID] {
				kept = append(kept, row)
			}
		}
		more := dataset(r, 300, 128)
		for i := range more {
			more[i].PersonID += 1 << 40 // new persons
		}
		e.Add(more...)
		kept = append(kept, more...)
		if e.Len() != len(kept) {
			t.Fatalf("int8=%s: Len = %d, want %d", int8, e.Len(), len(kept))
		}
		m := e.galleries[galleryKey{testGallery.Tenant, testGallery.Version, 128}]
		for i, c := range m.f32[:len(m.f32)-1] {
			if len(c) != chunkRows*128 {
				t.Fatalf("int8=%s: chunk %d of %d holds %d rows, not %d", int8, i, len(m.f32), len(c)/128, chunkRows)
			}
		}
		if int8 == "on" {
			checkBlockBounds(t, m)
		}
		for trial := range 20 {
			probe := kept[r.IntN(len(kept))].Embedding
			if trial%2 == 1 {
				probe = engine.Embedding(synth.Vector(128, uint64(r.IntN(len(rows)/4+1)), 0.5, r.Uint64()))
			}
			got, err := e.Nearest(context.Background(), testGallery, probe, 10)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(plainScan(kept, probe, 10), got); diff != "" {
				t.Fatalf("int8=%s trial %d (-plain +exact):\n%s", int8, trial, diff)
			}
		}
	}
}

// normalize scales e to unit length.
func normalize(e engine.Embedding) {
	var s float64
	for _, v := range e {
		s += float64(v) * float64(v)
	}
	for i := range e {
		e[i] = float32(float64(e[i]) / math.Sqrt(s))
	}
}

// TestBatchPairsEqualsPlainScan holds the comparison of a batch's
// templates with each other to a plain scan of every earlier template:
// samples of a few identities (many pairs above the threshold), exact
// duplicates, pairs at the threshold's cosine, two dimensions mixed, and
// thresholds above and below headMin.
func TestBatchPairsEqualsPlainScan(t *testing.T) {
	r := rand.New(rand.NewPCG(21, 22))
	var probes []engine.Embedding
	for i := range 600 {
		switch {
		case i%7 == 3 && i > 0:
			probes = append(probes, probes[r.IntN(i)])
		case i%7 == 5 && i > 0 && len(probes[i-1]) == 512:
			probes = append(probes, engine.Embedding(synth.AtCosine(probes[i-1], []float64{0.5, 0.45, 0.4}[r.IntN(3)], r.Uint64())))
		case i%11 == 0:
			probes = append(probes, engine.Embedding(synth.Vector(128, uint64(r.IntN(30)), 0.5, r.Uint64())))
		default:
			probes = append(probes, engine.Embedding(synth.Vector(512, uint64(r.IntN(60)), 0.9, r.Uint64())))
		}
	}
	for _, atLeast := range []float64{0.3, 0.4, 0.45, 0.5} {
		got, err := BatchPairs(context.Background(), probes, atLeast)
		if err != nil {
			t.Fatal(err)
		}
		pairs := 0
		for i, p := range probes {
			var want []engine.Match
			for j, q := range probes[:i] {
				if len(p) == len(q) {
					if s := kernel.Dot64(q, p); s >= atLeast {
						want = append(want, engine.Match{TemplateID: int64(j), Score: s})
					}
				}
			}
			slices.SortFunc(want, engine.CompareMatches)
			pairs += len(want)
			if diff := cmp.Diff(want, got[i], cmpopts.EquateEmpty()); diff != "" {
				t.Fatalf("atLeast %v probe %d (-plain +BatchPairs):\n%s", atLeast, i, diff)
			}
		}
		if pairs < len(probes) {
			t.Fatalf("atLeast %v: only %d pairs: the test does not exercise the comparison", atLeast, pairs)
		}
	}
}

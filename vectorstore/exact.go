package vectorstore

import (
	"cmp"
	"context"
	"encoding/binary"
	"iter"
	"math"
	mathbits "math/bits"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/biomatch/biomatch/engine"
	"github.com/biomatch/biomatch/internal/batch"
	"github.com/biomatch/biomatch/vectorstore/kernel"
)

var _ engine.Index = (*Exact)(nil)

// Row is one template as the in-memory index holds it.
type Row struct {
	TemplateID int64
	PersonID   int64
	Gallery    engine.Gallery
	Embedding  engine.Embedding // unit length (the engine validates it)
}

// Exact is the in-memory exact index (the gonum fallback and the fast
// path): per gallery and dimension, one contiguous float32 matrix, plus an
// int8 copy for a pre-scan when the CPU has a fast int8 kernel. Identify's
// pre-pass (Nearest) reads each int8 row's first half: it settles a probe
// with a clear best match in half a scan, with a proof (see scanPrefix). A
// search for matches above a high score (the enroll decision's,
// NearestBatch) reads each int8 row's head only and finishes the rows that
// could still reach it: 11/16 of the row where the CPU has AVX-512 VNNI
// (tileScanner), else three quarters (int8Scanner). With AVX-512 VNNI the
// int8 rows are laid out in tiles, which every int8 scan reads; without,
// the pre-pass reads a copy of the rows' first halves. Its results equal a
// plain float32 scan ranked by kernel.Dot64 (ties by template id): every
// kernel's error is bounded and the rows that could be in the top k are
// re-scored exactly. Safe for concurrent use; searches of a gallery wait
// for a write to it.
type Exact struct {
	useInt8   bool
	workers   int
	maxBatch  int
	noPrePass bool
	noTiles   bool // tests: the row-major head scan where the CPU has tiles
	window    time.Duration

	mu        sync.RWMutex
	galleries map[galleryKey]*matrix
	personKey map[int64]galleryKey // where each person's rows are
	bytes     atomic.Int64
}

type galleryKey struct {
	tenant, version string
	dim             int
}

// ExactConfig tunes Exact.
type ExactConfig struct {
	// Int8: "auto" (the pre-scan when an assembly int8 kernel runs here),
	// "on" or "off".
	Int8 string
	// Workers scanning a large gallery at once; 0 means GOMAXPROCS.
	Workers int
	// MaxBatch is how many waiting queries one scan answers at most; 0
	// means 32, 1 turns batching off.
	MaxBatch int
	// NoPrePass turns off identify's pre-pass over the first half of each
	// row (for side-by-side benchmarks and tests).
	NoPrePass bool
	// Window is the longest a pass that follows another waits for more
	// probes (batch.Combiner.Window, up to windowScale times the last
	// pass's duration): 0 means DefaultWindow; negative turns it off, so a
	// pass takes only the probes waiting when the previous one ends.
	Window time.Duration
}

// DefaultWindow is ExactConfig.Window's default.
const DefaultWindow = 20 * time.Millisecond

// windowScale bounds a following pass's wait for more probes by the last
// pass's duration: a pass over a large gallery reads every row whatever
// its batch, so under load fewer, fuller passes save most of that cost,
// while small galleries, scanned in microseconds, hardly wait.
const windowScale = 4

// NewExact returns an empty index.
func NewExact(cfg ExactConfig) *Exact {
	e := &Exact{galleries: map[galleryKey]*matrix{}, personKey: map[int64]galleryKey{}, workers: cfg.Workers,
		maxBatch: cfg.MaxBatch, noPrePass: cfg.NoPrePass, window: cfg.Window}
	if e.maxBatch <= 0 {
		e.maxBatch = 32
	}
	if e.window == 0 {
		e.window = DefaultWindow
	}
	switch cfg.Int8 {
	case "on":
		e.useInt8 = true
	case "off":
	default:
		e.useInt8 = kernel.HasFastI8
	}
	if e.workers <= 0 {
		e.workers = runtime.GOMAXPROCS(0)
	}
	return e
}

// Int8 reports whether the int8 pre-scan is in use.
func (e *Exact) Int8() bool { return e.useInt8 }

// Bytes is the memory held by the matrices and their ids.
func (e *Exact) Bytes() int64 { return e.bytes.Load() }

// Scans returns how many passes over a gallery's rows searches made and
// how many queries they answered (more queries than scans: batching), for
// the galleries held now.
func (e *Exact) Scans() (scans, queries int64) {
	e.mu.RLock()
	defer e.mu.RUnlock()
	for _, m := range e.galleries {
		r, q := m.scans.Stats()
		scans += r
		queries += q
	}
	return scans, queries
}

// Len is the number of templates held.
func (e *Exact) Len() int {
	e.mu.RLock()
	defer e.mu.RUnlock()
	n := 0
	for _, m := range e.galleries {
		n += m.len()
	}
	return n
}

// Add inserts rows; a template id already held is replaced. Consecutive
// rows of one gallery and dimension are written under one lock of its
// matrix, so a bulk write waits for the searches running on it once, not
// once per row.
func (e *Exact) Add(rows ...Row) {
	for len(rows) > 0 {
		key := keyOf(rows[0])
		n := 1
		for n < len(rows) && keyOf(rows[n]) == key {
			n++
		}
		e.mu.Lock()
		m := e.galleries[key]
		if m == nil {
			m = e.newMatrix(key.dim)
			e.galleries[key] = m
		}
		for _, r := range rows[:n] {
			e.personKey[r.PersonID] = key
		}
		e.mu.Unlock()
		e.bytes.Add(m.putAll(rows[:n]))
		rows = rows[n:]
	}
}

func keyOf(r Row) galleryKey {
	return galleryKey{r.Gallery.Tenant, r.Gallery.Version, len(r.Embedding)}
}

// HasPerson reports whether the person has rows here.
func (e *Exact) HasPerson(personID int64) bool {
	e.mu.RLock()
	defer e.mu.RUnlock()
	_, ok := e.personKey[personID]
	return ok
}

// RemovePerson drops every row of a person.
func (e *Exact) RemovePerson(personID int64) {
	e.mu.Lock()
	key, ok := e.personKey[personID]
	delete(e.personKey, personID)
	m := e.galleries[key]
	e.mu.Unlock()
	if ok && m != nil {
		e.bytes.Add(m.removePerson(personID))
	}
}

// Reset drops everything (before a full reload).
func (e *Exact) Reset() {
	e.mu.Lock()
	e.galleries = map[galleryKey]*matrix{}
	e.personKey = map[int64]galleryKey{}
	e.bytes.Store(0)
	e.mu.Unlock()
}

// replaceWith takes over other's content (after a full load into it).
func (e *Exact) replaceWith(other *Exact) {
	other.mu.Lock()
	e.mu.Lock()
	e.galleries, e.personKey = other.galleries, other.personKey
	e.bytes.Store(other.bytes.Load())
	e.mu.Unlock()
	other.mu.Unlock()
}

// SetPerson makes rows the person's only rows (none: the person is removed).
func (e *Exact) SetPerson(personID int64, rows []Row) {
	if len(rows) == 0 {
		e.RemovePerson(personID)
		return
	}
	e.mu.RLock()
	old, had := e.personKey[personID]
	e.mu.RUnlock()
	newKey := galleryKey{rows[0].Gallery.Tenant, rows[0].Gallery.Version, len(rows[0].Embedding)}
	if had && old != newKey {
		e.RemovePerson(personID)
	}
	e.Add(rows...)
	keep := make(map[int64]bool, len(rows))
	for _, r := range rows {
		keep[r.TemplateID] = true
	}
	e.mu.RLock()
	m := e.galleries[newKey]
	e.mu.RUnlock()
	e.bytes.Add(m.removePersonExcept(personID, keep))
}

// Reserve makes room for n more rows of a gallery, so a bulk load does not
// copy its matrix as it grows.
func (e *Exact) Reserve(g engine.Gallery, dim, n int) {
	key := galleryKey{g.Tenant, g.Version, dim}
	e.mu.Lock()
	m := e.galleries[key]
	if m == nil {
		m = e.newMatrix(dim)
		e.galleries[key] = m
	}
	e.mu.Unlock()
	m.reserve(n)
}

// Nearest implements engine.Index: the identify path, batched with the
// searches waiting for the gallery, with the pre-pass where it pays.
func (e *Exact) Nearest(ctx context.Context, g engine.Gallery, probe engine.Embedding, k int) ([]engine.Match, error) {
	e.mu.RLock()
	m := e.galleries[galleryKey{g.Tenant, g.Version, len(probe)}]
	e.mu.RUnlock()
	if m == nil || k <= 0 {
		return nil, nil
	}
	return m.scans.Do(ctx, query{probe, k})
}

// batchProbes is how many probes NearestBatch scores per pass.
const batchProbes = 256

// NearestBatch is Nearest for each probe, keeping only matches scoring at
// least atLeast (−∞: all), scored batchProbes per pass over the rows,
// without waiting for other searches' batches and without the pre-pass
// (its callers, enroll and import deduplication, mostly search for persons
// not stored, which the pre-pass cannot settle). A row that cannot reach
// atLeast is never re-scored, and a high atLeast lets the scan read most
// rows' head only (see int8Scanner).
func (e *Exact) NearestBatch(ctx context.Context, g engine.Gallery, probes []engine.Embedding, k int, atLeast float64) ([][]engine.Match, error) {
	out := make([][]engine.Match, len(probes))
	for start := 0; start < len(probes); start += batchProbes {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		byDim := map[int][]int{} // probe indexes by dimension
		for i := start; i < min(start+batchProbes, len(probes)); i++ {
			byDim[len(probes[i])] = append(byDim[len(probes[i])], i)
		}
		for dim, idx := range byDim {
			e.mu.RLock()
			m := e.galleries[galleryKey{g.Tenant, g.Version, dim}]
			e.mu.RUnlock()
			if m == nil || k <= 0 {
				continue
			}
			qs := make([]query, len(idx))
			for j, i := range idx {
				qs[j] = query{probes[i], k}
			}
			for j, res := range m.search(qs, atLeast, e.workers) {
				out[idx[j]] = res
			}
		}
	}
	return out, nil
}

var _ engine.PairsFunc = BatchPairs

// BatchPairs implements engine.PairsFunc: the probes are the rows of an
// index of their own, searched with all of them at once (each row read
// once per batchProbes probes, heads first above headMin).
func BatchPairs(ctx context.Context, probes []engine.Embedding, atLeast float64) ([][]engine.Match, error) {
	e := NewExact(ExactConfig{})
	rows := make([]Row, len(probes))
	for i, p := range probes {
		rows[i] = Row{TemplateID: int64(i), PersonID: int64(i) + 1, Embedding: p}
	}
	e.Add(rows...)
	out, err := e.NearestBatch(ctx, engine.Gallery{}, probes, len(probes), atLeast)
	if err != nil {
		return nil, err
	}
	for i, ms := range out {
		earlier := ms[:0]
		for _, m := range ms {
			if m.TemplateID < int64(i) {
				earlier = append(earlier, engine.Match{TemplateID: m.TemplateID, Score: m.Score})
			}
		}
		out[i] = earlier
	}
	return out, nil
}

// newMatrix returns an empty matrix of one gallery and dimension.
func (e *Exact) newMatrix(dim int) *matrix {
	m := &matrix{dim: dim, int8: e.useInt8, row: map[int64]int{}, templates: map[int64][]int64{}}
	if m.int8 && dim >= 2*prefixMin && !e.noPrePass {
		m.prefix = dim / 2 &^ (prefixMin - 1)
	}
	switch {
	case m.int8 && dim >= 4*prefixMin && dim%4 == 0 && kernel.HasTiles && !e.noTiles:
		m.head = dim * tileHeadSixteenths / 16 &^ (kernel.TileRows - 1)
		m.tiles = &tileStore{width: dim}
	case m.int8 && dim >= 4*prefixMin:
		m.head = dim * 3 / 4 &^ (prefixMin - 1)
	}
	m.scans = batch.New(e.maxBatch, func(qs []query) [][]engine.Match { return m.identify(qs, e.workers) })
	if e.window > 0 {
		m.scans.Window(windowScale, e.window)
	}
	return m
}

// ---- one gallery ----

// matrix holds one gallery's rows of one dimension.
type matrix struct {
	mu      sync.RWMutex
	dim     int
	f32     [][]float32   // rows back to back, in chunks (see chunkRows)
	ids     []int64       // template id per row
	persons []int64       // person id per row
	row     map[int64]int // row index per template id
	// templates lists each person's template ids, so a person's rows are
	// found without a pass over the matrix.
	templates map[int64][]int64

	// scans answers queries several per pass: those that arrive while a
	// pass runs wait, and the next pass takes them together (up to the
	// Exact's MaxBatch), reading each row once for all.
	scans *batch.Combiner[query, []engine.Match]

	int8 bool
	i8   [][]int8  // per-row scaled copy, when int8 without tiles, in chunks like f32
	inv  []float32 // 1/scale of each int8 row
	res  []float32 // ‖x − x̃‖ of each row (x̃ = dequantised), rounded up
	qn   []float32 // ‖x̃‖ of each row, rounded up
	// head is how many leading values of each int8 row a search for
	// matches above a high score reads first (0: none), and suf holds
	// ‖x_R‖ of each row, the norm of the values past head, rounded up (see
	// int8Scanner).
	head int
	suf  []float32
	// tiles holds the int8 rows for the tile kernels instead of i8, where
	// the CPU has them (nil otherwise): every int8 scan reads those (the
	// dedup search their heads, identify's pre-pass their prefixes), and
	// scratch is a row put and removePerson write through.
	tiles   *tileStore
	scratch []int8
	// blocks bounds inv, res, qn and suf over each block of blockRows rows
	// (block b: rows b·blockRows up to the next block's), so a scan sets
	// its skip floors without reading them (see int8Scanner).
	blocks []rowBounds

	// prefix is how many leading values the identify pre-pass scores (0:
	// no pre-pass). Without tiles, pre holds them again, rows back to back
	// in chunks like i8, so the pre-pass reads half the bytes (with tiles
	// it reads the tiles' first prefix values: see tilePrefixScanner).
	// maxRes, maxQn and maxSuf bound res, qn and the norm of the values
	// past prefix over every row ever put (they never shrink, so they stay
	// upper bounds).
	// tried and proved count the probes the pre-pass answered alone, for
	// deciding whether to try it.
	prefix                 int
	pre                    [][]int8
	maxRes, maxQn, maxSuf  float32
	tried, proved, skipped atomic.Int64
}

// rowBounds bounds the inv, res, qn and suf of a block's rows from above.
type rowBounds struct{ inv, res, qn, suf float32 }

const rowIDBytes = 8 + 8 + 16 + 24 // ids, persons, map entries (approximate)

// copiesPrefix reports whether the pre-pass reads its own copy of each
// row's prefix, pre: where there are no tiles to read it from.
func (m *matrix) copiesPrefix() bool { return m.prefix > 0 && m.tiles == nil }

func (m *matrix) rowBytes() int64 {
	b := int64(m.dim*4 + rowIDBytes)
	if m.int8 {
		b += 16 // inv, res, qn, suf
	}
	if m.int8 && m.tiles == nil {
		b += int64(m.dim)
	}
	if m.copiesPrefix() {
		b += int64(m.prefix)
	}
	if m.tiles != nil {
		b += int64(m.tiles.width + 16)
	}
	return b
}

func (m *matrix) len() int {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return len(m.ids)
}

// chunkRows is how many rows one chunk of a matrix's rows holds. A
// matrix grows by adding chunks, never by copying all its rows to a larger
// array: at 100k × 512 that copy took 320 MB of fresh memory under the write
// lock, and every search, enroll decision and read-your-writes refresh
// stalled behind it for about a second. A multiple of blockRows.
const chunkRows = 16 * blockRows

// growChunks makes room for one more row of dim values at the end of
// chunks: the last chunk grows (doubling, so a small gallery stays small)
// until it holds chunkRows rows; then a full-size chunk is added.
func growChunks[T int8 | float32](chunks [][]T, dim int) [][]T {
	if len(chunks) == 0 || len(chunks[len(chunks)-1]) == chunkRows*dim {
		size := 16
		if len(chunks) > 0 {
			size = chunkRows
		}
		return append(chunks, make([]T, dim, size*dim))
	}
	last := chunks[len(chunks)-1]
	if cap(last)-len(last) < dim {
		grown := make([]T, len(last), min(2*cap(last), chunkRows*dim))
		copy(grown, last)
		last = grown
	}
	chunks[len(chunks)-1] = last[:len(last)+dim]
	return chunks
}

// dropLastRow removes the last row of chunks (and its chunk once empty).
func dropLastRow[T int8 | float32](chunks [][]T, dim int) [][]T {
	last := chunks[len(chunks)-1]
	if len(last) == dim {
		return chunks[:len(chunks)-1]
	}
	chunks[len(chunks)-1] = last[:len(last)-dim]
	return chunks
}

// rowsOf returns rows [lo, hi) of chunks back to back; they lie in one
// chunk.
func rowsOf[T int8 | float32](chunks [][]T, dim, lo, hi int) []T {
	c, o := chunks[lo/chunkRows], lo%chunkRows
	return c[o*dim : (o+hi-lo)*dim : (o+hi-lo)*dim]
}

func (m *matrix) f32Row(i int) []float32 { return rowsOf(m.f32, m.dim, i, i+1) }
func (m *matrix) i8Row(i int) []int8     { return rowsOf(m.i8, m.dim, i, i+1) }
func (m *matrix) preRow(i int) []int8    { return rowsOf(m.pre, m.prefix, i, i+1) }

// blockEnd is where a kernel block starting at row start ends, before hi:
// within start's block of blockRows rows (so within its chunk).
func blockEnd(start, hi int) int {
	return min((start/blockRows+1)*blockRows, hi)
}

// raiseBounds raises row i's block bounds to cover the row (m.mu held).
func (m *matrix) raiseBounds(i int) {
	b := i / blockRows
	if b == len(m.blocks) {
		m.blocks = append(m.blocks, rowBounds{})
	}
	r := &m.blocks[b]
	r.inv, r.res, r.qn, r.suf = max(r.inv, m.inv[i]), max(r.res, m.res[i]), max(r.qn, m.qn[i]), max(r.suf, m.suf[i])
}

// setBounds sets block b's bounds from its rows, after a row of it
// changed or left, and drops the bounds of blocks past the last row (m.mu
// held).
func (m *matrix) setBounds(b int) {
	m.blocks = m.blocks[:min(len(m.blocks), (len(m.inv)+blockRows-1)/blockRows)]
	if b >= len(m.blocks) {
		return
	}
	m.blocks[b] = rowBounds{}
	for i := b * blockRows; i < min((b+1)*blockRows, len(m.inv)); i++ {
		m.raiseBounds(i)
	}
}

// reserve makes room for n more rows: the row lists grow once, and the
// first chunk to its full size (later chunks are allocated full).
func (m *matrix) reserve(n int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.ids = slices.Grow(m.ids, n)
	m.persons = slices.Grow(m.persons, n)
	if len(m.f32) == 0 && n > 0 {
		rows := min(n, chunkRows)
		m.f32 = [][]float32{make([]float32, 0, rows*m.dim)}
		if m.int8 && m.tiles == nil {
			m.i8 = [][]int8{make([]int8, 0, rows*m.dim)}
		}
		if m.copiesPrefix() {
			m.pre = [][]int8{make([]int8, 0, rows*m.prefix)}
		}
	}
	if m.int8 {
		m.inv, m.res, m.qn, m.suf = slices.Grow(m.inv, n), slices.Grow(m.res, n), slices.Grow(m.qn, n), slices.Grow(m.suf, n)
	}
}

// putAll adds or replaces rows (of this matrix) and returns the change in
// bytes.
func (m *matrix) putAll(rows []Row) int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	var n int64
	for _, r := range rows {
		n += m.put(r.TemplateID, r.PersonID, r.Embedding)
	}
	return n
}

// put adds or replaces a row and returns the change in bytes (m.mu held).
func (m *matrix) put(id, person int64, e engine.Embedding) int64 {
	if i, ok := m.row[id]; ok {
		copy(m.f32Row(i), e)
		if old := m.persons[i]; old != person {
			m.forget(old, id)
			m.templates[person] = append(m.templates[person], id)
		}
		m.persons[i] = person
		if m.int8 {
			x := m.int8Dst(i)
			m.inv[i], m.res[i], m.qn[i] = quantize(e, x)
			m.suf[i] = norm(e[m.head:])
			m.putTile(i, x)
			m.setBounds(i / blockRows)
			m.addToPrePass(i, e)
		}
		return 0
	}
	m.row[id] = len(m.ids)
	m.templates[person] = append(m.templates[person], id)
	i := len(m.ids)
	m.f32 = growChunks(m.f32, m.dim)
	copy(m.f32Row(i), e)
	m.ids = append(m.ids, id)
	m.persons = append(m.persons, person)
	if m.copiesPrefix() {
		m.pre = growChunks(m.pre, m.prefix)
	}
	if m.int8 {
		if m.tiles == nil {
			m.i8 = growChunks(m.i8, m.dim)
		}
		x := m.int8Dst(i)
		inv, res, qn := quantize(e, x)
		m.inv, m.res, m.qn = append(m.inv, inv), append(m.res, res), append(m.qn, qn)
		m.suf = append(m.suf, norm(e[m.head:]))
		m.putTile(i, x)
		m.raiseBounds(i)
		m.addToPrePass(i, e)
	}
	return m.rowBytes()
}

// int8Dst is where row i's int8 values are written (m.mu held): its row
// of i8, or, where the tiles keep the int8 rows, a scratch row that
// putTile copies.
func (m *matrix) int8Dst(i int) []int8 {
	if m.tiles == nil {
		return m.i8Row(i)
	}
	if m.scratch == nil {
		m.scratch = make([]int8, m.dim)
	}
	return m.scratch
}

// putTile writes row i's int8 values x and its bounds to the tiles, if
// any (m.mu held).
func (m *matrix) putTile(i int, x []int8) {
	if m.tiles != nil {
		m.tiles.put(i, x, m.inv[i], m.res[i], m.qn[i], m.suf[i])
	}
}

// addToPrePass copies row i's int8 prefix for the pre-pass and raises the
// matrix-wide bounds the pre-pass relies on to cover the row, whose
// float32 values are e (m.mu held).
func (m *matrix) addToPrePass(i int, e engine.Embedding) {
	m.maxRes, m.maxQn = max(m.maxRes, m.res[i]), max(m.maxQn, m.qn[i])
	if m.prefix > 0 {
		m.maxSuf = max(m.maxSuf, norm(e[m.prefix:]))
	}
	if m.copiesPrefix() {
		copy(m.preRow(i), m.i8Row(i))
	}
}

// norm is ‖x‖, rounded up.
func norm(x []float32) float32 {
	var s float64
	for _, v := range x {
		s += float64(v) * float64(v)
	}
	return float32(math.Sqrt(s)*(1+1e-6) + 1e-9)
}

// removePerson swap-removes the person's rows and returns the change in bytes.
func (m *matrix) removePerson(person int64) int64 { return m.removePersonExcept(person, nil) }

// removePersonExcept swap-removes the person's rows whose template id is
// not in keep and returns the change in bytes.
func (m *matrix) removePersonExcept(person int64, keep map[int64]bool) int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	var removed int64
	var kept []int64
	for _, id := range m.templates[person] {
		if keep[id] {
			kept = append(kept, id)
			continue
		}
		i, last := m.row[id], len(m.ids)-1
		delete(m.row, id)
		if i != last {
			copy(m.f32Row(i), m.f32Row(last))
			m.ids[i], m.persons[i] = m.ids[last], m.persons[last]
			m.row[m.ids[i]] = i
			if m.int8 {
				m.inv[i], m.res[i], m.qn[i], m.suf[i] = m.inv[last], m.res[last], m.qn[last], m.suf[last]
				if m.tiles != nil {
					m.putTile(i, m.tiles.row(last, m.int8Dst(i)))
				} else {
					copy(m.i8Row(i), m.i8Row(last))
				}
			}
			if m.copiesPrefix() {
				copy(m.preRow(i), m.preRow(last))
			}
		}
		m.f32, m.ids, m.persons = dropLastRow(m.f32, m.dim), m.ids[:last], m.persons[:last]
		if m.int8 {
			m.inv, m.res, m.qn, m.suf = m.inv[:last], m.res[:last], m.qn[:last], m.suf[:last]
			if m.tiles != nil {
				m.tiles.drop(last)
			} else {
				m.i8 = dropLastRow(m.i8, m.dim)
			}
			m.setBounds(i / blockRows)
			m.setBounds(last / blockRows)
		}
		if m.copiesPrefix() {
			m.pre = dropLastRow(m.pre, m.prefix)
		}
		removed -= m.rowBytes()
	}
	if len(kept) == 0 {
		delete(m.templates, person)
	} else {
		m.templates[person] = kept
	}
	return removed
}

// forget drops template id from the person's list (the row stays).
func (m *matrix) forget(person, id int64) {
	ids := slices.DeleteFunc(m.templates[person], func(x int64) bool { return x == id })
	if len(ids) == 0 {
		delete(m.templates, person)
	} else {
		m.templates[person] = ids
	}
}

// quantize writes x scaled to ±127 into dst and returns 1/scale, the norm
// of the rounding residual and the norm of the dequantised vector, both
// rounded up so the search's error bound stays an upper bound.
func quantize(x []float32, dst []int8) (inv, res, qn float32) {
	var maxAbs float64
	for _, v := range x {
		maxAbs = max(maxAbs, math.Abs(float64(v)))
	}
	if maxAbs == 0 {
		clear(dst)
		return 0, 0, 0
	}
	scale := 127 / maxAbs
	var r2, n2 float64
	for i, v := range x {
		q := math.Round(float64(v) * scale)
		dst[i] = int8(q)
		d := q / scale
		r2 += (float64(v) - d) * (float64(v) - d)
		n2 += d * d
	}
	up := func(f float64) float32 { return float32(f*(1+1e-6) + 1e-9) }
	return float32(1 / scale), up(math.Sqrt(r2)), up(math.Sqrt(n2))
}

// ---- search ----

// f32Slack bounds |float32 kernel − Dot64| for unit vectors of ≤ 512
// dimensions: n·u·Σ|xᵢqᵢ| ≤ 512·2⁻²⁴ ≈ 3·10⁻⁵, with margin.
const f32Slack = 2e-4

// parallelMin is the gallery size from which a search uses every worker.
const parallelMin = 32768

// prefixMin is the shortest prefix the identify pre-pass scores, one step
// of the VNNI kernel: a matrix of dim ≥ 2·prefixMin has a pre-pass over
// its first half, rounded down to a multiple of prefixMin.
const prefixMin = 64

// blockRows is how many rows a kernel call scores at once: 128 KiB of
// int8 rows of 512 values, which stay in the core's cache while the batch
// kernels pass over them once per group of probes.
const blockRows = 256

type candidate struct {
	row   int
	upper float64
}

// selector keeps, for one part of the scan, the k largest lower bounds
// and every row whose upper bound reached the k-th lower bound (and
// atLeast) when seen.
type selector struct {
	k       int
	atLeast float64   // the lowest score asked for (−∞: any)
	lower   []float64 // min-heap of the k largest lower bounds
	cands   []candidate
}

// floor is the upper bound below which a row is not offered: atLeast, or
// the k-th largest lower bound once k rows were offered, if higher.
func (s *selector) floor() float64 {
	if len(s.lower) < s.k {
		return s.atLeast
	}
	return max(s.lower[0], s.atLeast)
}

func (s *selector) offer(row int, lo, hi float64) {
	if len(s.lower) < s.k {
		s.cands = append(s.cands, candidate{row, hi})
		s.lower = append(s.lower, lo)
		up(s.lower, len(s.lower)-1)
		return
	}
	if hi < s.lower[0] {
		return
	}
	s.cands = append(s.cands, candidate{row, hi})
	if lo > s.lower[0] {
		s.lower[0] = lo
		down(s.lower, 0)
	}
}

func up(h []float64, i int) {
	for i > 0 {
		p := (i - 1) / 2
		if h[p] <= h[i] {
			return
		}
		h[p], h[i] = h[i], h[p]
		i = p
	}
}

func down(h []float64, i int) {
	for {
		l, small := 2*i+1, i
		if l < len(h) && h[l] < h[small] {
			small = l
		}
		if r := l + 1; r < len(h) && h[r] < h[small] {
			small = r
		}
		if small == i {
			return
		}
		h[i], h[small] = h[small], h[i]
		i = small
	}
}

// query is one probe of a batch and its k.
type query struct {
	probe engine.Embedding
	k     int
}

// search returns, for each query, the k best rows by Dot64 scoring at
// least atLeast, ties by template id, in one pass over the rows.
func (m *matrix) search(qs []query, atLeast float64, workers int) [][]engine.Match {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.scanAll(qs, atLeast, workers)
}

// identify is search for the identify path: where the pre-pass has been
// answering most probes of this gallery on its own, it runs first and
// only the probes it could not settle are scanned in full.
func (m *matrix) identify(qs []query, workers int) [][]engine.Match {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if !m.preferPrefix() {
		return m.scanAll(qs, math.Inf(-1), workers)
	}
	out, open := m.scanPrefix(qs, workers)
	m.tried.Add(int64(len(qs)))
	m.proved.Add(int64(len(qs) - len(open)))
	if len(open) > 0 {
		rest := make([]query, len(open))
		for i, j := range open {
			rest[i] = qs[j]
		}
		for i, res := range m.scanAll(rest, math.Inf(-1), workers) {
			out[open[i]] = res
		}
	}
	return out
}

// preferPrefix reports whether identify should run the pre-pass. It costs
// about half a full scan and saves the other half when it settles a probe,
// so it pays while it settles more than half: it runs at first, while it
// settles at least 60 % of recent probes (the counts halve now and then,
// so recent probes weigh most), and otherwise on every 32nd batch, so a
// change in a gallery's probes is noticed. Small galleries, scanned by
// one worker, never use it.
func (m *matrix) preferPrefix() bool {
	if m.prefix == 0 || len(m.ids) < parallelMin {
		return false
	}
	tried, proved := m.tried.Load(), m.proved.Load()
	if tried > 4096 {
		m.tried.Store(tried / 2)
		m.proved.Store(proved / 2)
	}
	return tried < 64 || 5*proved >= 3*tried || m.skipped.Add(1)%32 == 0
}

// headMin is the lowest atLeast for which a search reads rows' heads
// first: below it, a head rarely proves that its row cannot reach
// atLeast, and finishing rows costs more than the head saves.
const headMin = 0.4

// scanAll answers each query, keeping matches scoring at least atLeast,
// with one pass over every row: all its values, or its head and then the
// rest where the head cannot rule it out (m.mu held).
func (m *matrix) scanAll(qs []query, atLeast float64, workers int) [][]engine.Match {
	out := make([][]engine.Match, len(qs))
	if len(m.ids) == 0 {
		return out
	}
	var scan func(sels []selector, lo, hi int)
	switch {
	case m.tiles != nil && atLeast >= headMin:
		scan = m.tileScanner(scaleProbes(qs), qs)
	case m.tiles != nil:
		scan = m.tileFullScanner(scaleProbes(qs))
	case m.head > 0 && atLeast >= headMin:
		scan = m.int8Scanner(scaleProbes(qs), qs, m.i8, m.dim, m.head, true)
	case m.int8:
		scan = m.int8Scanner(scaleProbes(qs), qs, m.i8, m.dim, m.dim, true)
	default:
		scan = m.f32Scanner(qs)
	}
	sels := m.scanParts(qs, atLeast, workers, scan)
	for j, q := range qs {
		_, cands := candidates(sels, j, q.k)
		rows := make([]int, len(cands))
		for i, c := range cands {
			rows[i] = c.row
		}
		out[j] = engine.AtLeast(m.best(m.narrowF32(rows, q), q), atLeast)
	}
	return out
}

// scanParts runs scan over the rows in parts (one per worker for a large
// gallery) and returns each part's selectors, one per query, asking for
// scores of at least atLeast (m.mu held).
func (m *matrix) scanParts(qs []query, atLeast float64, workers int, scan func(sels []selector, lo, hi int)) [][]selector {
	n := len(m.ids)
	parts := 1
	if n >= parallelMin {
		parts = workers
	}
	sels := make([][]selector, parts)
	var wg sync.WaitGroup
	// Parts begin on a block (see blockEnd), so none has a partial block.
	split := func(p int) int {
		if p == parts {
			return n
		}
		return n * p / parts / blockRows * blockRows
	}
	for p := range parts {
		sels[p] = make([]selector, len(qs))
		for j, q := range qs {
			sels[p][j] = selector{k: q.k, atLeast: atLeast}
		}
		lo, hi := split(p), split(p+1)
		if parts == 1 {
			scan(sels[p], lo, hi)
		} else {
			wg.Go(func() { scan(sels[p], lo, hi) })
		}
	}
	wg.Wait()
	return sels
}

// candidates returns the k-th largest lower bound of query j over all
// parts (−∞ when fewer than k rows were offered) and the rows whose upper
// bound reaches it: every row of the true top k is among them, and every
// other row's upper bound is below it.
func candidates(sels [][]selector, j, k int) (float64, []candidate) {
	var lowers []float64
	for p := range sels {
		lowers = append(lowers, sels[p][j].lower...)
	}
	threshold := math.Inf(-1)
	if len(lowers) >= k {
		slices.SortFunc(lowers, func(a, b float64) int { return cmp.Compare(b, a) })
		threshold = lowers[k-1]
	}
	var out []candidate
	for p := range sels {
		for _, c := range sels[p][j].cands {
			if c.upper >= threshold {
				out = append(out, c)
			}
		}
	}
	return threshold, out
}

// best scores rows by Dot64 and returns the query's k best, ties by
// template id.
func (m *matrix) best(rows []int, q query) []engine.Match {
	res := make([]engine.Match, len(rows))
	for i, r := range rows {
		res[i] = engine.Match{TemplateID: m.ids[r], PersonID: m.persons[r],
			Score: kernel.Dot64(m.f32Row(r), q.probe)}
	}
	slices.SortFunc(res, engine.CompareMatches)
	return res[:min(q.k, len(res))]
}

// prefixExtra is how many rows past its k the pre-pass keeps for each
// query: enough for a returning person's other templates, whose prefix
// products are high too.
const prefixExtra = 16

// scanPrefix answers the queries it can from the first m.prefix values of
// each row (m.mu held). For each query it keeps the k+prefixExtra rows of
// largest prefix product (estimated from the int8 rows) and scores them
// exactly, in that order, until it can prove that no row left can beat
// the k-th score so far: a row x whose estimated prefix product is at
// most t scores at most t + the int8 error of the prefix + ‖x_R‖‖q_R‖
// (Cauchy–Schwarz on the rest, R), bounded over the whole matrix. When a
// probe has a clear best match (a returning person) the proof holds after
// half a scan; otherwise the query's index is returned in open, for a
// full scan.
func (m *matrix) scanPrefix(qs []query, workers int) (out [][]engine.Match, open []int) {
	out = make([][]engine.Match, len(qs))
	wide := make([]query, len(qs))
	for j, q := range qs {
		wide[j] = query{q.probe, q.k + prefixExtra}
	}
	scaled := scaleProbes(qs)
	scan := m.tilePrefixScanner(scaled)
	if m.copiesPrefix() {
		scan = m.int8Scanner(scaled, qs, m.pre, m.prefix, m.prefix, false)
	}
	sels := m.scanParts(wide, math.Inf(-1), workers, scan)
	for j, q := range qs {
		floor, cands := candidates(sels, j, wide[j].k) // lower = upper: the estimate
		slices.SortFunc(cands, func(a, b candidate) int { return cmp.Compare(b.upper, a.upper) })
		rest := int8Error(m.maxRes, m.maxQn, &scaled[j]) + float64(m.maxSuf)*float64(norm(q.probe[m.prefix:]))
		var scored []engine.Match
		for i, c := range cands {
			scored = append(scored, engine.Match{TemplateID: m.ids[c.row], PersonID: m.persons[c.row],
				Score: kernel.Dot64(m.f32Row(c.row), q.probe)})
			if len(scored) < q.k {
				continue
			}
			// next is the largest prefix product of a row not scored (−∞
			// once every row is).
			next := floor
			if i+1 < len(cands) {
				next = cands[i+1].upper
			}
			slices.SortFunc(scored, engine.CompareMatches)
			if next+rest < scored[q.k-1].Score {
				out[j] = scored[:q.k]
				break
			}
		}
		if out[j] == nil {
			open = append(open, j)
		}
	}
	return out, open
}

// narrowF32 keeps, of rows (a superset of the query's top k), those whose
// float32 score is within the float32 error bound of the k-th largest:
// the others cannot be in the top k. The float32 kernel is an order of
// magnitude faster than Dot64, which then scores only the rows kept.
func (m *matrix) narrowF32(rows []int, q query) []int {
	if len(rows) <= q.k {
		return rows
	}
	scores := make([]float32, len(rows))
	for i, r := range rows {
		scores[i] = kernel.DotF32(m.f32Row(r), q.probe)
	}
	sorted := slices.Clone(scores)
	slices.Sort(sorted)
	threshold := float64(sorted[len(sorted)-q.k]) - f32Slack
	kept := rows[:0]
	for i, r := range rows {
		if float64(scores[i])+f32Slack >= threshold {
			kept = append(kept, r)
		}
	}
	return kept
}

// f32Scanner scores rows [lo, hi) against every query in float32 (gonum:
// SGEMV for one probe, SGEMM for several) and offers each row to each
// query's selector with the float32 error bound.
func (m *matrix) f32Scanner(qs []query) func(sels []selector, lo, hi int) {
	nq := len(qs)
	probes := make([]float32, 0, nq*m.dim)
	for _, q := range qs {
		probes = append(probes, q.probe...)
	}
	return func(sels []selector, lo, hi int) {
		buf := make([]float32, blockRows*nq)
		for start, end := lo, 0; start < hi; start = end {
			end = blockEnd(start, hi)
			scores := buf[:(end-start)*nq]
			if nq == 1 {
				kernel.DotsF32(rowsOf(m.f32, m.dim, start, end), m.dim, probes, scores)
			} else {
				kernel.DotsF32Batch(rowsOf(m.f32, m.dim, start, end), m.dim, probes, scores)
			}
			for j := range sels {
				s := &sels[j]
				floor := s.floor()
				for i := range end - start {
					a := float64(scores[i*nq+j])
					if a+f32Slack < floor {
						continue
					}
					s.offer(start+i, a-f32Slack, a+f32Slack)
					floor = s.floor()
				}
			}
		}
	}
}

// scaledProbe is a probe scaled for the int8 kernels.
type scaledProbe struct {
	q16      []int16
	inv, res float64 // 1/scale and ‖q − q̃‖ (q̃ = dequantised), rounded up
}

func scaleProbes(qs []query) []scaledProbe {
	out := make([]scaledProbe, len(qs))
	for j, q := range qs {
		out[j].q16, out[j].inv, out[j].res = quantizeProbe(q.probe)
	}
	return out
}

// int8Scanner scores rows [lo, hi) of rows (m.i8, or m.pre for the
// pre-pass; rows of stride values) on their first n values against every
// probe's first n, with the int8 kernel (each row read once for the whole
// batch). bounded: it offers each row to each query's selector with its
// proven error bound; otherwise with the estimate alone as both bounds
// (the pre-pass, which bounds the error itself).
//
// n < stride (bounded, n = m.head) scores each row's head first, for
// searches of matches above a high score (at least headMin): a row whose
// head product h cannot reach its query's floor even with the rest's
// largest possible product, h + int8 error + ‖x_R‖‖q_R‖ (Cauchy–Schwarz on
// the rest, R), is never looked at again; the others are finished in int8.
// For unit vectors of 512 values (head 384) and a floor near 0.5, that
// rules out all but a handful of rows in a million.
func (m *matrix) int8Scanner(ps []scaledProbe, qs []query, rows [][]int8, stride, n int, bounded bool) func(sels []selector, lo, hi int) {
	nq := len(ps)
	probes, firsts := packProbes(ps, n)
	ng := probes.Groups()
	var qSuf []float64 // ‖q_R‖ of each probe, rounded up, when scoring heads
	if n < stride {
		qSuf = make([]float64, nq)
		for j, q := range qs {
			qSuf[j] = float64(norm(q.probe[n:]))
		}
	}
	return func(sels []selector, lo, hi int) {
		buf := make([]int32, blockRows*nq)
		mask := make([]uint8, blockRows*ng)
		floor := make([]int32, nq)
		for start, end := lo, 0; start < hi; start = end {
			end = blockEnd(start, hi)
			block := m.blocks[start/blockRows]
			// The kernel flags the products at or above each query's
			// skip floor as the block starts; the rest (most rows) are
			// never looked at. Floors only rise as rows are offered, so a
			// flag is checked again against the query's current floor.
			for j, p := range ps {
				room := sels[j].floor()
				if bounded {
					room -= int8Error(block.res, block.qn, &p)
				}
				if qSuf != nil {
					room -= float64(block.suf) * qSuf[j]
				}
				floor[j] = skipFloor(room, block.inv, p.inv)
			}
			dots := buf[:(end-start)*nq]
			kernel.DotsI8(rowsOf(rows, stride, start, end), stride, probes, floor, dots, mask[:(end-start)*ng])
			for i, j := range flagged(mask[:(end-start)*ng], ng, firsts) {
				s, r, p := &sels[j], start+i, &ps[j]
				inv := float64(m.inv[r]) * p.inv
				var b float64
				if bounded {
					b = int8Error(m.res[r], m.qn[r], p)
				}
				d := dots[i*nq+j]
				if qSuf != nil {
					if float64(d)*inv+b+float64(m.suf[r])*qSuf[j] < s.floor() {
						continue
					}
					d += dotI8(m.i8Row(r)[n:], p.q16[n:stride])
				}
				a := float64(d) * inv
				if a+b < s.floor() {
					continue
				}
				s.offer(r, a-b, a+b)
			}
		}
	}
}

// tileHeadSixteenths is the head of the tile scan, in sixteenths of a
// row. The tile kernels bound each row on its own, not by its block's
// largest bounds as int8Scanner does, so a shorter head rules out as many
// rows: for unit vectors of 512 values and a floor near 0.5, a stranger's
// 352-value head must reach about 0.15 (four standard deviations) to be
// looked at again. 10/16 flags about one row in 200, each scored in Go,
// and ran at a fifth of the speed; 12/16 reads 9 % more for nothing
// (BenchmarkExactDedupBatch).
const tileHeadSixteenths = 11

// tileScanner is int8Scanner's head scan (n = m.head, bounded) on the
// tiles: the kernel flags each row whose head product, int8 error and
// ‖x_R‖‖q_R‖ may reach its query's floor (each row with its own bounds);
// a flagged row is scored whole in int8 and offered with its int8 error
// bound. Only for floors of at least headMin. Few rows are flagged (about
// 2 in 10⁵ of a stranger's), so the kernel keeps no products.
func (m *matrix) tileScanner(ps []scaledProbe, qs []query) func(sels []selector, lo, hi int) {
	suf := make([]float64, len(ps))
	for j, q := range qs {
		suf[j] = float64(norm(q.probe[m.head:]))
	}
	return m.tileOffers(newTileProbes(ps, m.head, true, suf), 1e-6, false, func(s *selector, j, r int, _ int32) {
		q := &ps[j]
		a := float64(dotI8(m.tiles.row(r, make([]int8, m.dim)), q.q16[:m.dim])) * float64(m.inv[r]) * q.inv
		if b := int8Error(m.res[r], m.qn[r], q); a+b >= s.floor() {
			s.offer(r, a-b, a+b)
		}
	})
}

// tileFullScanner is int8Scanner's full scan (every value, bounded) on
// the tiles: the kernel flags each row whose int8 product and error bound
// may reach its query's floor (each row with its own bounds, where
// int8Scanner's skip floors take its block's largest); a flagged row is
// offered with its error bound.
func (m *matrix) tileFullScanner(ps []scaledProbe) func(sels []selector, lo, hi int) {
	return m.tileOffers(newTileProbes(ps, m.dim, true, nil), 1e-6, true, func(s *selector, j, r int, d int32) {
		a := float64(d) * (float64(m.inv[r]) * ps[j].inv)
		if b := int8Error(m.res[r], m.qn[r], &ps[j]); a+b >= s.floor() {
			s.offer(r, a-b, a+b)
		}
	})
}

// tilePrefixScanner is the pre-pass's scan (see scanPrefix) on the tiles'
// first m.prefix values: like int8Scanner's for the pre-pass (the same
// int8 values: the same estimates), it offers each row's estimated prefix
// product as both bounds where it reaches the query's floor. The kernel
// flags a row when its estimate plus the row's int8 error res may.
func (m *matrix) tilePrefixScanner(ps []scaledProbe) func(sels []selector, lo, hi int) {
	return m.tileOffers(newTileProbes(ps, m.prefix, false, nil), 0, true, func(s *selector, j, r int, d int32) {
		inv := float64(m.inv[r]) * ps[j].inv
		if a := float64(d) * inv; a >= s.floor() {
			s.offer(r, a, a)
		}
	})
}

// tileOffers scans rows [lo, hi) of the tiles against probes, whose flags
// ask for each query's floor less margin as a block starts (floors only
// rise, so offer checks the current one), and calls offer with each
// flagged row r of query j and, with products, its product d (else 0).
func (m *matrix) tileOffers(probes *kernel.TileProbes, margin float64, products bool, offer func(s *selector, j, r int, d int32)) func(sels []selector, lo, hi int) {
	nq := probes.Len()
	return func(sels []selector, lo, hi int) {
		p := probes.Floored()
		mask := make([]uint16, blockRows/kernel.TileRows*nq)
		var dots []int32
		if products {
			dots = make([]int32, blockRows*nq)
		}
		for start, end := lo, 0; start < hi; start = end {
			end = blockEnd(start, hi)
			data, bounds, tiles := m.tiles.block(start, end)
			p.SetFloors(func(j int) float64 { return sels[j].floor() - margin })
			if products {
				kernel.DotsTilesOut(data, m.tiles.width, bounds, tiles, p, mask[:tiles*nq], dots[:tiles*nq*kernel.TileRows])
			} else {
				kernel.DotsTiles(data, m.tiles.width, bounds, tiles, p, mask[:tiles*nq])
			}
			for w, flags := range mask[:tiles*nq] {
				for ; flags != 0; flags &= flags - 1 {
					bit := mathbits.TrailingZeros16(flags)
					r := start + w/nq*kernel.TileRows + bit
					if r >= end {
						continue
					}
					var d int32
					if products {
						d = dots[w*kernel.TileRows+bit]
					}
					offer(&sels[w%nq], w%nq, r, d)
				}
			}
		}
	}
}

// newTileProbes lays out the first n values of ps for the tile kernels,
// with each probe's res_q its int8 error where withRes (else 0) and its
// suf_q from suf (nil: 0).
func newTileProbes(ps []scaledProbe, n int, withRes bool, suf []float64) *kernel.TileProbes {
	q16s, inv, res := make([][]int16, len(ps)), make([]float64, len(ps)), make([]float64, len(ps))
	for j, p := range ps {
		q16s[j], inv[j] = p.q16[:n], p.inv
		if withRes {
			res[j] = p.res
		}
	}
	if suf == nil {
		suf = make([]float64, len(ps))
	}
	return kernel.NewTileProbes(q16s, n, inv, res, suf)
}

// int8Error bounds |x·q − x̃·q̃| for a unit probe q scaled as p and a row
// x whose rounding residual and dequantised norm are at most res and qn:
// x·q − x̃·q̃ = (x−x̃)·q + x̃·(q−q̃), so the error is at most ‖x−x̃‖‖q‖ +
// ‖x̃‖‖q−q̃‖, plus a margin for the float64 sum.
func int8Error(res, qn float32, p *scaledProbe) float64 {
	return float64(res) + float64(qn)*p.res + 1e-6
}

// packProbes lays out the first n values of each probe for the int8
// kernel and returns them with the first query of each mask byte.
func packProbes(ps []scaledProbe, n int) (*kernel.Probes, []int) {
	q16s := make([][]int16, len(ps))
	for j, p := range ps {
		q16s[j] = p.q16[:n]
	}
	probes := kernel.NewProbes(q16s, n)
	firsts := make([]int, probes.Groups())
	for g := range firsts {
		firsts[g], _ = probes.Group(g)
	}
	return probes, firsts
}

// skipFloor is the int8 product at or under which a row cannot reach room
// (a score, less the error terms the caller bounds) even with the largest
// row scale inv of its block; probe scale qInv.
func skipFloor(room float64, inv float32, qInv float64) int32 {
	if room <= 0 || inv <= 0 || qInv <= 0 {
		return math.MinInt32
	}
	return int32(min(room/(float64(inv)*qInv)*(1-1e-9)-1, math.MaxInt32)) - 1
}

// flagged yields the (row, query) pairs whose bit is set in a kernel's
// mask of ng bytes per row (see kernel.I8Func); firsts is each byte's
// first query. Most bytes are zero: they are read eight at a time.
func flagged(flags []uint8, ng int, firsts []int) iter.Seq2[int, int] {
	return func(yield func(int, int) bool) {
		for w := 0; w < len(flags); w += 8 {
			var word uint64
			if w+8 <= len(flags) {
				word = binary.LittleEndian.Uint64(flags[w:])
			} else {
				for b, v := range flags[w:] {
					word |= uint64(v) << (8 * b)
				}
			}
			for ; word != 0; word &= word - 1 {
				bit := mathbits.TrailingZeros64(word)
				if !yield((w+bit/8)/ng, firsts[(w+bit/8)%ng]+bit%8) {
					return
				}
			}
		}
	}
}

// dotI8 is x·q in integers.
func dotI8(x []int8, q []int16) int32 {
	q = q[:len(x)]
	var s int32
	for i, v := range x {
		s += int32(v) * int32(q[i])
	}
	return s
}

// quantizeProbe scales the probe to ±kernel.ProbeMax (int16 for the AVX2
// kernel, a byte's range for VNNI) and returns it with
// 1/scale and the residual norm, rounded up.
func quantizeProbe(q engine.Embedding) ([]int16, float64, float64) {
	var maxAbs float64
	for _, v := range q {
		maxAbs = max(maxAbs, math.Abs(float64(v)))
	}
	out := make([]int16, len(q))
	if maxAbs == 0 {
		return out, 0, 0
	}
	scale := float64(kernel.ProbeMax) / maxAbs
	var r2 float64
	for i, v := range q {
		x := math.Round(float64(v) * scale)
		out[i] = int16(x)
		d := float64(v) - x/scale
		r2 += d * d
	}
	return out, 1 / scale, math.Sqrt(r2)*(1+1e-6) + 1e-9
}

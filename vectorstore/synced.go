package vectorstore

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
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/biomatch/biomatch/engine"
	"github.com/biomatch/biomatch/postgres"
)

var (
	_ engine.Index    = (*Synced)(nil)
	_ engine.Follower = (*Synced)(nil)
	_ engine.Index    = (*Auto)(nil)
)

// Synced is an Exact kept current from PostgreSQL: loaded with binary COPY,
// then following every process's template changes (postgres.TemplatesChannel).
// Searches wait for the first load. With a memory budget, a Synced that
// outgrows it drops its rows and reports !Active, so Auto turns to pgvector.
type Synced struct {
	*Exact
	pool   *pgxpool.Pool
	cfg    ExactConfig
	vector bool
	budget int64 // bytes; 0 = no limit
	log    *slog.Logger

	loaded   chan struct{}
	loadOnce atomic.Bool
	over     atomic.Bool

	// people serialises the read-then-apply of one person's refreshes
	// (striped by person id): a read made before a delete can never be
	// applied after the delete's own (empty) read.
	people [64]sync.Mutex
	// reload is held shared by every refresh and exclusively by a full load
	// while it swaps in its snapshot; changed lists the persons refreshed
	// since that snapshot began (nil when no load runs), to refresh again
	// once it is in place.
	reload    sync.RWMutex
	changedMu sync.Mutex
	changed   map[int64]struct{}

	// seqMu guards seqs, each gallery's change sequence the index reflects
	// (from its load's snapshot, then from each change it applied), and
	// advanced, closed and replaced whenever one moves (WaitFor listens).
	seqMu    sync.Mutex
	seqs     map[engine.Gallery]int64
	advanced chan struct{}

	// own holds each gallery's last write committed by this process
	// (Committed) until the index has it: the rows its notification
	// announces, so they need not be read back from PostgreSQL.
	ownMu sync.Mutex
	own   map[engine.Gallery]ownWrite
}

// ownWrite is a committed transaction's new persons (postgres.OwnWrites):
// it moved its gallery from change sequence from to to.
type ownWrite struct {
	from, to int64
	rows     []postgres.NewTemplate
}

// Committed records a write of g this process committed (see
// postgres.OwnWrites): the next decision of g applies it at once
// (ApplyOwn), else the follower does when its notification arrives.
func (s *Synced) Committed(g engine.Gallery, from, to int64, rows []postgres.NewTemplate) {
	s.ownMu.Lock()
	defer s.ownMu.Unlock()
	if s.own == nil {
		s.own = map[engine.Gallery]ownWrite{}
	}
	s.own[g] = ownWrite{from, to, rows}
}

// takeOwn returns g's own write that moved it to seq, if it is the one
// recorded, and forgets writes up to seq.
func (s *Synced) takeOwn(g engine.Gallery, seq int64) (ownWrite, bool) {
	s.ownMu.Lock()
	defer s.ownMu.Unlock()
	w, ok := s.own[g]
	if ok && w.to <= seq {
		delete(s.own, g)
	}
	return w, ok && w.to == seq
}

// ApplyOwn applies this process's last committed write of g when g is
// still at that write's change sequence (seq, read under g's lock): then
// nothing else changed since, and the rows are g's current state
// (ApplyCommitted). Otherwise the write is left to the follower.
func (s *Synced) ApplyOwn(g engine.Gallery, seq int64) {
	s.ownMu.Lock()
	w, ok := s.own[g]
	s.ownMu.Unlock()
	if ok && w.to == seq {
		s.ApplyCommitted(g, w.from, w.to, w.rows)
	}
}

// NewSynced returns an empty Synced over the store's pool; Follow loads
// and keeps it current.
func NewSynced(store *PGVector, cfg ExactConfig, budget int64, log *slog.Logger) *Synced {
	return &Synced{Exact: NewExact(cfg), pool: store.pool, cfg: cfg, vector: store.HasVector(),
		budget: budget, log: log, loaded: make(chan struct{}), seqs: map[engine.Gallery]int64{}, advanced: make(chan struct{})}
}

// Active reports whether the index holds the galleries (not over budget).
func (s *Synced) Active() bool { return !s.over.Load() }

// Loaded reports whether the first load is done.
func (s *Synced) Loaded() bool {
	select {
	case <-s.loaded:
		return true
	default:
		return false
	}
}

// Nearest implements engine.Index, after the first load.
func (s *Synced) Nearest(ctx context.Context, g engine.Gallery, probe engine.Embedding, k int) ([]engine.Match, error) {
	select {
	case <-s.loaded:
	case <-ctx.Done():
		return nil, fmt.Errorf("%w: the in-memory index is still loading", engine.ErrUnavailable)
	}
	return s.Exact.Nearest(ctx, g, probe, k)
}

// PersonChanged implements engine.Follower: it reloads one person's rows
// (none left: the person is removed). Refreshes of one person are applied
// in the order their reads were made, so the last one applied reflects the
// latest committed state: a deleted person never comes back.
func (s *Synced) PersonChanged(ctx context.Context, personID int64) error {
	return s.refresh(ctx, s.pool, personID)
}

// refresh is PersonChanged reading through q: the follower reads on its own
// listening connection, so catching up never waits for the pool (which the
// enroll decisions waiting for it may hold).
func (s *Synced) refresh(ctx context.Context, q postgres.Querier, personID int64) error {
	if s.over.Load() {
		return nil
	}
	s.reload.RLock()
	defer s.reload.RUnlock()
	mu := &s.people[uint64(personID)%uint64(len(s.people))]
	mu.Lock()
	defer mu.Unlock()
	rows, err := q.Query(ctx, `SELECT id, tenant, version, embedding::real[] FROM templates WHERE person_id = $1`, personID)
	if err != nil {
		return postgres.Translate(err)
	}
	var out []Row
	var r Row
	var emb []float32
	_, err = pgx.ForEachRow(rows, []any{&r.TemplateID, &r.Gallery.Tenant, &r.Gallery.Version, &emb}, func() error {
		out = append(out, Row{TemplateID: r.TemplateID, PersonID: personID, Gallery: r.Gallery, Embedding: emb})
		return nil
	})
	if err != nil {
		return postgres.Translate(err)
	}
	s.SetPerson(personID, out)
	if s.changed != nil {
		s.changedMu.Lock()
		s.changed[personID] = struct{}{}
		s.changedMu.Unlock()
	}
	s.checkBudget()
	return nil
}

// refreshRange applies a bulk write's notification: it reads the gallery's
// templates in the change's id range (all of persons new in that write)
// and sets those persons' rows; a write of this process's it applies from
// memory, or not at all when the index has it already. It holds every
// person stripe, so no refresh of one of them (a delete's) can interleave
// its read and apply.
func (s *Synced) refreshRange(ctx context.Context, q postgres.Querier, ch postgres.Change) error {
	if s.over.Load() {
		return nil
	}
	s.reload.RLock()
	defer s.reload.RUnlock()
	g := engine.Gallery{Tenant: ch.Tenant, Version: ch.Version}
	own, isOwn := s.takeOwn(g, ch.Seq)
	if s.changed == nil && s.reflects(g, ch.Seq) {
		return nil // applied by this process's next decision of g (ApplyOwn)
	}
	defer s.lockEveryPerson()()
	if isOwn && s.changed == nil {
		// The rows this process wrote: every change before this one is
		// applied (notifications come in commit order), and a later
		// change's notification follows.
		s.Add(galleryRows(g, own.rows)...)
		s.checkBudget()
		return nil
	}
	// By the primary key (tenant, id) alone: with the version too, a
	// generic plan may read the whole gallery by its index; the tenant's
	// other galleries' rows in the range are skipped here.
	rows, err := q.Query(ctx, `SELECT id, person_id, tenant, version, embedding::real[] FROM templates
		WHERE tenant = $1 AND id BETWEEN $2 AND $3`, ch.Tenant, ch.FirstTemplate, ch.LastTemplate)
	if err != nil {
		return postgres.Translate(err)
	}
	byPerson := map[int64][]Row{}
	var r Row
	var emb []float32
	_, err = pgx.ForEachRow(rows, []any{&r.TemplateID, &r.PersonID, &r.Gallery.Tenant, &r.Gallery.Version, &emb}, func() error {
		if r.Gallery == g {
			byPerson[r.PersonID] = append(byPerson[r.PersonID], Row{TemplateID: r.TemplateID, PersonID: r.PersonID, Gallery: g, Embedding: emb})
		}
		return nil
	})
	if err != nil {
		return postgres.Translate(err)
	}
	var all []Row // persons new in that write: no rows to replace
	for _, rs := range byPerson {
		all = append(all, rs...)
	}
	s.Add(all...)
	if s.changed != nil {
		s.changedMu.Lock()
		for person := range byPerson {
			s.changed[person] = struct{}{}
		}
		s.changedMu.Unlock()
	}
	s.checkBudget()
	return nil
}

// ApplyCommitted adds the templates of persons new in a write that moved g
// from change sequence from to to, if the index reflects from but not yet
// to. The caller holds g's lock and saw g at to, so nothing changed between
// the write and now: the rows are g's committed state, and applying them
// early cannot bring back a person deleted since. The follower applies the
// same rows again when their notification arrives (a template id is
// replaced, not doubled).
func (s *Synced) ApplyCommitted(g engine.Gallery, from, to int64, rows []postgres.NewTemplate) {
	if s.over.Load() || !s.Loaded() {
		return
	}
	s.reload.RLock()
	defer s.reload.RUnlock()
	if s.changed != nil {
		return // a full load is running: it and the follower see to it
	}
	s.seqMu.Lock()
	have := s.seqs[g]
	s.seqMu.Unlock()
	if have < from || have >= to {
		return
	}
	defer s.lockEveryPerson()()
	s.Add(galleryRows(g, rows)...)
	s.reached(map[engine.Gallery]int64{g: to}, false)
	s.checkBudget()
}

// galleryRows are a write's new templates of g as rows of the index.
func galleryRows(g engine.Gallery, rows []postgres.NewTemplate) []Row {
	out := make([]Row, len(rows))
	for i, r := range rows {
		out[i] = Row{TemplateID: r.ID, PersonID: r.PersonID, Gallery: g, Embedding: r.Embedding}
	}
	return out
}

// lockEveryPerson takes every person stripe, so no refresh of one person
// interleaves its read and apply with a bulk change, and returns the unlock.
func (s *Synced) lockEveryPerson() (unlock func()) {
	for i := range s.people {
		s.people[i].Lock()
	}
	return func() {
		for i := range s.people {
			s.people[i].Unlock()
		}
	}
}

func (s *Synced) checkBudget() {
	if s.budget > 0 && s.vector && s.Bytes() > s.budget && !s.over.Swap(true) {
		s.log.Warn("in-memory index is over its memory budget: searching with pgvector instead",
			"bytes", s.Bytes(), "budget", s.budget)
		s.Reset()
	}
}

// Follow loads the index and applies template changes until ctx ends. It
// listens before loading, so no change falls between the two; after a lost
// connection it reconnects and loads everything again.
func (s *Synced) Follow(ctx context.Context) error {
	for ctx.Err() == nil {
		err := s.follow(ctx)
		if ctx.Err() != nil {
			return nil
		}
		s.log.Warn("template listener lost; reconnecting", "err", err)
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
	return nil
}

func (s *Synced) follow(ctx context.Context) error {
	pc, err := s.pool.Acquire(ctx)
	if err != nil {
		return err
	}
	conn := pc.Hijack()
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, "LISTEN "+postgres.TemplatesChannel); err != nil {
		return err
	}
	n, took, err := s.Load(ctx)
	if err != nil {
		return fmt.Errorf("load: %w", err)
	}
	s.log.Info("in-memory index loaded", "templates", n, "seconds", took.Seconds(), "bytes", s.Bytes(),
		"int8_prescan", s.Int8(), "active", s.Active())
	for {
		note, err := conn.WaitForNotification(ctx)
		if err != nil {
			return err
		}
		var ch postgres.Change
		if err := json.Unmarshal([]byte(note.Payload), &ch); err != nil {
			s.log.Warn("template change notification not understood", "err", err)
			continue
		}
		refresh := func() error { return s.refresh(ctx, conn, ch.PersonID) }
		if ch.PersonID == 0 && ch.LastTemplate > 0 {
			refresh = func() error { return s.refreshRange(ctx, conn, ch) }
		}
		if err := refresh(); err != nil {
			return err
		}
		s.reached(map[engine.Gallery]int64{{Tenant: ch.Tenant, Version: ch.Version}: ch.Seq}, false)
	}
}

// reached records the change sequences the index now reflects: raised to
// seqs (replaced, after a full load), and wakes WaitFor.
func (s *Synced) reached(seqs map[engine.Gallery]int64, replace bool) {
	s.seqMu.Lock()
	defer s.seqMu.Unlock()
	if replace {
		s.seqs = map[engine.Gallery]int64{}
	}
	for g, seq := range seqs {
		s.seqs[g] = max(s.seqs[g], seq)
	}
	close(s.advanced)
	s.advanced = make(chan struct{})
}

// reflects reports whether the index reflects every change of g up to seq.
func (s *Synced) reflects(g engine.Gallery, seq int64) bool {
	s.seqMu.Lock()
	defer s.seqMu.Unlock()
	return s.seqs[g] >= seq
}

// WaitFor waits until the index reflects every change of g up to seq (its
// change sequence, read under the gallery's lock), at most wait. It fails
// when the index is over its budget, or not there in time.
func (s *Synced) WaitFor(ctx context.Context, g engine.Gallery, seq int64, wait time.Duration) error {
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for {
		if s.over.Load() {
			return errors.New("the in-memory index is over its budget")
		}
		s.seqMu.Lock()
		have, advanced := s.seqs[g], s.advanced
		s.seqMu.Unlock()
		loaded := s.Loaded()
		if loaded && have >= seq {
			return nil
		}
		var loading <-chan struct{}
		if !loaded {
			loading = s.loaded
		}
		select {
		case <-advanced:
		case <-loading:
		case <-timer.C:
			return fmt.Errorf("the in-memory index reflects change %d of %s, not yet %d", have, g, seq)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// AwaitPerson implements engine.Follower: it returns once the person has
// rows in the index (applied from a notification, or from the worker's own
// commit), at once while the index does not serve searches (not loaded,
// or over its budget: searches go to PostgreSQL then), or when ctx ends.
func (s *Synced) AwaitPerson(ctx context.Context, personID int64) error {
	for {
		s.seqMu.Lock()
		advanced := s.advanced
		s.seqMu.Unlock()
		if s.over.Load() || !s.Loaded() || s.HasPerson(personID) {
			return nil
		}
		select {
		case <-advanced:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Load replaces the content with every template in PostgreSQL, read with
// one binary COPY, and returns how many it read and how long it took.
// Searches wait for the first Load to succeed.
func (s *Synced) Load(ctx context.Context) (int, time.Duration, error) {
	start := time.Now()
	fresh := NewExact(s.cfg)
	rows, err := s.pool.Query(ctx, `SELECT tenant, version, dim, count(*) FROM templates GROUP BY 1, 2, 3`)
	if err != nil {
		return 0, 0, postgres.Translate(err)
	}
	var g engine.Gallery
	var dim, count int
	var need int64
	_, err = pgx.ForEachRow(rows, []any{&g.Tenant, &g.Version, &dim, &count}, func() error {
		need += int64(count) * fresh.newMatrix(dim).rowBytes() // the layout the rows will have
		if s.budget == 0 || need <= s.budget || !s.vector {
			fresh.Reserve(g, dim, count)
		}
		return nil
	})
	if err != nil {
		return 0, 0, postgres.Translate(err)
	}
	if s.budget > 0 && need > s.budget && s.vector {
		s.over.Store(true)
		s.Exact.Reset()
		s.markLoaded()
		return 0, time.Since(start), nil
	}
	s.over.Store(false)
	s.reload.Lock()
	s.changed = map[int64]struct{}{}
	s.reload.Unlock()
	defer func() {
		s.reload.Lock()
		s.changed = nil
		s.reload.Unlock()
	}()

	pc, err := s.pool.Acquire(ctx)
	if err != nil {
		return 0, 0, postgres.Translate(err)
	}
	defer pc.Release()
	// One snapshot for the galleries' change sequences and the rows, so the
	// sequences say exactly what the rows hold.
	tx, err := pc.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return 0, 0, postgres.Translate(err)
	}
	defer tx.Rollback(context.Background())
	seqs := map[engine.Gallery]int64{}
	rows, err = tx.Query(ctx, `SELECT tenant, version, seq FROM galleries`)
	if err != nil {
		return 0, 0, postgres.Translate(err)
	}
	var seq int64
	if _, err := pgx.ForEachRow(rows, []any{&g.Tenant, &g.Version, &seq}, func() error { seqs[g] = seq; return nil }); err != nil {
		return 0, 0, postgres.Translate(err)
	}
	column := "embedding"
	if !s.vector {
		column = "embedding::real[]"
	}
	pr, pw := io.Pipe()
	copied := make(chan error, 1)
	go func() {
		_, err := pc.Conn().PgConn().CopyTo(ctx, pw,
			`COPY (SELECT id, person_id, tenant, version, `+column+` FROM templates) TO STDOUT (FORMAT binary)`)
		pw.CloseWithError(err)
		copied <- err
	}()
	n, err := readCopy(bufio.NewReaderSize(pr, 1<<20), s.vector, fresh.Add)
	pr.CloseWithError(err) // unblocks the writer if we stopped early
	// The connection is released (deferred) only once CopyTo is done with it.
	if cerr := <-copied; err == nil {
		err = postgres.Translate(cerr)
	}
	if err != nil {
		return n, 0, err
	}
	tx.Commit(ctx)
	// Refreshes applied while the snapshot was read may be older than it or
	// newer: swap it in, then refresh those persons again from PostgreSQL.
	s.reload.Lock()
	s.Exact.replaceWith(fresh)
	again := s.changed
	s.changed = nil
	s.reload.Unlock()
	for id := range again {
		if err := s.PersonChanged(ctx, id); err != nil {
			return n, 0, err
		}
	}
	s.reached(seqs, true)
	s.checkBudget()
	s.markLoaded()
	return n, time.Since(start), nil
}

func (s *Synced) markLoaded() {
	if s.loadOnce.CompareAndSwap(false, true) {
		close(s.loaded)
	}
}

var copySignature = []byte("PGCOPY\n\xff\r\n\x00")

// readCopy parses PostgreSQL's binary COPY of (id, person_id, tenant,
// version, embedding) and calls add for each row. The embedding is a
// pgvector vector, or a real[] when vector is false. The row's embedding is
// reused by the next call: add must copy it.
func readCopy(r *bufio.Reader, vector bool, add func(...Row)) (int, error) {
	hdr := make([]byte, 19)
	if _, err := io.ReadFull(r, hdr); err != nil {
		return 0, fmt.Errorf("copy header: %w", err)
	}
	if !bytes.Equal(hdr[:11], copySignature) {
		return 0, errors.New("copy: not a binary COPY stream")
	}
	if _, err := r.Discard(int(binary.BigEndian.Uint32(hdr[15:19]))); err != nil {
		return 0, err
	}
	var field []byte
	emb := make(engine.Embedding, 0, 512)
	readField := func() ([]byte, error) {
		var l [4]byte
		if _, err := io.ReadFull(r, l[:]); err != nil {
			return nil, err
		}
		n := int32(binary.BigEndian.Uint32(l[:]))
		if n < 0 {
			return nil, errors.New("copy: unexpected NULL")
		}
		if cap(field) < int(n) {
			field = make([]byte, n)
		}
		field = field[:n]
		_, err := io.ReadFull(r, field)
		return field, err
	}
	n := 0
	for {
		var cnt [2]byte
		if _, err := io.ReadFull(r, cnt[:]); err != nil {
			return n, fmt.Errorf("copy: %w", err)
		}
		fields := int16(binary.BigEndian.Uint16(cnt[:]))
		if fields == -1 {
			return n, nil
		}
		if fields != 5 {
			return n, fmt.Errorf("copy: %d fields, want 5", fields)
		}
		var row Row
		for i := range 4 {
			f, err := readField()
			if err != nil {
				return n, fmt.Errorf("copy: %w", err)
			}
			switch i {
			case 0:
				row.TemplateID = int64(binary.BigEndian.Uint64(f))
			case 1:
				row.PersonID = int64(binary.BigEndian.Uint64(f))
			case 2:
				row.Gallery.Tenant = string(f)
			case 3:
				row.Gallery.Version = string(f)
			}
		}
		f, err := readField()
		if err != nil {
			return n, fmt.Errorf("copy: %w", err)
		}
		if emb, err = decodeEmbedding(f, vector, emb[:0]); err != nil {
			return n, err
		}
		row.Embedding = emb
		add(row)
		n++
	}
}

// decodeEmbedding reads pgvector's binary vector (int16 dim, int16 unused,
// big-endian float32s) or a binary real[] (one dimension, no NULLs).
func decodeEmbedding(f []byte, vector bool, out engine.Embedding) (engine.Embedding, error) {
	if vector {
		if len(f) < 4 {
			return nil, errors.New("copy: short vector")
		}
		dim := int(binary.BigEndian.Uint16(f))
		if len(f) != 4+4*dim {
			return nil, errors.New("copy: vector length mismatch")
		}
		for i := range dim {
			out = append(out, math.Float32frombits(binary.BigEndian.Uint32(f[4+4*i:])))
		}
		return out, nil
	}
	if len(f) < 20 || binary.BigEndian.Uint32(f) != 1 {
		return nil, errors.New("copy: real[] is not one-dimensional")
	}
	dim := int(binary.BigEndian.Uint32(f[12:]))
	if len(f) != 20+8*dim {
		return nil, errors.New("copy: real[] length mismatch")
	}
	for i := range dim {
		out = append(out, math.Float32frombits(binary.BigEndian.Uint32(f[20+8*i+4:])))
	}
	return out, nil
}

// Auto searches with the in-memory index while it fits its memory budget,
// else with pgvector.
type Auto struct {
	Mem *Synced
	PG  *PGVector
}

// Nearest implements engine.Index.
func (a *Auto) Nearest(ctx context.Context, g engine.Gallery, probe engine.Embedding, k int) ([]engine.Match, error) {
	if a.Mem.Active() {
		return a.Mem.Nearest(ctx, g, probe, k)
	}
	return a.PG.Nearest(ctx, g, probe, k)
}

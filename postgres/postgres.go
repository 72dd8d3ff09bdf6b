// Package postgres is biomatch's storage: every SQL statement but search
// (vectorstore owns that). It implements engine.Store — persons, template
// writes, enroll requests, the audit log, import progress — and keeps the
// API keys, and opens and migrates the database. PostgreSQL is the source of
// truth.
package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	pgxvec "github.com/pgvector/pgvector-go/pgx"

	"github.com/biomatch/biomatch/engine"
	"github.com/biomatch/biomatch/internal/batch"
)

var (
	_ engine.Store     = (*Store)(nil)
	_ engine.GalleryTx = (*galleryTx)(nil)
)

// DefaultMaxConns is the pool size when DATABASE_URL sets no pool_max_conns.
const DefaultMaxConns = 32

// OpenPool makes a pool with pgvector's types registered on every
// connection. It does not wait for the database: Ping tells whether it answers.
func OpenPool(ctx context.Context, url string) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("DATABASE_URL: %w", err)
	}
	if !strings.Contains(url, "pool_max_conns") {
		// pgxpool's default (the CPU count, at least 4) is fewer than the
		// worker's concurrent tasks plus the API's requests: a small
		// machine would queue for connections. The URL's pool_max_conns wins.
		cfg.MaxConns = DefaultMaxConns
	}
	cfg.AfterConnect = func(ctx context.Context, conn *pgx.Conn) error {
		var installed bool
		if err := conn.QueryRow(ctx, `SELECT to_regtype('vector') IS NOT NULL`).Scan(&installed); err != nil {
			return err
		}
		if !installed {
			return nil // no pgvector (yet): migrations create it, or templates are real[]
		}
		return pgxvec.RegisterTypes(ctx, conn)
	}
	return pgxpool.NewWithConfig(ctx, cfg)
}

// Store is engine.Store on PostgreSQL. Templates are written in the
// search's format (vector or real[]) and announced on TemplatesChannel at
// commit.
type Store struct {
	pool   *pgxpool.Pool
	search TxSearcher
	// audits group-commits the audit entries of concurrent requests: one
	// COPY and one commit for all that wait while the previous commit runs.
	audits *batch.Combiner[engine.AuditEntry, error]
	// lookups combines the person lookups of concurrent identifies (the
	// answers of one batched scan come together): one query for all that
	// wait while the previous one runs.
	lookups *batch.Combiner[personLookup, personsFound]
	// records group-commits accepted enrolls (CreateEnrollRequest): one
	// round trip and one commit for all that wait while the previous runs.
	records *batch.Combiner[record, error]
	// pendingFrom is, per gallery, where a worker's read of pending
	// enrolls starts (see LockPendingEnrolls).
	pendingFrom sync.Map // engine.Gallery → time.Time
}

// TxSearcher is the search the enroll decision makes inside its gallery
// transaction, holding the gallery's lock (vectorstore.Dedup), and the
// format templates are stored in. It must be exact: a missed neighbour
// gives a returning person a second identity.
type TxSearcher interface {
	// NearestIn is engine.Index.Nearest for the decision of transaction q,
	// which holds g's lock, taken when g's change sequence was seq; the
	// store adds the transaction's own writes to what it finds.
	NearestIn(ctx context.Context, q Querier, g engine.Gallery, seq int64, probe engine.Embedding, k int) ([]engine.Match, error)
	// NearestBatchIn is NearestIn for each probe (one pass over the
	// templates where the index can), keeping the matches that score at
	// least atLeast.
	NearestBatchIn(ctx context.Context, q Querier, g engine.Gallery, seq int64, probes []engine.Embedding, k int, atLeast float64) ([][]engine.Match, error)
	// EmbeddingArg encodes a template for the embedding column.
	EmbeddingArg(e engine.Embedding) any
}

// OwnWrites is implemented by a TxSearcher that takes a gallery
// transaction's new persons as soon as it committed (vectorstore.Dedup), so
// the gallery's next decision in this process need not wait for their
// notification to come back.
type OwnWrites interface {
	// Committed tells that a transaction which took g's lock at change
	// sequence from committed, leaving g at sequence to, and that its
	// only changes to g's templates were the new persons' rows.
	Committed(g engine.Gallery, from, to int64, rows []NewTemplate)
}

// NewTemplate is a template a transaction wrote.
type NewTemplate struct {
	ID, PersonID int64
	Embedding    engine.Embedding
}

// NewStore returns a Store over a migrated pool made by OpenPool.
func NewStore(pool *pgxpool.Pool, search TxSearcher) *Store {
	p := &Store{pool: pool, search: search}
	p.audits = batch.New(auditBatch, p.writeAudits)
	p.lookups = batch.New(lookupBatch, p.readPersons)
	p.records = batch.New(recordBatch, p.writeEnrollRequests)
	return p
}

// auditBatch is the most audit entries one group commit writes.
const auditBatch = 256

// auditTimeout bounds one group commit of audit entries.
const auditTimeout = 10 * time.Second

// recordBatch is the most accepted enrolls one commit records.
const recordBatch = 64

// recordTimeout bounds the record of an accepted enroll whose caller set
// no deadline (the API's set ENROLL_WAIT).
const recordTimeout = 10 * time.Second

// lookupBatch is the most person lookups one query answers.
const lookupBatch = 64

// lookupTimeout bounds one combined person lookup: the SDKs give up after 5 s.
const lookupTimeout = 5 * time.Second

// TemplatesChannel is the NOTIFY channel of template changes; the payload
// is the id of the person whose templates changed (or who was deleted). It
// is sent at commit, so listeners (vectorstore.Synced) see committed data.
const TemplatesChannel = "biomatch_templates"

// Querier is what pgxpool.Pool and pgx.Tx share.
type Querier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// translate maps pgx errors to engine sentinels: no rows → ErrNotFound, a
// database that cannot be reached → ErrUnavailable.
func Translate(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("%w: %w", engine.ErrNotFound, err)
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch {
		case pgErr.Code[:2] == "08", pgErr.Code == "57P01", pgErr.Code == "57P02", pgErr.Code == "57P03", pgErr.Code == "53300":
			return fmt.Errorf("%w: database: %w", engine.ErrUnavailable, err)
		}
		return err
	}
	var netErr net.Error
	var connErr *pgconn.ConnectError
	if errors.As(err, &netErr) || errors.As(err, &connErr) || pgconn.SafeToRetry(err) {
		return fmt.Errorf("%w: database: %w", engine.ErrUnavailable, err)
	}
	return err
}

// Ping reports whether the database answers.
func (p *Store) Ping(ctx context.Context) error { return Translate(p.pool.Ping(ctx)) }

// ---- enroll requests ----

const enrollRequestColumns = `r.id, r.tenant, r.version, coalesce(r.key_id::text, ''), r.request_id, r.external_id,
	r.dim, r.templates, r.state, r.attempts, r.outcome, r.reason, r.score, r.created_at,
	coalesce(p.id, 0), coalesce(p.puid, ''), coalesce(p.guid, ''), coalesce(p.external_id, ''),
	coalesce(p.enroll_level, 0), coalesce(p.created_at, r.created_at)`

// enrollRequestsWithPerson is the FROM clause of enrollRequestColumns: each
// request with its person, if any. The person is looked up by (tenant, id)
// in a subquery that the LIMIT keeps the planner from flattening: flattened
// and planned while the statistics knew no person of the tenant (a new
// tenant, a fresh import, until autovacuum analyzes), the join scanned every
// person of the tenant for each request (measured: 400 ms per batch at a
// 100k gallery, enroll collapsing; TestPendingEnrollsPlanWithStaleStatistics).
const enrollRequestsWithPerson = `enroll_requests r LEFT JOIN LATERAL (
	SELECT * FROM persons p WHERE p.tenant = r.tenant AND p.id = r.person_id LIMIT 1) p ON true`

func scanEnrollRequest(row pgx.Row) (engine.EnrollRequest, error) {
	var r engine.EnrollRequest
	var dim int
	var flat []float32
	var p engine.Person
	err := row.Scan(&r.ID, &r.Gallery.Tenant, &r.Gallery.Version, &r.KeyID, &r.RequestID, &r.ExternalID,
		&dim, &flat, &r.State, &r.Attempts, &r.Result.Outcome, &r.Result.Reason, &r.Result.Score, &r.CreatedAt,
		&p.ID, &p.PUID, &p.GUID, &p.ExternalID, &p.EnrollLevel, &p.CreatedAt)
	if err != nil {
		return r, Translate(err)
	}
	for i := 0; dim > 0 && i+dim <= len(flat); i += dim {
		r.Templates = append(r.Templates, engine.Embedding(flat[i:i+dim]))
	}
	if p.ID != 0 {
		p.Gallery = r.Gallery
		r.Result.Person = p
	}
	return r, nil
}

// CreateEnrollRequest implements engine.Store. Requests recorded at once
// share a commit (writeEnrollRequests); each returns once its own row is
// committed.
func (p *Store) CreateEnrollRequest(ctx context.Context, r engine.EnrollRequest) error {
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(recordTimeout)
	}
	return batch.DoErr(ctx, p.records, record{r, deadline})
}

// record is an accepted enroll to record by its caller's deadline.
type record struct {
	r        engine.EnrollRequest
	deadline time.Time
}

// RecordStats returns how many commits recorded how many accepted enrolls,
// and how many wait for the next commit.
func (p *Store) RecordStats() (commits, records int64, waiting int) {
	commits, records = p.records.Stats()
	return commits, records, p.records.Waiting()
}

const insertEnrollRequest = `
	INSERT INTO enroll_requests (id, tenant, version, key_id, request_id, external_id, dim, templates)
	VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`

// enrollRequestArgs are insertEnrollRequest's arguments for r.
func enrollRequestArgs(r engine.EnrollRequest) []any {
	dim := len(r.Templates[0])
	flat := make([]float32, 0, dim*len(r.Templates))
	for _, t := range r.Templates {
		flat = append(flat, t...)
	}
	var keyID *string
	if r.KeyID != "" {
		keyID = &r.KeyID
	}
	return []any{r.ID, r.Gallery.Tenant, r.Gallery.Version, keyID, r.RequestID, r.ExternalID, dim, flat}
}

// writeEnrollRequests records rs: one INSERT for one, and for several their
// INSERTs sent together, which PostgreSQL runs as one transaction (one WAL
// flush). If that fails, each is recorded on its own, so a bad request
// fails alone; a row found there already is the request's own. As for one
// request, the write ends at its callers' deadline (the latest of them);
// a request whose caller's deadline passed while it waited is not written.
func (p *Store) writeEnrollRequests(recs []record) []error {
	errs := make([]error, len(recs))
	var live []int
	var latest time.Time
	for i, rec := range recs {
		if time.Until(rec.deadline) <= 0 {
			errs[i] = context.DeadlineExceeded
			continue
		}
		live = append(live, i)
		if rec.deadline.After(latest) {
			latest = rec.deadline
		}
	}
	ctx, cancel := context.WithDeadline(context.Background(), latest)
	defer cancel()
	if len(live) > 1 {
		b := &pgx.Batch{}
		for _, i := range live {
			b.Queue(insertEnrollRequest, enrollRequestArgs(recs[i].r)...)
		}
		if p.pool.SendBatch(ctx, b).Close() == nil {
			return errs
		}
	}
	for _, i := range live {
		_, err := p.pool.Exec(ctx, insertEnrollRequest, enrollRequestArgs(recs[i].r)...)
		if pgErr := (*pgconn.PgError)(nil); errors.As(err, &pgErr) && pgErr.ConstraintName == "enroll_requests_pkey" {
			err = nil // its id is random: the row is this request's, from a batch that committed as its reply was lost
		}
		errs[i] = Translate(err)
	}
	return errs
}

// EnrollRequest implements engine.Store.
func (p *Store) EnrollRequest(ctx context.Context, id string) (engine.EnrollRequest, error) {
	return scanEnrollRequest(p.pool.QueryRow(ctx, `SELECT `+enrollRequestColumns+`
		FROM `+enrollRequestsWithPerson+` WHERE r.id = $1`, id))
}

// EnrollState implements engine.Store.
func (p *Store) EnrollState(ctx context.Context, id string) (engine.Gallery, engine.EnrollState, error) {
	var g engine.Gallery
	var state string
	err := p.pool.QueryRow(ctx, `SELECT tenant, version, state FROM enroll_requests WHERE id = $1`, id).
		Scan(&g.Tenant, &g.Version, &state)
	return g, engine.EnrollState(state), Translate(err)
}

// CountEnrollAttempt implements engine.Store.
func (p *Store) CountEnrollAttempt(ctx context.Context, id string) error {
	_, err := p.pool.Exec(ctx, `UPDATE enroll_requests SET attempts = attempts + 1 WHERE id = $1`, id)
	return Translate(err)
}

// FailEnrollRequest implements engine.Store.
func (p *Store) FailEnrollRequest(ctx context.Context, id, reason string) error {
	return Translate(pgx.BeginFunc(ctx, p.pool, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE enroll_requests SET state = 'failed', outcome = 'rejected', reason = $2, templates = NULL, finished_at = now()
			WHERE id = $1 AND state = 'pending'`, id, reason)
		if err != nil || tag.RowsAffected() == 0 {
			return err
		}
		if err := enqueueEnrollEvents(ctx, tx, []string{id}); err != nil {
			return err
		}
		return notifyFinished(ctx, tx, []string{id})
	}))
}

// PendingEnrollRequests implements engine.Store.
func (p *Store) PendingEnrollRequests(ctx context.Context, before time.Time, limit int) ([]string, error) {
	rows, err := p.pool.Query(ctx, `SELECT id FROM enroll_requests
		WHERE state = 'pending' AND created_at < $1 ORDER BY created_at LIMIT $2`, before, limit)
	if err != nil {
		return nil, Translate(err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	return ids, Translate(err)
}

// InGallery implements engine.Store with a transaction-scoped advisory lock
// on the gallery.
func (p *Store) InGallery(ctx context.Context, g engine.Gallery, fn func(context.Context, engine.GalleryTx) error) error {
	var t *galleryTx
	err := pgx.BeginFunc(ctx, p.pool, func(tx pgx.Tx) error {
		if err := LockGallery(ctx, tx, g); err != nil {
			return err
		}
		// The gallery's change sequence as the lock was taken: every change
		// the decision must see is at or below it.
		var seq int64
		err := tx.QueryRow(ctx, `SELECT seq FROM galleries WHERE tenant = $1 AND version = $2`, g.Tenant, g.Version).Scan(&seq)
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		t = &galleryTx{tx: tx, search: p.search, seq: seq, pendingFrom: &p.pendingFrom}
		return fn(ctx, t)
	})
	if own, ok := p.search.(OwnWrites); ok && err == nil && t.last > 0 && !t.otherChanges {
		own.Committed(g, t.seq, t.last, t.created)
	}
	return Translate(err)
}

// LockGallery takes g's write lock for the rest of tx: enrolls, deletes and
// imports of g wait for it.
func LockGallery(ctx context.Context, tx pgx.Tx, g engine.Gallery) error {
	_, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtextextended(format('%s:%s/%s', length($1::text), $1::text, $2::text), 0))`,
		g.Tenant, g.Version)
	return err
}

// ---- persons ----

const personColumns = `id, tenant, version, puid, guid, external_id, enroll_level, created_at`

func scanPerson(row pgx.CollectableRow) (engine.Person, error) {
	var p engine.Person
	err := row.Scan(&p.ID, &p.Gallery.Tenant, &p.Gallery.Version, &p.PUID, &p.GUID, &p.ExternalID, &p.EnrollLevel, &p.CreatedAt)
	return p, err
}

func onePerson(rows pgx.Rows, err error) (engine.Person, error) {
	if err != nil {
		return engine.Person{}, Translate(err)
	}
	p, err := pgx.CollectExactlyOneRow(rows, scanPerson)
	return p, Translate(err)
}

// GallerySize implements engine.Store.
func (p *Store) GallerySize(ctx context.Context, g engine.Gallery) (int, error) {
	var n int
	err := p.pool.QueryRow(ctx, `SELECT templates FROM galleries WHERE tenant = $1 AND version = $2`, g.Tenant, g.Version).Scan(&n)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, nil
	}
	return n, Translate(err)
}

// Galleries implements engine.Store.
func (p *Store) Galleries(ctx context.Context, tenant string) ([]engine.GalleryInfo, error) {
	rows, err := p.pool.Query(ctx, `SELECT version, persons, templates FROM galleries WHERE tenant = $1 ORDER BY version`, tenant)
	if err != nil {
		return nil, Translate(err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (engine.GalleryInfo, error) {
		var g engine.GalleryInfo
		return g, row.Scan(&g.Version, &g.Persons, &g.Templates)
	})
	return out, Translate(err)
}

// ListPersons implements engine.Store.
func (p *Store) ListPersons(ctx context.Context, g engine.Gallery, after int64, limit int) ([]engine.Person, error) {
	rows, err := p.pool.Query(ctx, `SELECT `+personColumns+` FROM persons WHERE tenant = $1 AND version = $2 AND id > $3
		ORDER BY id LIMIT $4`, g.Tenant, g.Version, after, limit)
	if err != nil {
		return nil, Translate(err)
	}
	out, err := pgx.CollectRows(rows, scanPerson)
	return out, Translate(err)
}

// PersonsByExternalID implements engine.Store.
func (p *Store) PersonsByExternalID(ctx context.Context, tenant, externalID, version string) ([]engine.Person, error) {
	rows, err := p.pool.Query(ctx, `SELECT `+personColumns+` FROM persons WHERE tenant = $1 AND external_id = $2
		AND ($3 = '' OR version = $3) ORDER BY id`, tenant, externalID, version)
	if err != nil {
		return nil, Translate(err)
	}
	out, err := pgx.CollectRows(rows, scanPerson)
	return out, Translate(err)
}

// PersonByPUID implements engine.Store.
func (p *Store) PersonByPUID(ctx context.Context, tenant, puid string) (engine.Person, error) {
	return onePerson(p.pool.Query(ctx, `SELECT `+personColumns+` FROM persons WHERE tenant = $1 AND puid = $2`, tenant, puid))
}

// Persons implements engine.Store. Concurrent calls share one query.
func (p *Store) Persons(ctx context.Context, tenant string, ids []int64) (map[int64]engine.Person, error) {
	found, err := p.lookups.Do(ctx, personLookup{tenant: tenant, ids: ids})
	if err != nil {
		return nil, err
	}
	return found.persons, found.err
}

// personLookup is one call of Persons; personsFound its answer.
type personLookup struct {
	tenant string
	ids    []int64
}

type personsFound struct {
	persons map[int64]engine.Person
	err     error
}

// readPersons answers lookups with one query; every lookup gets the
// query's error, if any.
func (p *Store) readPersons(lookups []personLookup) []personsFound {
	ctx, cancel := context.WithTimeout(context.Background(), lookupTimeout)
	defer cancel()
	var tenants []string
	var ids []int64
	for _, l := range lookups {
		for _, id := range l.ids {
			tenants = append(tenants, l.tenant)
			ids = append(ids, id)
		}
	}
	out := make([]personsFound, len(lookups))
	rows, err := p.pool.Query(ctx, `SELECT `+personColumns+` FROM persons
		WHERE (tenant, id) IN (SELECT * FROM unnest($1::text[], $2::bigint[]))`, tenants, ids)
	var ps []engine.Person
	if err == nil {
		ps, err = pgx.CollectRows(rows, scanPerson)
	}
	if err != nil {
		for i := range out {
			out[i].err = Translate(err)
		}
		return out
	}
	type key struct {
		tenant string
		id     int64
	}
	byKey := make(map[key]engine.Person, len(ps))
	for _, person := range ps {
		byKey[key{person.Gallery.Tenant, person.ID}] = person
	}
	for i, l := range lookups {
		out[i].persons = make(map[int64]engine.Person, len(l.ids))
		for _, id := range l.ids {
			if person, ok := byKey[key{l.tenant, id}]; ok {
				out[i].persons[id] = person
			}
		}
	}
	return out
}

// PersonByIdentifier implements engine.Store.
func (p *Store) PersonByIdentifier(ctx context.Context, g engine.Gallery, identifier string) (engine.Person, error) {
	return onePerson(p.pool.Query(ctx, `SELECT `+personColumns+` FROM persons
		WHERE tenant = $1 AND version = $2 AND (external_id = $3 OR puid = $3)
		ORDER BY external_id = $3 DESC LIMIT 1`, g.Tenant, g.Version, identifier))
}

// PersonTemplates implements engine.Store.
func (p *Store) PersonTemplates(ctx context.Context, personID int64) ([]engine.Embedding, error) {
	rows, err := p.pool.Query(ctx, `SELECT embedding::real[] FROM templates WHERE person_id = $1 ORDER BY id`, personID)
	if err != nil {
		return nil, Translate(err)
	}
	vs, err := pgx.CollectRows(rows, pgx.RowTo[[]float32])
	if err != nil {
		return nil, Translate(err)
	}
	out := make([]engine.Embedding, len(vs))
	for i, v := range vs {
		out[i] = v
	}
	return out, nil
}

// DeletePerson implements engine.Store: person, templates (by cascade) and
// gallery counts in one transaction with the audit row, under the gallery's
// lock (so an enroll decision never runs concurrently with a delete of its
// gallery).
func (p *Store) DeletePerson(ctx context.Context, tenant, puid string, a engine.AuditEntry) (engine.Person, error) {
	var person engine.Person
	err := pgx.BeginFunc(ctx, p.pool, func(tx pgx.Tx) error {
		var version string
		if err := tx.QueryRow(ctx, `SELECT version FROM persons WHERE tenant = $1 AND puid = $2`, tenant, puid).Scan(&version); err != nil {
			return err
		}
		g := engine.Gallery{Tenant: tenant, Version: version}
		if err := LockGallery(ctx, tx, g); err != nil {
			return err
		}
		var err error
		person, err = onePerson(tx.Query(ctx, `DELETE FROM persons WHERE tenant = $1 AND puid = $2 RETURNING `+personColumns, tenant, puid))
		if err != nil {
			return err
		}
		var seq int64
		if err := tx.QueryRow(ctx, `UPDATE galleries SET persons = persons - 1, templates = templates - $3, seq = seq + 1
			WHERE tenant = $1 AND version = $2 RETURNING seq`, tenant, version, person.EnrollLevel).Scan(&seq); err != nil {
			return err
		}
		if err := notifyPerson(ctx, tx, person.ID, g, seq); err != nil {
			return err
		}
		if err := enqueuePersonDeleted(ctx, tx, person); err != nil {
			return err
		}
		return audit(ctx, tx, a)
	})
	return person, Translate(err)
}

// EnrollLevels implements engine.Store.
func (p *Store) EnrollLevels(ctx context.Context, tenant string, puids []string) (map[string]int, error) {
	rows, err := p.pool.Query(ctx, `SELECT puid, enroll_level FROM persons WHERE tenant = $1 AND puid = ANY($2)`, tenant, puids)
	if err != nil {
		return nil, Translate(err)
	}
	out := map[string]int{}
	var puid string
	var level int
	_, err = pgx.ForEachRow(rows, []any{&puid, &level}, func() error { out[puid] = level; return nil })
	return out, Translate(err)
}

// Audit implements engine.Store.
// It returns once a is committed, in one transaction with the entries of
// other requests that waited while the previous commit ran (group commit):
// a request whose audit entry did not commit is never answered as a
// success, so a crash loses no entry of an answered request.
func (p *Store) Audit(ctx context.Context, a engine.AuditEntry) error {
	return batch.DoErr(ctx, p.audits, a)
}

// AuditStats returns how many group commits wrote how many audit entries,
// and how many entries wait for the next commit.
func (p *Store) AuditStats() (commits, entries int64, waiting int) {
	commits, entries = p.audits.Stats()
	return commits, entries, p.audits.Waiting()
}

// LookupStats returns how many queries answered how many person lookups,
// and how many lookups wait for the next query.
func (p *Store) LookupStats() (queries, lookups int64, waiting int) {
	queries, lookups = p.lookups.Stats()
	return queries, lookups, p.lookups.Waiting()
}

// writeAudits commits entries: one INSERT for one entry, one COPY for
// several. Every entry gets the same outcome.
func (p *Store) writeAudits(entries []engine.AuditEntry) []error {
	ctx, cancel := context.WithTimeout(context.Background(), auditTimeout)
	defer cancel()
	var err error
	if len(entries) == 1 {
		err = audit(ctx, p.pool, entries[0])
	} else {
		_, err = p.pool.CopyFrom(ctx, pgx.Identifier{"audit_log"}, auditColumns, pgx.CopyFromRows(auditRows(entries)))
	}
	errs := make([]error, len(entries))
	for i := range errs {
		errs[i] = Translate(err)
	}
	return errs
}

// Change is the payload of a TemplatesChannel notification: the person
// whose templates changed (or who was deleted), and its gallery's change
// sequence after the change.
//
// A bulk write (an import batch) sends one notification for all its new
// persons instead: PersonID 0, and the range of template ids it wrote
// (FirstTemplate..LastTemplate), each of a person new in that write.
type Change struct {
	PersonID      int64  `json:"person"`
	Seq           int64  `json:"seq"`
	Tenant        string `json:"tenant"`
	Version       string `json:"version"`
	FirstTemplate int64  `json:"first_template,omitempty"`
	LastTemplate  int64  `json:"last_template,omitempty"`
}

// notifyPerson tells every follower of TemplatesChannel, at commit, that a
// person's templates changed, and the gallery's sequence after it.
func notifyPerson(ctx context.Context, q Querier, personID int64, g engine.Gallery, seq int64) error {
	payload, err := json.Marshal(Change{PersonID: personID, Seq: seq, Tenant: g.Tenant, Version: g.Version})
	if err != nil {
		return err
	}
	_, err = q.Exec(ctx, `SELECT pg_notify('`+TemplatesChannel+`', $1)`, string(payload))
	return err
}

// auditColumns are the columns auditRows fills, for COPY.
var auditColumns = []string{"key_id", "tenant", "action", "puid", "request_id", "detail"}

func auditRows(entries []engine.AuditEntry) [][]any {
	rows := make([][]any, len(entries))
	for i, a := range entries {
		var keyID any
		if a.KeyID != "" {
			keyID = a.KeyID
		}
		rows[i] = []any{keyID, a.Tenant, a.Action, a.PUID, a.RequestID, a.Detail}
	}
	return rows
}

func audit(ctx context.Context, q Querier, a engine.AuditEntry) error {
	var keyID *string
	if a.KeyID != "" {
		keyID = &a.KeyID
	}
	_, err := q.Exec(ctx, `INSERT INTO audit_log (key_id, tenant, action, puid, request_id, detail)
		VALUES ($1, $2, $3, $4, $5, $6)`, keyID, a.Tenant, a.Action, a.PUID, a.RequestID, a.Detail)
	return err
}

// ---- the locked gallery ----

type galleryTx struct {
	tx          pgx.Tx
	search      TxSearcher
	pendingFrom *sync.Map // the Store's
	seq         int64     // the gallery's change sequence when the lock was taken
	added       []added   // templates this transaction wrote, not yet in any index
	// What it changed in the gallery, for OwnWrites: its last change
	// sequence, the new persons' templates, and whether it changed
	// anything else.
	last         int64
	created      []NewTemplate
	otherChanges bool
}

type added struct {
	person  int64
	gallery engine.Gallery
	e       engine.Embedding
}

func (t *galleryTx) LockEnrollRequest(ctx context.Context, id string) (engine.EnrollRequest, error) {
	return scanEnrollRequest(t.tx.QueryRow(ctx, `SELECT `+enrollRequestColumns+`
		FROM `+enrollRequestsWithPerson+` WHERE r.id = $1 FOR UPDATE OF r`, id))
}

// lockPendingEnrollsSQL selects and locks a gallery's oldest pending
// enrolls ($1 tenant, $2 version) created at $5 or later, but $3, at most
// $4.
const lockPendingEnrollsSQL = `SELECT ` + enrollRequestColumns + `
	FROM ` + enrollRequestsWithPerson + `
	WHERE r.state = 'pending' AND r.tenant = $1 AND r.version = $2 AND r.id <> $3 AND r.created_at >= $5
	ORDER BY r.created_at LIMIT $4 FOR UPDATE OF r SKIP LOCKED`

// pendingSlack is how far before the oldest request of the gallery's last
// batch the next batch's read starts: past the commit delay of a request
// stamped earlier than one already seen.
const pendingSlack = 5 * time.Second

// LockPendingEnrolls implements engine.GalleryTx. The pending index keeps
// an entry for every finished request until vacuum removes it, all of
// them older than the pending ones, and a read from the index's start
// stepped over each (30-40 ms a batch, 25 s into a load test of 200
// enrolls a second). So a batch's read starts pendingSlack before the
// oldest request the gallery's previous batch in this process took. A
// pending request older than that (its own task held it locked then) is
// not lost: it is decided by its own task, as every request is.
func (t *galleryTx) LockPendingEnrolls(ctx context.Context, g engine.Gallery, except string, limit int) ([]engine.EnrollRequest, error) {
	var from time.Time
	if v, ok := t.pendingFrom.Load(g); ok {
		from = v.(time.Time)
	}
	rows, err := t.tx.Query(ctx, lockPendingEnrollsSQL, g.Tenant, g.Version, except, limit, from)
	if err != nil {
		return nil, Translate(err)
	}
	defer rows.Close()
	var out []engine.EnrollRequest
	for rows.Next() {
		r, err := scanEnrollRequest(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, Translate(err)
	}
	if len(out) > 0 {
		t.pendingFrom.Store(g, out[0].CreatedAt.Add(-pendingSlack))
	}
	return out, nil
}

func (t *galleryTx) Savepoint(ctx context.Context, fn func(ctx context.Context) error) error {
	sp, err := t.tx.Begin(ctx) // a savepoint
	if err != nil {
		return Translate(err)
	}
	added, last, created, other := len(t.added), t.last, len(t.created), t.otherChanges
	outer := t.tx
	t.tx = sp
	err = fn(ctx)
	t.tx = outer
	if err != nil {
		t.added, t.last, t.created, t.otherChanges = t.added[:added], last, t.created[:created], other
		if rerr := sp.Rollback(ctx); rerr != nil {
			return Translate(rerr)
		}
		return err
	}
	return Translate(sp.Commit(ctx))
}

func (t *galleryTx) Nearest(ctx context.Context, g engine.Gallery, probe engine.Embedding, k int) ([]engine.Match, error) {
	ms, err := t.search.NearestIn(ctx, t.tx, g, t.seq, probe, k)
	if err != nil {
		return nil, err
	}
	if len(t.added) == 0 {
		return ms, nil
	}
	// The search may not see this transaction's own writes (an in-memory
	// index sees commits only): they are compared here, the way a batch is
	// compared with its earlier items.
	for _, a := range t.added {
		if a.gallery == g && len(a.e) == len(probe) {
			ms = append(ms, engine.Match{PersonID: a.person, Score: engine.Cosine(a.e, probe)})
		}
	}
	slices.SortFunc(ms, engine.CompareMatches)
	return ms[:min(k, len(ms))], nil
}

func (t *galleryTx) NearestBatch(ctx context.Context, g engine.Gallery, probes []engine.Embedding, k int, atLeast float64) ([][]engine.Match, error) {
	if len(t.added) > 0 { // the per-probe path adds this transaction's writes
		out := make([][]engine.Match, len(probes))
		for i, p := range probes {
			ms, err := t.Nearest(ctx, g, p, k)
			if err != nil {
				return nil, err
			}
			out[i] = engine.AtLeast(ms, atLeast)
		}
		return out, nil
	}
	return t.search.NearestBatchIn(ctx, t.tx, g, t.seq, probes, k, atLeast)
}

func (t *galleryTx) PersonsByExternalIDs(ctx context.Context, g engine.Gallery, ids []string) (map[string]engine.Person, error) {
	out := map[string]engine.Person{}
	if len(ids) == 0 {
		return out, nil
	}
	rows, err := t.tx.Query(ctx, `SELECT `+personColumns+` FROM persons
		WHERE tenant = $1 AND version = $2 AND external_id = ANY($3)`, g.Tenant, g.Version, ids)
	if err != nil {
		return nil, Translate(err)
	}
	ps, err := pgx.CollectRows(rows, scanPerson)
	if err != nil {
		return nil, Translate(err)
	}
	for _, p := range ps {
		out[p.ExternalID] = p
	}
	return out, nil
}

// CreatePersons writes the persons and their templates with COPY, under
// ids drawn from their sequences first, moves the gallery's counters and
// change sequence once, and announces the batch in one notification.
func (t *galleryTx) CreatePersons(ctx context.Context, g engine.Gallery, ps []engine.NewPerson) ([]engine.Person, error) {
	if len(ps) == 0 {
		return nil, nil
	}
	var nt int
	for _, np := range ps {
		nt += len(np.Templates)
	}
	var pids, tids []int64
	var now time.Time
	if err := t.tx.QueryRow(ctx, `SELECT array(SELECT nextval('persons_id_seq') FROM generate_series(1, $1)),
		array(SELECT nextval('templates_id_seq') FROM generate_series(1, $2)), now()`, len(ps), nt).Scan(&pids, &tids, &now); err != nil {
		return nil, Translate(err)
	}
	out := make([]engine.Person, len(ps))
	prow := make([][]any, len(ps))
	trow := make([][]any, 0, nt)
	first, last := tids[0], tids[0]
	for i, np := range ps {
		p := np.Person
		p.ID, p.Gallery, p.EnrollLevel, p.CreatedAt = pids[i], g, len(np.Templates), now
		out[i] = p
		prow[i] = []any{p.ID, g.Tenant, g.Version, p.PUID, p.GUID, p.ExternalID, p.EnrollLevel}
		for _, e := range np.Templates {
			id := tids[len(trow)]
			first, last = min(first, id), max(last, id)
			trow = append(trow, []any{id, p.ID, g.Tenant, g.Version, len(e), t.search.EmbeddingArg(e)})
		}
	}
	if _, err := t.tx.CopyFrom(ctx, pgx.Identifier{"persons"},
		[]string{"id", "tenant", "version", "puid", "guid", "external_id", "enroll_level"}, pgx.CopyFromRows(prow)); err != nil {
		return nil, Translate(err)
	}
	if _, err := t.tx.CopyFrom(ctx, pgx.Identifier{"templates"},
		[]string{"id", "person_id", "tenant", "version", "dim", "embedding"}, pgx.CopyFromRows(trow)); err != nil {
		return nil, Translate(err)
	}
	var seq int64
	if err := t.tx.QueryRow(ctx, `INSERT INTO galleries (tenant, version, persons, templates, seq) VALUES ($1, $2, $3, $4, 1)
		ON CONFLICT (tenant, version) DO UPDATE SET persons = galleries.persons + $3, templates = galleries.templates + $4,
		seq = galleries.seq + 1 RETURNING seq`, g.Tenant, g.Version, len(ps), nt).Scan(&seq); err != nil {
		return nil, Translate(err)
	}
	payload, err := json.Marshal(Change{Seq: seq, Tenant: g.Tenant, Version: g.Version, FirstTemplate: first, LastTemplate: last})
	if err != nil {
		return nil, err
	}
	if _, err = t.tx.Exec(ctx, `SELECT pg_notify('`+TemplatesChannel+`', $1)`, string(payload)); err != nil {
		return nil, Translate(err)
	}
	next := 0
	for i, np := range ps {
		for _, e := range np.Templates {
			t.added = append(t.added, added{person: out[i].ID, gallery: g, e: e})
			t.created = append(t.created, NewTemplate{ID: tids[next], PersonID: out[i].ID, Embedding: e})
			next++
		}
	}
	t.last = seq
	return out, nil
}

func (t *galleryTx) AuditAll(ctx context.Context, entries []engine.AuditEntry) error {
	_, err := t.tx.CopyFrom(ctx, pgx.Identifier{"audit_log"}, auditColumns, pgx.CopyFromRows(auditRows(entries)))
	return Translate(err)
}

func (t *galleryTx) Person(ctx context.Context, tenant string, id int64) (engine.Person, error) {
	return onePerson(t.tx.Query(ctx, `SELECT `+personColumns+` FROM persons WHERE tenant = $1 AND id = $2`, tenant, id))
}

func (t *galleryTx) PersonByExternalID(ctx context.Context, g engine.Gallery, externalID string) (engine.Person, error) {
	return onePerson(t.tx.Query(ctx, `SELECT `+personColumns+` FROM persons
		WHERE tenant = $1 AND version = $2 AND external_id = $3`, g.Tenant, g.Version, externalID))
}

func (t *galleryTx) CreatePerson(ctx context.Context, p engine.Person) (engine.Person, error) {
	err := t.tx.QueryRow(ctx, `INSERT INTO persons (tenant, version, puid, guid, external_id)
		VALUES ($1, $2, $3, $4, $5) RETURNING id, created_at`,
		p.Gallery.Tenant, p.Gallery.Version, p.PUID, p.GUID, p.ExternalID).Scan(&p.ID, &p.CreatedAt)
	if err != nil {
		return p, Translate(err)
	}
	_, err = t.tx.Exec(ctx, `INSERT INTO galleries (tenant, version, persons) VALUES ($1, $2, 1)
		ON CONFLICT (tenant, version) DO UPDATE SET persons = galleries.persons + 1`, p.Gallery.Tenant, p.Gallery.Version)
	return p, Translate(err)
}

func (t *galleryTx) SetExternalID(ctx context.Context, p engine.Person, externalID string) error {
	_, err := t.tx.Exec(ctx, `UPDATE persons SET external_id = $3 WHERE tenant = $1 AND id = $2`, p.Gallery.Tenant, p.ID, externalID)
	return Translate(err)
}

func (t *galleryTx) AddTemplates(ctx context.Context, p engine.Person, ts []engine.Embedding) (int, error) {
	batch := &pgx.Batch{}
	for _, e := range ts {
		batch.Queue(`INSERT INTO templates (person_id, tenant, version, dim, embedding) VALUES ($1, $2, $3, $4, $5)`,
			p.ID, p.Gallery.Tenant, p.Gallery.Version, len(e), t.search.EmbeddingArg(e))
	}
	if err := t.tx.SendBatch(ctx, batch).Close(); err != nil {
		return 0, Translate(err)
	}
	var level int
	if err := t.tx.QueryRow(ctx, `UPDATE persons SET enroll_level = enroll_level + $3 WHERE tenant = $1 AND id = $2 RETURNING enroll_level`,
		p.Gallery.Tenant, p.ID, len(ts)).Scan(&level); err != nil {
		return 0, Translate(err)
	}
	var seq int64
	if err := t.tx.QueryRow(ctx, `UPDATE galleries SET templates = templates + $3, seq = seq + 1 WHERE tenant = $1 AND version = $2 RETURNING seq`,
		p.Gallery.Tenant, p.Gallery.Version, len(ts)).Scan(&seq); err != nil {
		return 0, Translate(err)
	}
	for _, e := range ts {
		t.added = append(t.added, added{person: p.ID, gallery: p.Gallery, e: e})
	}
	t.last, t.otherChanges = seq, true
	return level, Translate(notifyPerson(ctx, t.tx, p.ID, p.Gallery, seq))
}

func (t *galleryTx) FinishEnrollRequests(ctx context.Context, ids []string, res []engine.EnrollResult) error {
	states, outcomes, reasons := make([]string, len(ids)), make([]string, len(ids)), make([]string, len(ids))
	persons, scores := make([]*int64, len(ids)), make([]float64, len(ids))
	for i, r := range res {
		states[i], outcomes[i], reasons[i], scores[i] = string(engine.Done), string(r.Outcome), r.Reason, r.Score
		if r.Outcome == engine.Rejected {
			states[i] = string(engine.Failed)
		} else {
			persons[i] = &res[i].Person.ID
		}
	}
	if _, err := t.tx.Exec(ctx, `UPDATE enroll_requests r SET state = u.state, outcome = u.outcome, reason = u.reason,
		person_id = u.person_id, score = u.score, templates = NULL, finished_at = now()
		FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[], $6::float8[])
			AS u(id, state, outcome, reason, person_id, score)
		WHERE r.id = u.id`, ids, states, outcomes, reasons, persons, scores); err != nil {
		return Translate(err)
	}
	if err := enqueueEnrollEvents(ctx, t.tx, ids); err != nil {
		return Translate(err)
	}
	return Translate(notifyFinished(ctx, t.tx, ids))
}

// ImportProgress implements engine.Store.
func (p *Store) ImportProgress(ctx context.Context, source string) (int64, error) {
	var done int64
	err := p.pool.QueryRow(ctx, `SELECT done FROM import_progress WHERE source = $1`, source).Scan(&done)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, nil
	}
	return done, Translate(err)
}

func (t *galleryTx) SaveImportProgress(ctx context.Context, source string, done int64) error {
	_, err := t.tx.Exec(ctx, `INSERT INTO import_progress (source, done) VALUES ($1, $2)
		ON CONFLICT (source) DO UPDATE SET done = excluded.done, updated_at = now()`, source, done)
	return Translate(err)
}

// Export implements engine.Store.
func (p *Store) Export(ctx context.Context, g engine.Gallery, withTemplates bool, fn func(engine.Person, []engine.Embedding) error) error {
	rows, err := p.pool.Query(ctx, `SELECT `+personColumns+` FROM persons WHERE tenant = $1 AND version = $2 ORDER BY id`, g.Tenant, g.Version)
	if err != nil {
		return Translate(err)
	}
	persons, err := pgx.CollectRows(rows, scanPerson)
	if err != nil {
		return Translate(err)
	}
	for _, person := range persons {
		var ts []engine.Embedding
		if withTemplates {
			if ts, err = p.PersonTemplates(ctx, person.ID); err != nil {
				return err
			}
		}
		if err := fn(person, ts); err != nil {
			return err
		}
	}
	return nil
}

package vectorstore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/pgvector/pgvector-go"

	"github.com/biomatch/biomatch/engine"
	"github.com/biomatch/biomatch/postgres"
)

var (
	_ engine.Index        = (*PGVector)(nil)
	_ postgres.TxSearcher = (*PGVector)(nil)
)

// PGVectorConfig tunes search on pgvector.
type PGVectorConfig struct {
	// HNSWMinTemplates: galleries with at least this many templates are
	// searched through the HNSW index; smaller ones by exact scan.
	HNSWMinTemplates int
	// EfSearch is hnsw.ef_search (raised to k when k is larger).
	EfSearch int

	noVector bool // set by NewPGVector from the schema
	citus    bool // the database is a Citus coordinator (set by NewPGVector)
}

// PGVector searches the templates in PostgreSQL. With pgvector, templates
// are vectors searched by pgvector; without it (the extension could not be
// installed when the schema was made), they are real[] and Nearest is an
// exact dot-product scan in SQL: correct but slow, for the enroll dedup and
// as the last resort behind Exact. It also keeps the HNSW indexes.
type PGVector struct {
	pool    *pgxpool.Pool
	cfg     PGVectorConfig
	indexed sync.Map // dim → struct{}: partial HNSW index known to be valid
}

// NewPGVector returns a PGVector over a migrated pool (postgres.OpenPool).
func NewPGVector(ctx context.Context, pool *pgxpool.Pool, cfg PGVectorConfig) (*PGVector, error) {
	if cfg.HNSWMinTemplates <= 0 {
		cfg.HNSWMinTemplates = 10000
	}
	if cfg.EfSearch <= 0 {
		cfg.EfSearch = 100
	}
	var typ string
	err := pool.QueryRow(ctx, `SELECT format_type(atttypid, atttypmod) FROM pg_attribute
		WHERE attrelid = 'templates'::regclass AND attname = 'embedding'`).Scan(&typ)
	if err != nil {
		return nil, fmt.Errorf("inspect schema (run biomatch migrate?): %w", postgres.Translate(err))
	}
	cfg.noVector = typ != "vector"
	if err := pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'citus')`).Scan(&cfg.citus); err != nil {
		return nil, fmt.Errorf("inspect extensions: %w", postgres.Translate(err))
	}
	return &PGVector{pool: pool, cfg: cfg}, nil
}

// HasVector reports whether templates are pgvector vectors.
func (p *PGVector) HasVector() bool { return !p.cfg.noVector }

// EmbeddingArg encodes a template for the embedding column (a vector, or
// a real[] without pgvector).
func (p *PGVector) EmbeddingArg(e engine.Embedding) any {
	if p.cfg.noVector {
		return []float32(e)
	}
	return pgvector.NewVector(e)
}

// Ping reports whether the database answers.
func (p *PGVector) Ping(ctx context.Context) error { return postgres.Translate(p.pool.Ping(ctx)) }

// Nearest implements engine.Index: an exact scan for galleries smaller than
// HNSWMinTemplates, the dimension's HNSW index beyond.
func (p *PGVector) Nearest(ctx context.Context, g engine.Gallery, probe engine.Embedding, k int) ([]engine.Match, error) {
	ms, err := nearest(ctx, p.pool, p.cfg, g, probe, k)
	return ms, postgres.Translate(err)
}

// NearestIn implements postgres.TxSearcher with an exact scan through q
// (the enroll decision's transaction): never HNSW, which can miss the true
// neighbour and give a returning person a second identity.
// NearestBatchIn implements postgres.TxSearcher: NearestIn per probe.
func (p *PGVector) NearestBatchIn(ctx context.Context, q postgres.Querier, g engine.Gallery, seq int64, probes []engine.Embedding, k int, atLeast float64) ([][]engine.Match, error) {
	out := make([][]engine.Match, len(probes))
	for i, probe := range probes {
		ms, err := p.NearestIn(ctx, q, g, seq, probe, k)
		if err != nil {
			return nil, err
		}
		out[i] = engine.AtLeast(ms, atLeast)
	}
	return out, nil
}

func (p *PGVector) NearestIn(ctx context.Context, q postgres.Querier, g engine.Gallery, _ int64, probe engine.Embedding, k int) ([]engine.Match, error) {
	var ms []engine.Match
	var err error
	if p.cfg.noVector {
		ms, err = dotScan(ctx, q, g, probe, k)
	} else {
		ms, err = ExactScan(ctx, q, g, probe, k)
	}
	return ms, postgres.Translate(err)
}

func nearest(ctx context.Context, q postgres.Querier, cfg PGVectorConfig, g engine.Gallery, probe engine.Embedding, k int) ([]engine.Match, error) {
	var size int
	err := q.QueryRow(ctx, `SELECT templates FROM galleries WHERE tenant = $1 AND version = $2`, g.Tenant, g.Version).Scan(&size)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if cfg.noVector {
		return dotScan(ctx, q, g, probe, k)
	}
	if size < cfg.HNSWMinTemplates {
		return ExactScan(ctx, q, g, probe, k)
	}
	return HNSWScan(ctx, q, g, probe, k, max(cfg.EfSearch, k), cfg.citus)
}

// ExactScan ranks every template of g with the probe's dimension: recall 1.
func ExactScan(ctx context.Context, q postgres.Querier, g engine.Gallery, probe engine.Embedding, k int) ([]engine.Match, error) {
	return collect(q.Query(ctx, `
		SELECT id, person_id, 1 - (embedding <=> $1) FROM templates
		WHERE tenant = $2 AND version = $3 AND dim = $4
		ORDER BY embedding <=> $1, id LIMIT $5`,
		pgvector.NewVector(probe), g.Tenant, g.Version, len(probe), k))
}

// dotScan ranks real[] templates by their dot product with the probe, in SQL.
func dotScan(ctx context.Context, q postgres.Querier, g engine.Gallery, probe engine.Embedding, k int) ([]engine.Match, error) {
	return collect(q.Query(ctx, `
		SELECT id, person_id, (SELECT sum(a::float8 * b::float8) FROM unnest(embedding, $1::real[]) AS u(a, b)) AS score
		FROM templates WHERE tenant = $2 AND version = $3 AND dim = $4
		ORDER BY score DESC, id LIMIT $5`,
		[]float32(probe), g.Tenant, g.Version, len(probe), k))
}

// HNSWScan searches the partial HNSW index of the probe's dimension with
// hnsw.ef_search = ef and iterative scan, so the gallery filter cannot
// starve the result. It is approximate. q must be a transaction or a pool:
// the settings are made local to a transaction of their own. On a Citus
// coordinator (citus) the settings must reach the shards' workers, which
// Citus does only after citus.propagate_set_commands = 'local' (without it
// recall@10 at ef_search 200 was 0.73 instead of 1.00).
func HNSWScan(ctx context.Context, q postgres.Querier, g engine.Gallery, probe engine.Embedding, k, ef int, citus bool) ([]engine.Match, error) {
	dim := len(probe) // validated to [128, 512]: safe to format into SQL
	run := func(q postgres.Querier) ([]engine.Match, error) {
		if citus {
			if _, err := q.Exec(ctx, `SET LOCAL citus.propagate_set_commands = 'local'`); err != nil {
				return nil, err
			}
		}
		if _, err := q.Exec(ctx, fmt.Sprintf(`SET LOCAL hnsw.ef_search = %d`, ef)); err != nil {
			return nil, err
		}
		if _, err := q.Exec(ctx, `SET LOCAL hnsw.iterative_scan = relaxed_order`); err != nil {
			return nil, err
		}
		ms, err := collect(q.Query(ctx, fmt.Sprintf(`
			SELECT id, person_id, 1 - ((embedding::vector(%[1]d)) <=> $1::vector(%[1]d)) FROM templates
			WHERE dim = %[1]d AND tenant = $2 AND version = $3
			ORDER BY (embedding::vector(%[1]d)) <=> $1::vector(%[1]d) LIMIT $4`, dim),
			pgvector.NewVector(probe), g.Tenant, g.Version, k))
		// relaxed_order may return neighbours slightly out of order.
		slices.SortFunc(ms, engine.CompareMatches)
		return ms, err
	}
	if tx, ok := q.(pgx.Tx); ok {
		return run(tx)
	}
	var out []engine.Match
	err := pgx.BeginFunc(ctx, q.(*pgxpool.Pool), func(tx pgx.Tx) error {
		var err error
		out, err = run(tx)
		return err
	})
	return out, err
}

func collect(rows pgx.Rows, err error) ([]engine.Match, error) {
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (engine.Match, error) {
		var m engine.Match
		err := r.Scan(&m.TemplateID, &m.PersonID, &m.Score)
		return m, err
	})
}

// dimsInUse lists each template dimension present, through the gallery
// index (a loose index scan per gallery: no pass over the templates).
const dimsInUse = `
	SELECT DISTINCT d.dim FROM galleries g CROSS JOIN LATERAL (
		WITH RECURSIVE r(dim) AS (
			SELECT min(t.dim) FROM templates t WHERE t.tenant = g.tenant AND t.version = g.version
			UNION ALL
			SELECT (SELECT min(t.dim) FROM templates t WHERE t.tenant = g.tenant AND t.version = g.version AND t.dim > r.dim)
			FROM r WHERE r.dim IS NOT NULL)
		SELECT dim FROM r WHERE dim IS NOT NULL) d ORDER BY 1`

// EnsureIndexes builds the partial HNSW index of every template dimension
// in use that lacks one, with CREATE INDEX CONCURRENTLY (template writes go
// on meanwhile; search scans exactly until it is valid). One left invalid
// by an interrupted build is dropped and built again; one another session
// is building is left to it. It returns the dimensions it built. Without
// pgvector it does nothing.
func (p *PGVector) EnsureIndexes(ctx context.Context) ([]int, error) {
	if p.cfg.noVector {
		return nil, nil
	}
	rows, err := p.pool.Query(ctx, dimsInUse)
	if err != nil {
		return nil, postgres.Translate(err)
	}
	dims, err := pgx.CollectRows(rows, pgx.RowTo[int])
	if err != nil {
		return nil, postgres.Translate(err)
	}
	var built []int
	for _, dim := range dims {
		if _, ok := p.indexed.Load(dim); ok {
			continue
		}
		name := fmt.Sprintf("templates_hnsw_%d", dim) // dim is an int from the database: safe in SQL
		var exists, valid, building bool
		err := p.pool.QueryRow(ctx, `SELECT true, i.indisvalid,
				EXISTS (SELECT 1 FROM pg_stat_progress_create_index b WHERE b.index_relid = i.indexrelid)
			FROM pg_index i WHERE i.indexrelid = to_regclass($1)`, name).Scan(&exists, &valid, &building)
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return built, postgres.Translate(err)
		}
		switch {
		case valid:
			p.indexed.Store(dim, struct{}{})
			continue
		case building:
			continue
		case exists: // invalid, and nobody builds it: an interrupted build
			if _, err := p.pool.Exec(ctx, `DROP INDEX CONCURRENTLY IF EXISTS `+name); err != nil {
				return built, postgres.Translate(err)
			}
		}
		if _, err := p.pool.Exec(ctx, fmt.Sprintf(`CREATE INDEX CONCURRENTLY IF NOT EXISTS %[2]s ON templates
			USING hnsw ((embedding::vector(%[1]d)) vector_cosine_ops) WHERE dim = %[1]d`, dim, name)); err != nil {
			return built, fmt.Errorf("build %s: %w", name, postgres.Translate(err))
		}
		p.indexed.Store(dim, struct{}{})
		built = append(built, dim)
	}
	return built, nil
}

// KeepIndexes runs EnsureIndexes every interval until ctx ends, so the
// index of a new dimension is built in the background, never inside a
// request. Failures are logged and tried again. A round is skipped while
// need reports false (search does not use HNSW then).
func (p *PGVector) KeepIndexes(ctx context.Context, every time.Duration, log *slog.Logger, need func() bool) {
	for {
		var built []int
		var err error
		if need() {
			built, err = p.EnsureIndexes(ctx)
		}
		if err != nil && ctx.Err() == nil {
			log.Warn("HNSW index maintenance", "err", err)
		}
		if len(built) > 0 {
			log.Info("HNSW indexes built", "dims", built)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(every):
		}
	}
}

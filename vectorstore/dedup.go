package vectorstore

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/biomatch/biomatch/engine"
	"github.com/biomatch/biomatch/postgres"
)

var _ postgres.TxSearcher = (*Dedup)(nil)

// Dedup is the enroll decision's search (postgres.TxSearcher), exact by
// construction: the in-memory index once it reflects every change of the
// gallery committed before the decision's lock was taken (its change
// sequence, read under that lock), else PGVector's exact SQL scan. Never
// HNSW.
type Dedup struct {
	Mem  *Synced // nil: always the SQL scan
	PG   *PGVector
	Wait time.Duration // how long to wait for the index to catch up; 0: 1 s
	// BatchWait is Wait for a batched search (an enroll batch, an import
	// batch), whose SQL fallback scans once per probe; 0: 10 s (a third of
	// a worker task's time).
	BatchWait time.Duration
	Log       *slog.Logger // nil: no log

	mu     sync.Mutex
	behind map[engine.Gallery]int64 // the gallery's sequence the index last failed to reach in time
}

var _ postgres.OwnWrites = (*Dedup)(nil)

// Committed implements postgres.OwnWrites: the in-memory index takes the
// rows from memory (Synced.Committed), not from PostgreSQL.
func (d *Dedup) Committed(g engine.Gallery, from, to int64, rows []postgres.NewTemplate) {
	if d.Mem != nil {
		d.Mem.Committed(g, from, to, rows)
	}
}

// NearestIn implements postgres.TxSearcher.
func (d *Dedup) NearestIn(ctx context.Context, q postgres.Querier, g engine.Gallery, seq int64, probe engine.Embedding, k int) ([]engine.Match, error) {
	wait := d.Wait
	if wait <= 0 {
		wait = time.Second
	}
	if d.current(ctx, g, seq, wait) {
		return d.Mem.Exact.Nearest(ctx, g, probe, k)
	}
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	return d.PG.NearestIn(ctx, q, g, seq, probe, k)
}

// NearestBatchIn implements postgres.TxSearcher: one pass of the in-memory
// index for all the probes, else the SQL scan per probe.
func (d *Dedup) NearestBatchIn(ctx context.Context, q postgres.Querier, g engine.Gallery, seq int64, probes []engine.Embedding, k int, atLeast float64) ([][]engine.Match, error) {
	wait := d.BatchWait
	if wait <= 0 {
		wait = 10 * time.Second
	}
	if d.current(ctx, g, seq, wait) {
		return d.Mem.Exact.NearestBatch(ctx, g, probes, k, atLeast)
	}
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	return d.PG.NearestBatchIn(ctx, q, g, seq, probes, k, atLeast)
}

// current reports whether the in-memory index reflects every change of g
// up to seq, waiting for it up to wait: once per transaction (seq) that
// finds it behind, which is logged.
func (d *Dedup) current(ctx context.Context, g engine.Gallery, seq int64, wait time.Duration) bool {
	if d.Mem != nil && d.Mem.Active() && d.Mem.Loaded() {
		d.mu.Lock()
		late := d.behind[g] == seq && seq > 0 // this transaction's earlier items waited already
		d.mu.Unlock()
		if !late {
			d.Mem.ApplyOwn(g, seq)
			if d.Mem.WaitFor(ctx, g, seq, wait) == nil {
				return true
			}
			if ctx.Err() != nil {
				return false
			}
			d.mu.Lock()
			if d.behind == nil {
				d.behind = map[engine.Gallery]int64{}
			}
			d.behind[g] = seq
			d.mu.Unlock()
			if d.Log != nil {
				d.Log.Warn("the in-memory index is behind the gallery: this decision searches PostgreSQL (an exact scan per probe)",
					"tenant", g.Tenant, "version", g.Version, "seq", seq, "waited", wait)
			}
		}
	}
	return false
}

// EmbeddingArg implements postgres.TxSearcher.
func (d *Dedup) EmbeddingArg(e engine.Embedding) any { return d.PG.EmbeddingArg(e) }

package vectorstore

import (
	"context"
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

	mu     sync.Mutex
	behind map[engine.Gallery]int64 // the gallery's sequence the index last failed to reach in time
}

// NearestIn implements postgres.TxSearcher.
func (d *Dedup) NearestIn(ctx context.Context, q postgres.Querier, g engine.Gallery, seq int64, probe engine.Embedding, k int) ([]engine.Match, error) {
	if d.current(ctx, g, seq) {
		return d.Mem.Exact.Nearest(ctx, g, probe, k)
	}
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	return d.PG.NearestIn(ctx, q, g, seq, probe, k)
}

// NearestBatchIn implements postgres.TxSearcher: one pass of the in-memory
// index for all the probes, else the SQL scan per probe.
func (d *Dedup) NearestBatchIn(ctx context.Context, q postgres.Querier, g engine.Gallery, seq int64, probes []engine.Embedding, k int) ([][]engine.Match, error) {
	if d.current(ctx, g, seq) {
		return d.Mem.Exact.NearestBatch(ctx, g, probes, k)
	}
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	return d.PG.NearestBatchIn(ctx, q, g, seq, probes, k)
}

// current reports whether the in-memory index reflects every change of g
// up to seq, waiting for it up to Wait: once per transaction (seq) that
// finds it behind.
func (d *Dedup) current(ctx context.Context, g engine.Gallery, seq int64) bool {
	if d.Mem != nil && d.Mem.Active() && d.Mem.Loaded() {
		wait := d.Wait
		if wait <= 0 {
			wait = time.Second
		}
		d.mu.Lock()
		late := d.behind[g] == seq && seq > 0 // this transaction's earlier items waited already
		d.mu.Unlock()
		if !late {
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
		}
	}
	return false
}

// EmbeddingArg implements postgres.TxSearcher.
func (d *Dedup) EmbeddingArg(e engine.Embedding) any { return d.PG.EmbeddingArg(e) }

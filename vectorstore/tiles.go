package vectorstore

import "github.com/biomatch/biomatch/vectorstore/kernel"

// tileStore holds the int8 rows of a matrix again as the tile kernels
// read them (see kernel.DotsTiles), with each row's bounds: in
// chunks of chunkRows rows like the matrix's other rows, each chunk an
// even number of tiles (the kernels score tiles in pairs). A chunk grows
// by doubling until full, so a small gallery stays small.
type tileStore struct {
	width  int // values of each row, a multiple of 4
	data   [][]uint8
	bounds [][]float32
}

const tilesPerChunk = chunkRows / kernel.TileRows

// put sets row i (at most one past the last row) from its int8 values x
// (at least width) and bounds.
func (t *tileStore) put(i int, x []int8, inv, res, qn, suf float32) {
	c, tile := i/chunkRows, i%chunkRows/kernel.TileRows
	if c == len(t.data) {
		t.data = append(t.data, nil)
		t.bounds = append(t.bounds, nil)
	}
	if need := (tile/2 + 1) * 2; need*kernel.TileBoundFloats > len(t.bounds[c]) {
		tiles := min(max(need, 2*len(t.bounds[c])/kernel.TileBoundFloats), tilesPerChunk)
		if c > 0 {
			tiles = tilesPerChunk // chunks past the first are allocated full
		}
		t.data[c] = append(t.data[c], make([]uint8, tiles*kernel.TileBytes(t.width)-len(t.data[c]))...)
		t.bounds[c] = append(t.bounds[c], make([]float32, tiles*kernel.TileBoundFloats-len(t.bounds[c]))...)
	}
	kernel.PutTileRow(t.data[c][tile*kernel.TileBytes(t.width):], i%kernel.TileRows, x[:t.width])
	kernel.SetTileBounds(t.bounds[c][tile*kernel.TileBoundFloats:], i%kernel.TileRows, inv, res, qn, suf)
}

// row reads row i's values into x (at least width long) and returns
// them.
func (t *tileStore) row(i int, x []int8) []int8 {
	c, tile := i/chunkRows, i%chunkRows/kernel.TileRows
	kernel.TileRow(t.data[c][tile*kernel.TileBytes(t.width):], i%kernel.TileRows, x[:t.width])
	return x[:t.width]
}

// drop forgets row n, the last row: its bounds are zeroed (so no kernel
// flags it) and its chunk is released once empty.
func (t *tileStore) drop(n int) {
	c, tile := n/chunkRows, n%chunkRows/kernel.TileRows
	if n%chunkRows == 0 {
		t.data, t.bounds = t.data[:c], t.bounds[:c]
		return
	}
	kernel.SetTileBounds(t.bounds[c][tile*kernel.TileBoundFloats:], n%kernel.TileRows, 0, 0, 0, 0)
}

// block returns the tiles of rows [lo, hi), lo a multiple of blockRows and
// hi in lo's chunk, and their number (even: the last may hold rows past
// hi, which the caller ignores).
func (t *tileStore) block(lo, hi int) (data []uint8, bounds []float32, tiles int) {
	c, first := lo/chunkRows, lo%chunkRows/kernel.TileRows
	tiles = ((hi-lo+kernel.TileRows-1)/kernel.TileRows + 1) &^ 1
	tb := kernel.TileBytes(t.width)
	return t.data[c][first*tb : (first+tiles)*tb], t.bounds[c][first*kernel.TileBoundFloats : (first+tiles)*kernel.TileBoundFloats], tiles
}

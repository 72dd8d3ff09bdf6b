package vectorstore

import (
	"slices"
	"testing"

	"github.com/biomatch/biomatch/vectorstore/kernel"
)

// TestTileStoreGrowsAndReleases follows a tile store through a first
// chunk growing by doubling, a second chunk allocated whole, rows read
// back as written, a dropped row
// (its bounds zeroed, so no kernel flags it) and the release of the
// second chunk once its last row is dropped.
func TestTileStoreGrowsAndReleases(t *testing.T) {
	const width = 32
	ts := &tileStore{width: width}
	x := make([]int8, width)
	for i := range chunkRows + 17 {
		x[0] = int8(i)
		ts.put(i, x, 1, 2, 3, 4)
		if i == 40 {
			if got := len(ts.bounds[0]) / kernel.TileBoundFloats; got != 4 {
				t.Fatalf("after 41 rows the first chunk holds %d tiles, want 4 (41 rows round up to 3 tiles, to 4 in pairs)", got)
			}
		}
	}
	if len(ts.data) != 2 || len(ts.bounds[1]) != tilesPerChunk*kernel.TileBoundFloats || len(ts.data[0]) != tilesPerChunk*kernel.TileBytes(width) {
		t.Fatalf("chunks: %d, second %d bounds, first %d bytes", len(ts.data), len(ts.bounds[1]), len(ts.data[0]))
	}
	data, bounds, tiles := ts.block(chunkRows, chunkRows+17)
	if tiles != 2 || len(data) != 2*kernel.TileBytes(width) || len(bounds) != 2*kernel.TileBoundFloats {
		t.Fatalf("block of 17 rows: %d tiles, %d bytes, %d bounds", tiles, len(data), len(bounds))
	}
	row := chunkRows + 16 // the block's row 16: tile 1, row 0
	if got, want := int8(data[kernel.TileBytes(width)]^0x80), int8(row); got != want {
		t.Fatalf("row %d's first value reads %d, want %d", row, got, want)
	}
	for _, i := range []int{0, 1, 15, 16, 40, chunkRows - 1, chunkRows, row} {
		x[0] = int8(i)
		if got := ts.row(i, make([]int8, width)); !slices.Equal(got, x) {
			t.Fatalf("row %d reads %v, want %v", i, got, x)
		}
	}
	ts.drop(chunkRows + 16)
	if b := bounds[kernel.TileBoundFloats:]; b[0] != 0 || b[kernel.TileRows] != 0 || b[2*kernel.TileRows] != 0 || b[3*kernel.TileRows] != 0 {
		t.Fatalf("dropped row's bounds %v %v %v %v, want zeros", b[0], b[kernel.TileRows], b[2*kernel.TileRows], b[3*kernel.TileRows])
	}
	for n := chunkRows + 15; n >= chunkRows; n-- {
		ts.drop(n)
	}
	if len(ts.data) != 1 || len(ts.bounds) != 1 {
		t.Fatalf("after dropping every row of the second chunk: %d chunks, want 1", len(ts.data))
	}
}

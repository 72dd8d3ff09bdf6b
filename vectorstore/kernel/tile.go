package kernel

import (
	"math"
	"slices"
)

// Tiles: the layout of the dedup search's head scan. A tile interleaves
// the first head values of TileRows rows by four, as unsigned bytes:
// value 4s+k of row r (x+128) at byte s*64 + r*4 + k. One 64-byte load
// then holds four values of sixteen rows, and one vpdpbusd with four
// bytes of a probe broadcast adds them to the sixteen rows' products: no
// per-row sums at the end, so the kernel runs at the rate of the
// multiply-add unit, about twice the row-major batch kernel's.
//
// Each tile comes with its rows' bounds, TileBoundFloats float32s: inv
// (1/scale of the row's int8 values), res, qn and suf (see DotsTiles), 16
// of each; the rows of a tile not in use have all four at zero.
const (
	TileRows        = 16
	TileBoundFloats = 4 * TileRows
)

// HasTiles reports whether this CPU runs the tile kernels (AVX-512 VNNI).
// Without them callers scan rows with DotsI8.
var HasTiles = false

// TileBytes is the size of a tile of head values per row.
func TileBytes(head int) int { return TileRows * head }

// PutTileRow writes x (head values, head a multiple of 4) as row r of
// tile.
func PutTileRow(tile []uint8, r int, x []int8) {
	for s := 0; s < len(x)/4; s++ {
		for k := range 4 {
			tile[s*64+r*4+k] = uint8(x[4*s+k]) ^ 0x80
		}
	}
}

// TileRow reads row r of tile into x: the values PutTileRow wrote.
func TileRow(tile []uint8, r int, x []int8) {
	for s := 0; s < len(x)/4; s++ {
		for k := range 4 {
			x[4*s+k] = int8(tile[s*64+r*4+k] ^ 0x80)
		}
	}
}

// SetTileBounds sets row r's bounds in its tile's bounds b.
func SetTileBounds(b []float32, r int, inv, res, qn, suf float32) {
	b[r], b[TileRows+r], b[2*TileRows+r], b[3*TileRows+r] = inv, res, qn, suf
}

// tileKernel is the signature of the generated tile kernels, by probes
// per pass in tileKernels (see internal/gen).
type tileKernel func(tiles *uint8, tileBytes, steps int, qp *int8, corr *int32, pv *float32, rb *float32,
	out *int32, ostride int, mask *uint16, mstride int)

var tileKernels map[int]tileKernel

// tileProbeSizes are the probe counts of the tile kernels, largest first.
var tileProbeSizes = []int{12, 8, 4, 1}

// TileProbes is a batch of int8 probes laid out for the tile kernels, in
// groups of 12, 8, 4 and 1, with each probe's parameters for the flags.
type TileProbes struct {
	n, head int
	groups  []tileGroup
	scratch []int32 // where DotsTiles has the kernels write products it does not keep
}

type tileGroup struct {
	first, n int
	packed   []int8    // value 4s+k of probe j at (s*n+j)*4+k
	corr     []int32   // 128·Σq of each probe
	params   []float32 // qinv, res, suf and floor of each probe: params[w*n+j]
}

// NewTileProbes lays out the first head values of qs (each within ±127)
// with, for each probe j, 1/scale qinv[j], ‖q − q̃‖ res[j] and the norm of
// its values past head suf[j] (both rounded up).
func NewTileProbes(qs [][]int16, head int, qinv, res, suf []float64) *TileProbes {
	p := &TileProbes{n: len(qs), head: head}
	for first := 0; first < len(qs); {
		n := 1
		for _, size := range tileProbeSizes {
			if first+size <= len(qs) {
				n = size
				break
			}
		}
		g := tileGroup{first: first, n: n, packed: make([]int8, n*head), corr: make([]int32, n), params: make([]float32, 4*n)}
		for j := range n {
			q := qs[first+j][:head]
			for i, v := range q {
				g.packed[(i/4*n+j)*4+i%4] = int8(v)
				g.corr[j] += 128 * int32(v)
			}
			g.params[j] = float32(qinv[first+j])
			g.params[n+j] = up32(res[first+j])
			g.params[2*n+j] = up32(suf[first+j])
			g.params[3*n+j] = float32(math.Inf(1)) // until SetFloors
		}
		p.groups = append(p.groups, g)
		first += n
	}
	return p
}

// up32 is f rounded up to a float32.
func up32(f float64) float32 {
	v := float32(f)
	if float64(v) < f {
		v = math.Nextafter32(v, float32(math.Inf(1)))
	}
	return v
}

// tileSlack covers the float32 rounding of a flag's left side: a few
// roundings of terms below 2 in size.
const tileSlack = 1e-5

// Floored returns a copy of p, sharing its probe values, whose floors
// SetFloors sets (all +∞ until then): one per goroutine.
func (p *TileProbes) Floored() *TileProbes {
	c := &TileProbes{n: p.n, head: p.head, groups: slices.Clone(p.groups), scratch: make([]int32, p.n*TileRows)}
	for g := range c.groups {
		c.groups[g].params = slices.Clone(c.groups[g].params)
	}
	return c
}

// SetFloors sets the score each probe j's flags ask for to floor(j): a row
// is flagged when its bound may reach it (less tileSlack, for float32
// rounding).
func (p *TileProbes) SetFloors(floor func(j int) float64) {
	for _, g := range p.groups {
		for j := range g.n {
			f := floor(g.first+j) - tileSlack
			v := float32(f)
			if float64(v) > f {
				v = math.Nextafter32(v, float32(math.Inf(-1)))
			}
			g.params[3*g.n+j] = v
		}
	}
}

// Len is the number of probes.
func (p *TileProbes) Len() int { return p.n }

// DotsTiles scores ntiles tiles (an even number, back to back in tiles,
// each of width values per row; their bounds back to back in bounds)
// on their first p-head values (width at least that) against the
// probes of p (from Floored): for tile t, probe j and row r, bit r of
// mask[t*p.Len()+j] is set when
//
//	d·inv·qinv + qn·res_q + suf·suf_q + res ≥ floor
//
// in float32, d being the int8 product of the row's and the probe's heads
// (inv, res, qn and suf the row's bounds; qinv, res_q, suf_q and floor the
// probe's): when the row's score may reach the probe's floor given the
// int8 rounding (res + qn·res_q bounds it for unit vectors) and the rest
// of the row (Cauchy–Schwarz: at most suf·suf_q). Callers score a flagged
// row again. Only where HasTiles.
func DotsTiles(tiles []uint8, width int, bounds []float32, ntiles int, p *TileProbes, mask []uint16) {
	dotsTiles(tiles, width, bounds, ntiles, p, mask, p.scratch, 0)
}

// DotsTilesOut is DotsTiles writing each product d too: tile t, probe j,
// row r at out[(t*p.Len()+j)*TileRows+r].
func DotsTilesOut(tiles []uint8, width int, bounds []float32, ntiles int, p *TileProbes, mask []uint16, out []int32) {
	dotsTiles(tiles, width, bounds, ntiles, p, mask, out, p.n*TileRows)
}

// dotsTiles is DotsTiles writing the products of tile t and probe j to
// out[t*ostride + j*16 :] (ostride 0: all tiles to one place, overwritten).
func dotsTiles(tiles []uint8, width int, bounds []float32, ntiles int, p *TileProbes, mask []uint16, out []int32, ostride int) {
	if ntiles == 0 {
		return
	}
	if ntiles%2 != 0 {
		panic("kernel: DotsTiles needs an even number of tiles")
	}
	if width < p.head {
		panic("kernel: DotsTiles needs tiles at least as wide as the probes' head")
	}
	tb := TileBytes(width)
	_ = tiles[ntiles*tb-1]
	_ = bounds[ntiles*TileBoundFloats-1]
	_ = out[(ntiles-1)*ostride+p.n*TileRows-1]
	_ = mask[ntiles*p.n-1]
	// Pair by pair, every probe group: the pair's rows stay in the core's
	// first-level cache while the probes stream past (group by group, each
	// group read the block's tiles from the second level again: about 5 %
	// slower in BenchmarkDotsTiles at 256 probes).
	for t := 0; t < ntiles; t += 2 {
		for _, g := range p.groups {
			tileKernels[g.n](&tiles[t*tb], tb, p.head/4, &g.packed[0], &g.corr[0], &g.params[0], &bounds[t*TileBoundFloats],
				&out[t*ostride+g.first*TileRows], ostride*4, &mask[t*p.n+g.first], p.n*2)
		}
	}
}

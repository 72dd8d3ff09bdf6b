package kernel

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// tileCase is a random batch of tiles and probes for the tile kernels:
// the probes score the first head values of tiles of width values.
type tileCase struct {
	head, width, ntiles   int
	rows                  [][]int8 // ntiles*16 rows of width values
	tiles                 []uint8
	bounds                []float32
	qs                    [][]int16
	qinv, res, suf, floor []float64
}

func newTileCase(r *rand.Rand, head, width, ntiles, nq int, extreme bool) tileCase {
	c := tileCase{head: head, width: width, ntiles: ntiles, tiles: make([]uint8, ntiles*TileBytes(width)),
		bounds: make([]float32, ntiles*TileBoundFloats)}
	for i := range ntiles * TileRows {
		x := make([]int8, width)
		for k := range x {
			x[k] = int8(r.IntN(256) - 128)
			if extreme {
				x[k] = -128
			}
		}
		c.rows = append(c.rows, x)
		t := i / TileRows
		PutTileRow(c.tiles[t*TileBytes(width):], i%TileRows, x)
		if i%7 != 6 { // some rows unused: bounds zero
			SetTileBounds(c.bounds[t*TileBoundFloats:], i%TileRows, float32(r.Float64()/127/math.Sqrt(float64(head))), float32(r.Float64()/50),
				float32(1+r.Float64()/100), float32(r.Float64()))
		}
	}
	for range nq {
		q := make([]int16, head)
		for k := range q {
			q[k] = int16(r.IntN(255) - 127)
			if extreme {
				q[k] = 127 * int16(1-2*(k%2))
			}
		}
		c.qs = append(c.qs, q)
		c.qinv = append(c.qinv, 1/127.0)
		c.res = append(c.res, r.Float64()/50)
		c.suf = append(c.suf, r.Float64())
		c.floor = append(c.floor, 0.2+0.3*r.Float64())
	}
	return c
}

// want is the tile kernels' contract in float64: each product, and its
// flag's left side.
func (c tileCase) want(t, j, r int) (int32, float64) {
	var d int32
	for k, v := range c.rows[t*TileRows+r][:c.head] {
		d += int32(v) * int32(c.qs[j][k])
	}
	b := c.bounds[t*TileBoundFloats:]
	inv, res, qn, suf := float64(b[r]), float64(b[TileRows+r]), float64(b[2*TileRows+r]), float64(b[3*TileRows+r])
	return d, float64(d)*inv*c.qinv[j] + qn*c.res[j] + suf*c.suf[j] + res
}

// TestDotsTiles holds the tile kernels to a plain int32 sum and a float64
// bound, for every batch size up to 30 (every mix of the 12-, 8-, 4- and
// 1-probe kernels), heads of one to 96 steps on tiles that wide or
// longer, and the extreme values (−128 rows against ±127 probes): each
// product exact, each row whose bound reaches its probe's floor flagged,
// none flagged whose bound is clearly below it.
func TestDotsTiles(t *testing.T) {
	if !HasTiles {
		t.Skip("this CPU has no AVX-512 VNNI: no tile kernels")
	}
	r := rand.New(rand.NewPCG(7, 7))
	for _, head := range []int{4, 64, 160, 320, 384} {
		for nq := 1; nq <= 30; nq++ {
			ntiles := 2 * (1 + nq%3)
			width := head + 4*(nq%3) // the probes' head, or longer tiles
			c := newTileCase(r, head, width, ntiles, nq, nq == 13)
			p := NewTileProbes(c.qs, head, c.qinv, c.res, c.suf)
			p = p.Floored()
			p.SetFloors(func(j int) float64 { return c.floor[j] })
			out, mask := make([]int32, ntiles*nq*16), make([]uint16, ntiles*nq)
			DotsTilesOut(c.tiles, width, c.bounds, ntiles, p, mask, out)
			flagsOnly := make([]uint16, ntiles*nq)
			DotsTiles(c.tiles, width, c.bounds, ntiles, p, flagsOnly)
			if !slices.Equal(flagsOnly, mask) {
				t.Fatalf("head %d, %d probes: DotsTiles flags differ from DotsTilesOut's", head, nq)
			}
			name := fmt.Sprintf("head %d (tiles of %d), %d probes", head, width, nq)
			flags := 0
			for tl := range ntiles {
				for j := range nq {
					for row := range TileRows {
						d, lhs := c.want(tl, j, row)
						if got := out[(tl*nq+j)*16+row]; got != d {
							t.Fatalf("%s: tile %d probe %d row %d = %d, want %d", name, tl, j, row, got, d)
						}
						flag := mask[tl*nq+j]>>row&1 == 1
						if flag {
							flags++
						}
						switch {
						case lhs >= c.floor[j] && !flag:
							t.Fatalf("%s: tile %d probe %d row %d not flagged: %v ≥ floor %v", name, tl, j, row, lhs, c.floor[j])
						case lhs < c.floor[j]-2*tileSlack && flag:
							t.Fatalf("%s: tile %d probe %d row %d flagged: %v < floor %v", name, tl, j, row, lhs, c.floor[j])
						}
					}
				}
			}
			if nq > 3 && (flags == 0 || flags == ntiles*nq*16) {
				t.Fatalf("%s: %d of %d rows flagged: the case tests nothing", name, flags, ntiles*nq*16)
			}
		}
	}
}

// BenchmarkDotsTiles reports 384-value head products per second of the
// tile kernel, 256 rows in cache against batches of probes, beside the
// row-major VNNI kernel on the same heads (BenchmarkDotsI8Batch's layout,
// stride 512).
func BenchmarkDotsTiles(b *testing.B) {
	if !HasTiles {
		b.Skip("no tile kernels on this CPU")
	}
	const head, rows = 384, 256
	r := rand.New(rand.NewPCG(8, 8))
	for _, nq := range []int{1, 8, 12, 48, 256} {
		c := newTileCase(r, head, head, rows/TileRows, nq, false)
		p := NewTileProbes(c.qs, head, c.qinv, c.res, c.suf).Floored()
		mask := make([]uint16, rows/TileRows*nq)
		b.Run(fmt.Sprintf("tiles/probes=%d", nq), func(b *testing.B) {
			for b.Loop() {
				DotsTiles(c.tiles, head, c.bounds, rows/TileRows, p, mask)
			}
			b.ReportMetric(float64(b.N)*rows*float64(nq)/b.Elapsed().Seconds()/1e6, "Mcmp/s")
		})
		m := make([]int8, rows*512)
		for i, x := range c.rows {
			copy(m[i*512:], x)
		}
		rp := NewProbes(c.qs, head)
		floor, dots, flags := make([]int32, nq), make([]int32, rows*nq), make([]uint8, rows*rp.Groups())
		b.Run(fmt.Sprintf("rows/probes=%d", nq), func(b *testing.B) {
			for b.Loop() {
				DotsI8(m, 512, rp, floor, dots, flags)
			}
			b.ReportMetric(float64(b.N)*rows*float64(nq)/b.Elapsed().Seconds()/1e6, "Mcmp/s")
		})
	}
}

// BenchmarkDotsTilesParallel is the tile kernel on every core at once, as
// the dedup search runs it: heads of 352 values (the search's at 512), 256
// rows per core in cache, 256 probes.
func BenchmarkDotsTilesParallel(b *testing.B) {
	if !HasTiles {
		b.Skip("no tile kernels on this CPU")
	}
	const head, rows, nq = 352, 256, 256
	r := rand.New(rand.NewPCG(8, 8))
	c := newTileCase(r, head, head, rows/TileRows, nq, false)
	p0 := NewTileProbes(c.qs, head, c.qinv, c.res, c.suf)
	b.RunParallel(func(pb *testing.PB) {
		p := p0.Floored()
		mask := make([]uint16, rows/TileRows*nq)
		for pb.Next() {
			DotsTiles(c.tiles, head, c.bounds, rows/TileRows, p, mask)
		}
	})
	b.ReportMetric(float64(b.N)*rows*float64(nq)/b.Elapsed().Seconds()/1e6, "Mcmp/s")
}

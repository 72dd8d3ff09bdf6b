// Package kernel holds the hot loops of exact search: dot products of
// probes against the rows of a matrix, in float32 and in int8.
//
// float32: gonum's assembly (SGEMV for one probe, SGEMM for a batch), the
// fastest measured here. int8: Go assembly generated with avo
// (dots_amd64.s, from internal/gen) on amd64 CPUs with AVX2, part of every
// plain `go build`; elsewhere portable Go, which is slower than float32, so
// callers use the int8 pre-scan only when HasFastI8. A batch kernel reads
// each row once for up to 8 probes. With AVX-512 VNNI, the tile kernels
// (tile.go) score rows kept 16 to a tile, interleaved, 12 probes per pass
// (every int8 scan of vectorstore.Exact there), and flag the rows that may
// reach a score. Kernels
// differ in float rounding order, so callers must not rank on their
// results alone: see Dot64 and the error bounds in vectorstore.Exact.
package kernel

//go:generate go run ./internal/gen -out dots_amd64.s -stubs dots_amd64.go -pkg kernel

import (
	"iter"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas32"
)

// F32Func computes out[i] = rows[i]·q for the len(out) rows of dim values
// stored back to back in m.
type F32Func func(m []float32, dim int, q []float32, out []float32)

// I8Func computes out[i*p.Len()+j] = rows[i]·probe j in integers, for the
// len(out)/p.Len() rows of m, row i being the p.Dim() int8 values from
// m[i*stride] (stride ≥ p.Dim(): rows back to back, or each row's first
// values), and flags the products above a floor, so callers need not look
// at the others: bit b of mask[i*p.Groups()+g] is set when
// out[i*p.Len()+j] > floor[j], for probe j = p.Group(g) first + b.
type I8Func func(m []int8, stride int, p *Probes, floor []int32, out []int32, mask []uint8)

// The selected kernels and their names.
var (
	DotsF32   F32Func = DotsF32Gonum
	DotsI8    I8Func  = DotsI8Go
	NameF32           = "gonum"
	NameI8            = "go"
	HasFastI8         = false // an assembly int8 kernel is in use
	// ProbeMax is the largest probe value DotsI8 takes at full speed:
	// callers scale probes to ±ProbeMax (the VNNI kernel multiplies bytes;
	// wider probes make it fall back to the AVX2 one).
	ProbeMax = 32767
	asmI8    = map[string]I8Func{}
)

// Kernels returns every float32 kernel of this build, by name, for
// benchmarks and equality tests.
func Kernels() map[string]F32Func {
	return map[string]F32Func{"gonum": DotsF32Gonum, "go": DotsF32Go}
}

// KernelsI8 returns every int8 kernel this CPU can run, by name.
func KernelsI8() map[string]I8Func {
	out := map[string]I8Func{"go": DotsI8Go}
	for name, k := range asmI8 {
		out[name] = k
	}
	return out
}

// DotsF32Gonum is gonum's SGEMV: its float32 dot-product assembly per row.
func DotsF32Gonum(m []float32, dim int, q []float32, out []float32) {
	n := len(out)
	if n == 0 {
		return
	}
	a := blas32.General{Rows: n, Cols: dim, Stride: dim, Data: m[:n*dim]}
	blas32.Gemv(blas.NoTrans, 1, a, blas32.Vector{N: dim, Inc: 1, Data: q}, 0, blas32.Vector{N: n, Inc: 1, Data: out})
}

// DotF32 is a·b with gonum's float32 dot-product assembly (len(b) ≥ len(a)).
func DotF32(a, b []float32) float32 {
	return blas32.Dot(blas32.Vector{N: len(a), Inc: 1, Data: a}, blas32.Vector{N: len(a), Inc: 1, Data: b})
}

// DotsF32Batch computes out[i*len(qs)+j] = rows[i]·qs[j] with gonum's
// SGEMM, for the len(out)/len(qs) rows of dim values in m.
func DotsF32Batch(m []float32, dim int, qs []float32, out []float32) {
	nq := len(qs) / dim
	if nq == 0 || len(out) == 0 {
		return
	}
	n := len(out) / nq
	a := blas32.General{Rows: n, Cols: dim, Stride: dim, Data: m[:n*dim]}
	b := blas32.General{Rows: nq, Cols: dim, Stride: dim, Data: qs[:nq*dim]}
	c := blas32.General{Rows: n, Cols: nq, Stride: nq, Data: out[:n*nq]}
	blas32.Gemm(blas.NoTrans, blas.Trans, 1, a, b, 0, c)
}

// DotsF32Go is unrolled Go with four accumulators.
func DotsF32Go(m []float32, dim int, q []float32, out []float32) {
	q = q[:dim]
	for i := range out {
		row := m[i*dim : i*dim+dim]
		var s0, s1, s2, s3 float32
		j := 0
		for ; j+4 <= dim; j += 4 {
			s0 += row[j] * q[j]
			s1 += row[j+1] * q[j+1]
			s2 += row[j+2] * q[j+2]
			s3 += row[j+3] * q[j+3]
		}
		for ; j < dim; j++ {
			s0 += row[j] * q[j]
		}
		out[i] = (s0 + s1) + (s2 + s3)
	}
}

// Probes is a batch of int16 probes of one dimension, also laid out for
// the assembly kernels: groups of 8, 4, 2 and 1 probes, each group
// interleaved by chunk (16 values for AVX2; 64 bytes for VNNI, when every
// value fits a byte).
type Probes struct {
	qs      [][]int16
	dim     int
	groups  []group
	groups8 []group8 // nil unless every value is within ±127
}

type group struct {
	first, n int
	packed   []int16 // chunk c of probe j at (c*n+j)*16
}

type group8 struct {
	first, n int
	packed   []int8  // chunk c of probe j at (c*n+j)*64
	corr     []int32 // 128·Σq of each probe of the group
}

// groupSizes are the probe counts of the assembly kernels, largest first.
var groupSizes = []int{8, 4, 2, 1}

// groupSpans yields the groups of n probes, as (first probe, group size),
// largest groups first.
func groupSpans(n int) iter.Seq2[int, int] {
	return func(yield func(int, int) bool) {
		for first := 0; first < n; {
			size := 1
			for _, s := range groupSizes {
				if first+s <= n {
					size = s
					break
				}
			}
			if !yield(first, size) {
				return
			}
			first += size
		}
	}
}

// NewProbes lays out qs (each of length dim) for the kernels. It keeps qs.
func NewProbes(qs [][]int16, dim int) *Probes {
	p := &Probes{qs: qs, dim: dim}
	n16 := dim &^ 15
	for first, n := range groupSpans(len(qs)) {
		g := group{first: first, n: n, packed: make([]int16, n*n16)}
		for c := 0; c < n16/16; c++ {
			for j := range n {
				copy(g.packed[(c*n+j)*16:(c*n+j+1)*16], qs[first+j][c*16:c*16+16])
			}
		}
		p.groups = append(p.groups, g)
	}
	p.groups8 = pack8(qs, dim)
	return p
}

// pack8 lays the probes out for the VNNI kernels, or returns nil when a
// value does not fit a byte or dim is under 64.
func pack8(qs [][]int16, dim int) []group8 {
	n64 := dim &^ 63
	if n64 == 0 {
		return nil
	}
	for _, q := range qs {
		for _, v := range q[:dim] {
			if v < -127 || v > 127 {
				return nil
			}
		}
	}
	var out []group8
	for first, n := range groupSpans(len(qs)) {
		g := group8{first: first, n: n, packed: make([]int8, n*n64), corr: make([]int32, n)}
		for j := range n {
			q := qs[first+j]
			for c := 0; c < n64/64; c++ {
				for k := range 64 {
					g.packed[(c*n+j)*64+k] = int8(q[c*64+k])
				}
			}
			for _, v := range q[:n64] {
				g.corr[j] += 128 * int32(v)
			}
		}
		out = append(out, g)
	}
	return out
}

// Len is the number of probes.
func (p *Probes) Len() int { return len(p.qs) }

// Dim is how many values of each probe (and row) the kernels score.
func (p *Probes) Dim() int { return p.dim }

// Groups is the number of probe groups: the bytes of a row's mask.
func (p *Probes) Groups() int { return len(p.groups) }

// Group returns the first probe and the number of probes (at most 8) of
// group g.
func (p *Probes) Group(g int) (first, n int) { return p.groups[g].first, p.groups[g].n }

// setMask sets mask (see I8Func) from out.
func setMask(p *Probes, floor []int32, out []int32, mask []uint8) {
	nq, ng := len(p.qs), len(p.groups)
	for i := range len(out) / nq {
		for g, gr := range p.groups {
			var bits uint8
			for b := range gr.n {
				if out[i*nq+gr.first+b] > floor[gr.first+b] {
					bits |= 1 << b
				}
			}
			mask[i*ng+g] = bits
		}
	}
}

// DotsI8Go is the portable int8 kernel.
func DotsI8Go(m []int8, stride int, p *Probes, floor []int32, out []int32, mask []uint8) {
	dotsI8Go(m, stride, p, out)
	setMask(p, floor, out, mask)
}

func dotsI8Go(m []int8, stride int, p *Probes, out []int32) {
	nq, dim := len(p.qs), p.dim
	for i := range len(out) / nq {
		row := m[i*stride : i*stride+dim]
		for j, q := range p.qs {
			q = q[:dim]
			var s0, s1 int32
			k := 0
			for ; k+2 <= dim; k += 2 {
				s0 += int32(row[k]) * int32(q[k])
				s1 += int32(row[k+1]) * int32(q[k+1])
			}
			for ; k < dim; k++ {
				s0 += int32(row[k]) * int32(q[k])
			}
			out[i*nq+j] = s0 + s1
		}
	}
}

// addTail adds the products of the values from index from on, past the
// last whole chunk, which the assembly kernels leave out, and then sets
// the mask again from the whole products.
func addTail(m []int8, stride, from int, p *Probes, floor []int32, out []int32, mask []uint8) {
	n16, nq, dim := from, len(p.qs), p.dim
	if n16 == dim {
		return
	}
	for i := range len(out) / nq {
		row := m[i*stride : i*stride+dim]
		for j, q := range p.qs {
			var s int32
			for k := n16; k < dim; k++ {
				s += int32(row[k]) * int32(q[k])
			}
			out[i*nq+j] += s
		}
	}
	setMask(p, floor, out, mask)
}

// Dot64 is the canonical score: float64 sum, in index order, of the
// float32 products. Every ranking is decided on it.
func Dot64(a, b []float32) float64 {
	b = b[:len(a)]
	var s float64
	for i := range a {
		s += float64(a[i]) * float64(b[i])
	}
	return s
}

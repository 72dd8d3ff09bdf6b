// Package kernel holds the hot loops of exact search: many dot products of
// one probe against the rows of a matrix, in float32 and in int8.
//
// DotsF32 and DotsI8 dispatch, once at start-up, to the fastest kernel this
// CPU and build have. float32: gonum's assembly (the portable path, and the
// fastest measured here). int8: AVX2 through simd/archsimd when built with
// GOEXPERIMENT=simd on a CPU with AVX2 and FMA (HasSIMD), else unrolled Go,
// which is slower than float32: callers use the int8 pre-scan only with
// HasSIMD. Kernels differ in float rounding
// order, so callers must not rank on their results alone: see Dot64 and the
// error bounds in vectorstore.Exact.
package kernel

import (
	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas32"
)

// F32Func computes out[i] = rows[i]·q for the len(out) rows of dim values
// stored back to back in m.
type F32Func func(m []float32, dim int, q []float32, out []float32)

// I8Func computes out[i] = rows[i]·q in integers for int8 rows widened
// against an int16 probe.
type I8Func func(m []int8, dim int, q []int16, out []int32)

// The selected kernels and their names.
var (
	DotsF32     F32Func = DotsF32Gonum
	DotsI8      I8Func  = DotsI8Go
	NameF32             = "gonum"
	NameI8              = "go"
	HasSIMD             = false // the AVX2 int8 kernel is in use
	simdKernels         = map[string]any{}
)

// Kernels returns every float32 kernel available in this build, by name,
// for benchmarks and equality tests.
func Kernels() map[string]F32Func {
	out := map[string]F32Func{"gonum": DotsF32Gonum, "go": DotsF32Go}
	for name, k := range simdKernels {
		if f, ok := k.(F32Func); ok {
			out[name] = f
		}
	}
	return out
}

// KernelsI8 returns every int8 kernel available in this build, by name.
func KernelsI8() map[string]I8Func {
	out := map[string]I8Func{"go": DotsI8Go}
	for name, k := range simdKernels {
		if f, ok := k.(I8Func); ok {
			out[name] = f
		}
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

// DotsI8Go is the portable int8 kernel.
func DotsI8Go(m []int8, dim int, q []int16, out []int32) {
	q = q[:dim]
	for i := range out {
		row := m[i*dim : i*dim+dim]
		var s0, s1 int32
		j := 0
		for ; j+2 <= dim; j += 2 {
			s0 += int32(row[j]) * int32(q[j])
			s1 += int32(row[j+1]) * int32(q[j+1])
		}
		for ; j < dim; j++ {
			s0 += int32(row[j]) * int32(q[j])
		}
		out[i] = s0 + s1
	}
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

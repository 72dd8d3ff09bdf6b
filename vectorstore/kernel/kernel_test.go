package kernel

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

func randRows(r *rand.Rand, n, dim int) []float32 {
	m := make([]float32, n*dim)
	for i := range m {
		m[i] = float32(r.NormFloat64() / math.Sqrt(float64(dim)))
	}
	return m
}

func TestKernelsF32(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 1))
	for _, dim := range []int{128, 130, 255, 256, 384, 509, 512} {
		m, q := randRows(r, 37, dim), randRows(r, 1, dim)
		for name, k := range Kernels() {
			out := make([]float32, 37)
			k(m, dim, q, out)
			for i, got := range out {
				want := Dot64(m[i*dim:(i+1)*dim], q)
				if math.Abs(float64(got)-want) > 1e-5 {
					t.Errorf("%s dim %d row %d = %v, want %v", name, dim, i, got, want)
				}
			}
		}
	}
}

func TestKernelsI8(t *testing.T) {
	r := rand.New(rand.NewPCG(2, 2))
	for _, dim := range []int{128, 131, 256, 500, 512} {
		m := make([]int8, 21*dim)
		q := make([]int16, dim)
		for i := range m {
			m[i] = int8(r.IntN(256) - 128)
		}
		for i := range q {
			q[i] = int16(r.IntN(255) - 127)
		}
		want := make([]int32, 21)
		DotsI8Go(m, dim, q, want)
		for name, k := range KernelsI8() {
			got := make([]int32, 21)
			k(m, dim, q, got)
			for i := range got {
				if got[i] != want[i] {
					t.Errorf("%s dim %d row %d = %d, want %d", name, dim, i, got[i], want[i])
				}
			}
		}
	}
}

// BenchmarkDotsF32 runs every kernel in cache (8 MiB) and streaming from
// memory (256 MiB), the regime of a large gallery.
func BenchmarkDotsF32(b *testing.B) {
	const dim = 512
	r := rand.New(rand.NewPCG(3, 3))
	q := randRows(r, 1, dim)
	for _, rows := range []int{4096, 131072} {
		m := randRows(r, rows, dim)
		out := make([]float32, rows)
		for name, k := range Kernels() {
			b.Run(fmt.Sprintf("%s/rows=%d", name, rows), func(b *testing.B) {
				b.SetBytes(int64(rows * dim * 4))
				for b.Loop() {
					k(m, dim, q, out)
				}
			})
		}
	}
}

// BenchmarkDotsI8 reports MB/s of int8 rows (a quarter of float32's bytes).
func BenchmarkDotsI8(b *testing.B) {
	const dim = 512
	r := rand.New(rand.NewPCG(4, 4))
	q := make([]int16, dim)
	for i := range q {
		q[i] = int16(r.IntN(255) - 127)
	}
	for _, rows := range []int{16384, 524288} {
		m := make([]int8, rows*dim)
		for i := range m {
			m[i] = int8(r.IntN(256) - 128)
		}
		out := make([]int32, rows)
		for name, k := range KernelsI8() {
			b.Run(fmt.Sprintf("%s/rows=%d", name, rows), func(b *testing.B) {
				b.SetBytes(int64(rows * dim))
				for b.Loop() {
					k(m, dim, q, out)
				}
			})
		}
	}
}

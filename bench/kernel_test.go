package bench

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/biomatch/biomatch/engine"
	"github.com/biomatch/biomatch/internal/synth"
	"github.com/biomatch/biomatch/vectorstore"
	"github.com/biomatch/biomatch/vectorstore/kernel"
)

// streamBytes is the matrix size a kernel benchmark scans: far beyond the
// caches, so MB/s is the memory-bound rate a large gallery sees.
const streamBytes = 256 << 20

// BenchmarkKernel reports every float32 and int8 kernel of this build at
// 128, 256 and 512 dimensions, one core. MB/s counts the bytes of the rows
// read (4 per value for float32, 1 for int8).
func BenchmarkKernel(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, dim := range []int{128, 256, 512} {
		q := synth.Vector(dim, 1, 0, 0)
		rows := streamBytes / (dim * 4)
		m := make([]float32, rows*dim)
		for i := range m {
			m[i] = float32(r.NormFloat64() * 0.05)
		}
		out := make([]float32, rows)
		for name, k := range kernel.Kernels() {
			b.Run(fmt.Sprintf("f32/%s/dim=%d", name, dim), func(b *testing.B) {
				b.SetBytes(int64(rows * dim * 4))
				for b.Loop() {
					k(m, dim, q, out)
				}
			})
		}
		rows8 := streamBytes / dim
		m8 := make([]int8, rows8*dim)
		for i := range m8 {
			m8[i] = int8(r.IntN(255) - 127)
		}
		q16 := make([]int16, dim)
		for i := range q16 {
			q16[i] = int16(r.IntN(65535) - 32767)
		}
		out8 := make([]int32, rows8)
		for name, k := range kernel.KernelsI8() {
			b.Run(fmt.Sprintf("i8/%s/dim=%d", name, dim), func(b *testing.B) {
				b.SetBytes(int64(rows8 * dim))
				for b.Loop() {
					k(m8, dim, q16, out8)
				}
			})
		}
	}
}

// BenchmarkExact is a whole top-10 search of the in-memory index (all
// cores), with and without the int8 pre-scan, on identity-clustered data.
func BenchmarkExact(b *testing.B) {
	const n, dim = 100_000, 512
	g := engine.Gallery{Tenant: "bench", Version: "FACE3_1"}
	rows := make([]vectorstore.Row, n)
	for i := range rows {
		rows[i] = vectorstore.Row{TemplateID: int64(i), PersonID: int64(i / 5), Gallery: g,
			Embedding: synth.Vector(dim, uint64(i/5), 0.6, uint64(i%5))}
	}
	for _, int8 := range []string{"off", "on"} {
		e := vectorstore.NewExact(vectorstore.ExactConfig{Int8: int8})
		e.Add(rows...)
		probe := engine.Embedding(synth.Vector(dim, 77, 0.6, 99))
		b.Run(fmt.Sprintf("n=%d/dim=%d/int8=%s", n, dim, int8), func(b *testing.B) {
			for b.Loop() {
				e.Nearest(context.Background(), g, probe, 10)
			}
		})
	}
}

package bench

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

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
			q16[i] = int16(r.IntN(255) - 127) // within every kernel's ProbeMax
		}
		out8, floor8, mask8 := make([]int32, rows8), make([]int32, 1), make([]uint8, rows8)
		probes := kernel.NewProbes([][]int16{q16}, dim)
		for name, k := range kernel.KernelsI8() {
			b.Run(fmt.Sprintf("i8/%s/dim=%d", name, dim), func(b *testing.B) {
				b.SetBytes(int64(rows8 * dim))
				for b.Loop() {
					k(m8, dim, probes, floor8, out8, mask8)
				}
			})
		}
	}
}

// BenchmarkExactConcurrent is top-10 identify of the in-memory index
// (100k × 512, int8 pre-scan, both cores) from 1, 8 and 32 clients at once:
// queries that wait while a scan runs are answered together by the next
// scan. It reports queries/s, the mean batch (queries per scan) and the
// template comparisons per second.
func BenchmarkExactConcurrent(b *testing.B) {
	const n, dim = 100_000, 512
	g, rows := galleryRows(n, dim)
	for _, clients := range []int{1, 8, 32} {
		e := vectorstore.NewExact(vectorstore.ExactConfig{})
		e.Add(rows...)
		probes := make([]engine.Embedding, 64)
		for i := range probes {
			probes[i] = synth.Vector(dim, uint64(i*97), 0.6, 1000+uint64(i))
		}
		b.Run(fmt.Sprintf("n=%d/dim=%d/clients=%d", n, dim, clients), func(b *testing.B) {
			searchConcurrently(b, e, g, clients, probes, 10)
			scans, queries := e.Scans()
			qps := float64(b.N) / b.Elapsed().Seconds()
			b.ReportMetric(qps, "queries/s")
			b.ReportMetric(float64(queries)/float64(max(scans, 1)), "batch")
			b.ReportMetric(qps*n/1e6, "Mcmp/s")
		})
	}
}

// BenchmarkExactPrePass is identify as the engine asks it (k = 1: the
// best template) from 32 clients at once, 100k × 512, one template per
// identity, with identify's pre-pass over the first half of each row and
// without it (NoPrePass), side by side: probes of returning persons
// (noise 0.3 and 0.6: cosine ≈ 0.96 and 0.86 with their template), which
// the pre-pass settles, and probes of nobody stored, which it cannot
// (then it is tried on one batch in 32 only).
func BenchmarkExactPrePass(b *testing.B) {
	const n, dim = 100_000, 512
	g, rows := identityRows(n, dim)
	for _, probes := range []string{"returning/noise=0.3", "returning/noise=0.6", "strangers"} {
		for _, pre := range []string{"on", "off"} {
			e := vectorstore.NewExact(vectorstore.ExactConfig{NoPrePass: pre == "off"})
			e.Add(rows...)
			ps := make([]engine.Embedding, 256)
			for i := range ps {
				switch probes {
				case "returning/noise=0.3":
					ps[i] = synth.Vector(dim, uint64(i*97), 0.3, 1000+uint64(i))
				case "returning/noise=0.6":
					ps[i] = synth.Vector(dim, uint64(i*97), 0.6, 1000+uint64(i))
				default:
					ps[i] = synth.Vector(dim, uint64(n+i), 0, 0)
				}
			}
			b.Run(fmt.Sprintf("%s/prepass=%s", probes, pre), func(b *testing.B) {
				searchConcurrently(b, e, g, 32, ps, 1)
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "queries/s")
			})
		}
	}
}

// BenchmarkExactCPU is identify as the engine asks it (k = 1, probes of
// returning persons, noise 0.3, which the pre-pass settles), 100k × 512,
// both cores, from 1, 4 and 16 clients at once, and reports the CPU time
// the process spent per query (getrusage): on a machine the index shares
// with HTTP, PostgreSQL and a load generator, that, more than the rate,
// is what one identify costs.
func BenchmarkExactCPU(b *testing.B) {
	const n, dim = 100_000, 512
	g, rows := identityRows(n, dim)
	e := vectorstore.NewExact(vectorstore.ExactConfig{})
	e.Add(rows...)
	ps := make([]engine.Embedding, 256)
	for i := range ps {
		ps[i] = synth.Vector(dim, uint64(i*97), 0.3, 1000+uint64(i))
	}
	for _, clients := range []int{1, 4, 16} {
		b.Run(fmt.Sprintf("clients=%d", clients), func(b *testing.B) {
			scans0, queries0 := e.Scans()
			cpu0 := cpuTime()
			searchConcurrently(b, e, g, clients, ps, 1)
			cpu := cpuTime() - cpu0
			scans, queries := e.Scans()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "queries/s")
			b.ReportMetric(cpu.Seconds()*1e6/float64(b.N), "cpu-µs/query")
			b.ReportMetric(float64(queries-queries0)/float64(max(scans-scans0, 1)), "batch")
		})
	}
}

// BenchmarkExactDedupBatch is the enroll decision's search as the worker
// and the import ask it: one batched pass (NearestBatch, k = 1) for a
// batch of 1 to 256 enrolls of new persons (nobody stored), 100k × 512,
// both cores, and the CPU time per pass and per enroll (getrusage). A pass
// reads every row once whatever the batch, so the CPU per enroll falls as
// batches grow. Side by side: any score (atLeast=-Inf, every value of
// every row) and the decision's threshold (0.48, that of a 100k gallery
// at the default level: most rows are ruled out by their head).
func BenchmarkExactDedupBatch(b *testing.B) {
	const n, dim = 100_000, 512
	g, rows := identityRows(n, dim)
	e := vectorstore.NewExact(vectorstore.ExactConfig{})
	e.Add(rows...)
	for _, size := range []int{1, 4, 12, 32, 64, 256} {
		probes := make([]engine.Embedding, size)
		for i := range probes {
			probes[i] = synth.Vector(dim, uint64(n+i), 0.3, 1000+uint64(i)) // identities past the gallery's
		}
		for _, atLeast := range []float64{math.Inf(-1), 0.48} {
			b.Run(fmt.Sprintf("batch=%d/atLeast=%v", size, atLeast), func(b *testing.B) {
				cpu0 := cpuTime()
				for b.Loop() {
					if _, err := e.NearestBatch(context.Background(), g, probes, 1, atLeast); err != nil {
						b.Fatal(err)
					}
				}
				cpu := cpuTime() - cpu0
				b.ReportMetric(cpu.Seconds()*1e6/float64(b.N), "cpu-µs/pass")
				b.ReportMetric(cpu.Seconds()*1e6/float64(b.N*size), "cpu-µs/enroll")
				b.ReportMetric(float64(b.N*size*n)/cpu.Seconds()/1e6, "M-comparisons/cpu-s")
			})
		}
	}
}

// identityRows is a gallery of n identities, one template each.
func identityRows(n, dim int) (engine.Gallery, []vectorstore.Row) {
	g := engine.Gallery{Tenant: "bench", Version: "FACE3_1"}
	rows := make([]vectorstore.Row, n)
	for i := range rows {
		rows[i] = vectorstore.Row{TemplateID: int64(i), PersonID: int64(i), Gallery: g, Embedding: synth.Vector(dim, uint64(i), 0, 0)}
	}
	return g, rows
}

// searchConcurrently runs b.N top-k searches of g, probes in turn, from
// clients goroutines at once (the timer reset first).
func searchConcurrently(b *testing.B, e *vectorstore.Exact, g engine.Gallery, clients int, probes []engine.Embedding, k int) {
	var next atomic.Int64
	var wg sync.WaitGroup
	b.ResetTimer()
	for range clients {
		wg.Go(func() {
			for i := next.Add(1); i <= int64(b.N); i = next.Add(1) {
				if _, err := e.Nearest(context.Background(), g, probes[int(i)%len(probes)], k); err != nil {
					b.Error(err)
				}
			}
		})
	}
	wg.Wait()
}

// cpuTime is the CPU time (user and system) this process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		panic(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkExact is a whole top-10 search of the in-memory index (all
// cores), with and without the int8 pre-scan, on identity-clustered data.
func BenchmarkExact(b *testing.B) {
	const n, dim = 100_000, 512
	g, rows := galleryRows(n, dim)
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

// galleryRows is a gallery of n identity-clustered templates: n/5
// identities, 5 samples each (noise 0.6).
func galleryRows(n, dim int) (engine.Gallery, []vectorstore.Row) {
	g := engine.Gallery{Tenant: "bench", Version: "FACE3_1"}
	rows := make([]vectorstore.Row, n)
	for i := range rows {
		rows[i] = vectorstore.Row{TemplateID: int64(i), PersonID: int64(i / 5), Gallery: g,
			Embedding: synth.Vector(dim, uint64(i/5), 0.6, uint64(i%5))}
	}
	return g, rows
}

// BenchmarkExactOpenLoop is identify (k = 1, returning persons) as a
// server sees it: probes arrive at a fixed rate, whatever the answers'
// pace, for b.N probes, against 100k and 220k templates (a 100k gallery
// after a soak's 120k enrolls), with the following pass's window for more
// probes off, 5 ms, 10 ms and 20 ms (the default) (ExactConfig.Window).
// It reports the CPU per identify,
// the mean batch and the latency's p50 and p99.
func BenchmarkExactOpenLoop(b *testing.B) {
	const dim = 512
	ps := make([]engine.Embedding, 256)
	for i := range ps {
		ps[i] = synth.Vector(dim, uint64(i*97), 0.3, 1000+uint64(i))
	}
	for _, n := range []int{100_000, 220_000} {
		g, rows := identityRows(n, dim)
		for _, window := range []time.Duration{-1, 5 * time.Millisecond, 10 * time.Millisecond, 0} {
			e := vectorstore.NewExact(vectorstore.ExactConfig{Window: window})
			e.Add(rows...)
			name := map[time.Duration]string{-1: "off", 0: "20ms(default)"}[window]
			if name == "" {
				name = window.String()
			}
			for _, rate := range []int{1000, 2000} {
				b.Run(fmt.Sprintf("n=%d/rate=%d/window=%s", n, rate, name), func(b *testing.B) {
					searchAtRate(b, e, g, rate, ps)
				})
			}
		}
	}
}

// searchAtRate sends b.N identifies at rate per second, each in its own
// goroutine, and reports CPU per identify, mean batch and latency.
func searchAtRate(b *testing.B, e *vectorstore.Exact, g engine.Gallery, rate int, probes []engine.Embedding) {
	lat := make([]time.Duration, b.N)
	var wg sync.WaitGroup
	scans0, queries0 := e.Scans()
	cpu0 := cpuTime()
	b.ResetTimer()
	start := time.Now()
	for i := range b.N {
		time.Sleep(time.Until(start.Add(time.Duration(i) * time.Second / time.Duration(rate))))
		wg.Go(func() {
			t := time.Now()
			if _, err := e.Nearest(context.Background(), g, probes[i%len(probes)], 1); err != nil {
				b.Error(err)
			}
			lat[i] = time.Since(t)
		})
	}
	wg.Wait()
	cpu := cpuTime() - cpu0
	scans, queries := e.Scans()
	slices.Sort(lat)
	b.ReportMetric(cpu.Seconds()*1e6/float64(b.N), "cpu-µs/query")
	b.ReportMetric(float64(queries-queries0)/float64(max(scans-scans0, 1)), "batch")
	b.ReportMetric(float64(lat[b.N/2].Microseconds())/1e3, "p50-ms")
	b.ReportMetric(float64(lat[b.N*99/100].Microseconds())/1e3, "p99-ms")
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "queries/s")
}

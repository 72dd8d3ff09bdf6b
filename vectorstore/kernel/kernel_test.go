package kernel

import (
	"bytes"
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
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

func TestDotsF32Batch(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 5))
	for _, dim := range []int{128, 131, 512} {
		for _, nq := range []int{1, 3, 8, 32} {
			m, qs := randRows(r, 41, dim), randRows(r, nq, dim)
			out := make([]float32, 41*nq)
			DotsF32Batch(m, dim, qs, out)
			for i := range 41 {
				for j := range nq {
					want := Dot64(m[i*dim:(i+1)*dim], qs[j*dim:(j+1)*dim])
					if got := out[i*nq+j]; math.Abs(float64(got)-want) > 1e-5 {
						t.Errorf("dim %d, %d probes: row %d probe %d = %v, want %v", dim, nq, i, j, got, want)
					}
				}
			}
		}
	}
}

// TestKernelsI8 holds every int8 kernel of this CPU to a plain int64 sum,
// for every batch size up to 19 (all group shapes and their mixes),
// dimensions with and without a tail past the last 16-value chunk, rows
// back to back and rows scored on their first values only (a stride
// past dim, whose other values must not count), and the extreme values
// (−128 rows against ±32767 probes).
func TestKernelsI8(t *testing.T) {
	t.Logf("kernels on this CPU: %v (selected: %s)", slices.Sorted(maps.Keys(KernelsI8())), NameI8)
	if runtime.GOARCH == "amd64" && len(KernelsI8()) < 2 {
		t.Log("this CPU has no AVX2: only the portable kernel is checked")
	}
	r := rand.New(rand.NewPCG(2, 2))
	for _, dim := range []int{16, 64, 128, 131, 256, 500, 512} {
		for nq, pad := 1, 0; nq <= 19; nq, pad = nq+1, 77*(nq%2) {
			stride := dim + pad
			for _, probeMax := range []int{32767, 127} {
				const rows = 13
				m := make([]int8, rows*stride)
				qs := make([][]int16, nq)
				extreme := nq%5 == 0
				for i := range m {
					m[i] = int8(r.IntN(256) - 128)
					if extreme {
						m[i] = -128
					}
				}
				for j := range qs {
					qs[j] = make([]int16, dim)
					for i := range qs[j] {
						qs[j][i] = int16(r.IntN(2*probeMax+1) - probeMax)
						if extreme {
							qs[j][i] = int16(probeMax) * int16(1-2*(j%2))
						}
					}
				}
				p := NewProbes(qs, dim)
				want := make([]int64, rows*nq)
				for i := range rows {
					for j, q := range qs {
						for d := range dim {
							want[i*nq+j] += int64(m[i*stride+d]) * int64(q[d])
						}
					}
				}
				// Floors: each probe's product with row j%rows, ±1 and
				// exactly (above must be strict), and the extremes.
				floor := make([]int32, nq)
				for j := range floor {
					floor[j] = int32(want[(j%rows)*nq+j]) + int32(j%3) - 1
				}
				floor[0] = math.MinInt32
				if nq > 1 {
					floor[nq-1] = math.MaxInt32
				}
				for name, k := range KernelsI8() {
					out := make([]int32, rows*nq)
					mask := make([]uint8, rows*p.Groups())
					for i := range out {
						out[i] = 12345 // the kernel must overwrite, not add
					}
					for i := range mask {
						mask[i] = 0xff
					}
					k(m, stride, p, floor, out, mask)
					for i := range rows {
						for j := range qs {
							if got := out[i*nq+j]; int64(got) != want[i*nq+j] {
								t.Fatalf("%s dim %d stride %d, %d probes of ±%d: row %d probe %d = %d, want %d", name, dim, stride, nq, probeMax, i, j, got, want[i*nq+j])
							}
						}
						for g := range p.Groups() {
							first, n := p.Group(g)
							var wantBits uint8
							for b := range n {
								if want[i*nq+first+b] > int64(floor[first+b]) {
									wantBits |= 1 << b
								}
							}
							if got := mask[i*p.Groups()+g]; got != wantBits {
								t.Fatalf("%s dim %d, %d probes of ±%d: row %d group %d mask %08b, want %08b", name, dim, nq, probeMax, i, g, got, wantBits)
							}
						}
					}
				}
			}
		}
	}
}

// TestGeneratedAssemblyIsCurrent regenerates the assembly and its Go
// declarations and compares them with the committed files.
func TestGeneratedAssemblyIsCurrent(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the generator")
	}
	dir := t.TempDir()
	cmd := exec.Command("go", "run", "./internal/gen", "-out", filepath.Join(dir, "dots_amd64.s"),
		"-stubs", filepath.Join(dir, "dots_amd64.go"), "-pkg", "kernel")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("generator: %v\n%s", err, out)
	}
	for _, f := range []string{"dots_amd64.s", "dots_amd64.go"} {
		want, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		// The first line names the command line, which differs by path.
		if _, g, _ := bytes.Cut(got, []byte("\n")); !bytes.Equal(g, after(want)) {
			t.Errorf("%s differs from what internal/gen writes: run go generate ./vectorstore/kernel", f)
		}
	}
}

func after(b []byte) []byte { _, rest, _ := bytes.Cut(b, []byte("\n")); return rest }

// BenchmarkDotsI8Batch reports, per kernel and batch size, rows scored per
// second against each probe (MB/s counts the int8 rows read, once per
// call), in cache (1 MiB of rows) and streaming from memory (256 MiB).
func BenchmarkDotsI8Batch(b *testing.B) {
	const dim = 512
	r := rand.New(rand.NewPCG(4, 4))
	for _, rows := range []int{2048, 524288} {
		m := make([]int8, rows*dim)
		for i := range m {
			m[i] = int8(r.IntN(256) - 128)
		}
		for _, nq := range []int{1, 8, 32} {
			qs := make([][]int16, nq)
			for j := range qs {
				qs[j] = make([]int16, dim)
				for i := range qs[j] {
					qs[j][i] = int16(r.IntN(255) - 127) // within every kernel's ProbeMax
				}
			}
			p := NewProbes(qs, dim)
			out := make([]int32, rows*nq)
			floor, mask := make([]int32, nq), make([]uint8, rows*p.Groups())
			for name, k := range KernelsI8() {
				if name == "go" && rows > 2048 {
					continue
				}
				b.Run(fmt.Sprintf("%s/rows=%d/probes=%d", name, rows, nq), func(b *testing.B) {
					b.SetBytes(int64(rows * dim))
					for b.Loop() {
						k(m, dim, p, floor, out, mask)
					}
					b.ReportMetric(float64(b.N)*float64(rows*nq)/b.Elapsed().Seconds()/1e6, "Mcmp/s")
				})
			}
		}
	}
}

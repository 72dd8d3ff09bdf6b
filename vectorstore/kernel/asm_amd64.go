package kernel

import "golang.org/x/sys/cpu"

// The assembly kernels by the number of probes they score per row read
// (the sizes of groupSizes).
var (
	avx2ByProbes = [...]func(m *int8, rows, stride, n16 int, qp *int16, out *int32, ostride int, floor *int32, mask *uint8, mstride int){
		1: dotsI8x1AVX2, 2: dotsI8x2AVX2, 4: dotsI8x4AVX2, 8: dotsI8x8AVX2}
	vnniByProbes = [...]func(m *int8, rows, stride, n64 int, qp *int8, corr *int32, out *int32, ostride int, floor *int32, mask *uint8, mstride int){
		1: dotsI8x1VNNI, 2: dotsI8x2VNNI, 4: dotsI8x4VNNI, 8: dotsI8x8VNNI}
)

func init() {
	if !cpu.X86.HasAVX2 {
		return
	}
	DotsI8, NameI8, HasFastI8 = dotsI8AVX2, "avx2", true
	asmI8["avx2"] = dotsI8AVX2
	if cpu.X86.HasAVX512F && cpu.X86.HasAVX512VNNI {
		DotsI8, NameI8, ProbeMax = dotsI8VNNI, "avx512vnni", 127
		asmI8["avx512vnni"] = dotsI8VNNI
		HasTiles = true
		tileKernels = map[int]tileKernel{12: dotsTile12VNNI, 8: dotsTile8VNNI, 4: dotsTile4VNNI, 1: dotsTile1VNNI}
	}
}

// dotsI8VNNI runs each probe group's VNNI kernel over the rows (64 values
// per step), then adds what lies past the last 64-value chunk. Probes
// with a value beyond ±127 go to dotsI8AVX2.
func dotsI8VNNI(m []int8, stride int, p *Probes, floor []int32, out []int32, mask []uint8) {
	nq, dim := len(p.qs), p.dim
	rows := len(out) / nq
	if rows == 0 {
		return
	}
	if p.groups8 == nil {
		dotsI8AVX2(m, stride, p, floor, out, mask)
		return
	}
	_ = m[(rows-1)*stride+dim-1]    // the kernels read dim values of each row
	_ = mask[rows*len(p.groups8)-1] // and write a byte per row and group
	_ = floor[nq-1]
	n64 := dim &^ 63
	for g, gr := range p.groups8 {
		vnniByProbes[gr.n](&m[0], rows, stride, n64, &gr.packed[0], &gr.corr[0], &out[gr.first], nq,
			&floor[gr.first], &mask[g], len(p.groups8))
	}
	addTail(m, stride, n64, p, floor, out, mask)
}

// dotsI8AVX2 runs each probe group's assembly kernel over the rows, then
// adds what lies past the last 16-value chunk.
func dotsI8AVX2(m []int8, stride int, p *Probes, floor []int32, out []int32, mask []uint8) {
	nq, dim := len(p.qs), p.dim
	rows := len(out) / nq
	if rows == 0 {
		return
	}
	n16 := dim &^ 15
	if n16 == 0 {
		clear(out)
		addTail(m, stride, 0, p, floor, out, mask)
		return
	}
	_ = m[(rows-1)*stride+dim-1] // the kernels read dim values of each row
	_ = mask[rows*len(p.groups)-1]
	_ = floor[nq-1]
	for g, gr := range p.groups {
		avx2ByProbes[gr.n](&m[0], rows, stride, n16, &gr.packed[0], &out[gr.first], nq,
			&floor[gr.first], &mask[g], len(p.groups))
	}
	addTail(m, stride, n16, p, floor, out, mask)
}

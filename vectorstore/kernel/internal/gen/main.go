// Command gen writes the amd64 assembly of package kernel with avo:
//
//	go generate ./vectorstore/kernel
//
// kernel's TestGeneratedAssemblyIsCurrent
// fails when the committed files differ from what this writes.
package main

import (
	"fmt"

	. "github.com/mmcloughlin/avo/build"
	. "github.com/mmcloughlin/avo/operand"
	"github.com/mmcloughlin/avo/reg"
)

// probeCounts are the kernels generated: one per number of probes scored
// per row read (8 fills 8 of the 16 vector registers with accumulators).
var probeCounts = []int{1, 2, 4, 8}

// prefetchRows is how far ahead the batch kernels prefetch: a row scored
// against several probes takes long enough that the hardware prefetcher
// alone falls behind (measured: half the in-cache rate when streaming).
const prefetchShift = 3 // 8 rows

func main() {
	ConstraintExpr("amd64")
	for _, p := range probeCounts {
		dotsI8(p)
	}
	for _, p := range probeCounts {
		dotsVNNI(p)
	}
	for _, p := range tileProbeCounts {
		dotsTile(p)
	}
	Generate()
}

// dotsI8 generates dotsI8x<p>AVX2: for each of rows int8 rows (stride bytes
// apart), the int32 dot products of its first n16 values with p int16
// probes, written to out[i*ostride+j], and the byte mask[i*mstride] whose
// bit j is set when that product exceeds floor[j]. The probes are packed by 16-value
// chunk: chunk c of probe j is at qp[(c*p+j)*16 :]. Each chunk of a row is
// widened once (vpmovsxbw) and multiplied into every probe (vpmaddwd):
// exact integer arithmetic, read from memory once for p probes.
func dotsI8(p int) {
	name := fmt.Sprintf("dotsI8x%dAVX2", p)
	TEXT(name, NOSPLIT, "func(m *int8, rows, stride, n16 int, qp *int16, out *int32, ostride int, floor *int32, mask *uint8, mstride int)")
	Doc(fmt.Sprintf("%s scores int8 rows against %d packed int16 probes (AVX2; n16 a positive multiple of 16).", name, p))
	m := Load(Param("m"), GP64())
	rows := Load(Param("rows"), GP64())
	stride := Load(Param("stride"), GP64())
	n16 := Load(Param("n16"), GP64())
	qp := Load(Param("qp"), GP64())
	out := Load(Param("out"), GP64())
	ostride := Load(Param("ostride"), GP64())
	SHLQ(U8(2), ostride) // int32s → bytes
	mask := Load(Param("mask"), GP64())

	acc := make([]reg.VecVirtual, p)
	for j := range acc {
		acc[j] = YMM()
	}
	x, t := YMM(), YMM()
	j, q := GP64(), GP64()
	ahead := GP64() // 1<<prefetchShift rows ahead of m

	TESTQ(rows, rows)
	JZ(LabelRef("done"))
	Label("row")
	for _, a := range acc {
		VPXOR(a, a, a)
	}
	XORQ(j, j)
	MOVQ(qp, q)
	if p > 1 {
		MOVQ(stride, ahead)
		SHLQ(U8(prefetchShift), ahead)
		ADDQ(m, ahead)
	}
	Label("chunk")
	VPMOVSXBW(Mem{Base: m, Index: j, Scale: 1}, x)
	if p > 1 {
		PREFETCHT0(Mem{Base: ahead, Index: j, Scale: 1})
	}
	for k, a := range acc {
		VPMADDWD(Mem{Base: q, Disp: 32 * k}, x, t)
		VPADDD(t, a, a)
	}
	ADDQ(U32(32*p), q)
	ADDQ(U8(16), j)
	CMPQ(j, n16)
	JL(LabelRef("chunk"))

	storeSums(acc, out, nil, mask)

	ADDQ(stride, m)
	ADDQ(ostride, out)
	ADDQ(Load(Param("mstride"), GP64()), mask)
	DECQ(rows)
	JNZ(LabelRef("row"))
	Label("done")
	VZEROUPPER()
	RET()
}

// storeSums writes the horizontal sum of each accumulator's eight int32
// lanes (its low 256 bits), less corr[j] when corr is not nil, to out[0],
// out[1], …, and to the byte at mask a bit per sum, bit j set when sum j
// exceeds floor[j] (the parameter floor). The accumulators are clobbered.
func storeSums(acc []reg.VecVirtual, out, corr, mask reg.Register) {
	minus := func(k int, lo reg.Register, load func(Op, Op)) {
		if corr != nil {
			t := XMM()
			load(Mem{Base: corr, Disp: 4 * k}, t)
			VPSUBD(t, lo, lo)
		}
	}
	floor := Load(Param("floor"), GP64())
	bits := GP32()
	// above sets bits to the sign mask of lo > floor[k…] (n lanes).
	above := func(k, n int, lo reg.Register, load func(Op, Op)) {
		t := XMM()
		load(Mem{Base: floor, Disp: 4 * k}, t)
		VPCMPGTD(t, lo, t)
		VMOVMSKPS(t, bits)
		if n < 4 {
			ANDL(U32(1<<n-1), bits)
		}
	}
	switch len(acc) {
	case 1:
		a, lo, hi := acc[0].AsY(), acc[0].AsX(), XMM()
		VEXTRACTI128(Imm(1), a, hi)
		VPADDD(hi, lo, lo)
		VPSHUFD(Imm(0x4e), lo, hi) // swap the 64-bit halves
		VPADDD(hi, lo, lo)
		VPSHUFD(Imm(0xb1), lo, hi) // swap neighbouring lanes
		VPADDD(hi, lo, lo)
		minus(0, lo, func(m, r Op) { VMOVD(m, r) })
		VMOVD(lo, Mem{Base: out})
		above(0, 1, lo, func(m, r Op) { VMOVD(m, r) })
	case 2:
		// [a0+a1 a2+a3 b0+b1 b2+b3] per 128-bit lane, then again: [a b a b].
		a, b := acc[0].AsY(), acc[1].AsY()
		VPHADDD(b, a, a)
		VPHADDD(a, a, a)
		lo, hi := acc[0].AsX(), XMM()
		VEXTRACTI128(Imm(1), a, hi)
		VPADDD(hi, lo, lo)
		minus(0, lo, func(m, r Op) { VMOVQ(m, r) })
		VMOVQ(lo, Mem{Base: out})
		above(0, 2, lo, func(m, r Op) { VMOVQ(m, r) })
	default:
		all := GP32()
		XORL(all, all)
		for g := 0; g < len(acc); g += 4 {
			a := []reg.Register{acc[g].AsY(), acc[g+1].AsY(), acc[g+2].AsY(), acc[g+3].AsY()}
			VPHADDD(a[1], a[0], a[0])
			VPHADDD(a[3], a[2], a[2])
			VPHADDD(a[2], a[0], a[0]) // per 128-bit lane: one partial sum of each of the four
			lo, hi := acc[g].AsX(), XMM()
			VEXTRACTI128(Imm(1), a[0], hi)
			VPADDD(hi, lo, lo)
			if corr != nil {
				VPSUBD(Mem{Base: corr, Disp: 4 * g}, lo, lo)
			}
			VMOVDQU(lo, Mem{Base: out, Disp: 4 * g})
			above(g, 4, lo, func(m, r Op) { VMOVDQU(m, r) })
			if g > 0 {
				SHLL(U8(g), bits)
			}
			ORL(bits, all)
		}
		bits = all
	}
	MOVB(bits.As8(), Mem{Base: mask})
}

// reduce8 sums the 16 int32 lanes of each of eight accumulators and
// returns a register whose low eight lanes hold the sums in order: a tree
// of whole-vector adds (each step halving the vectors, doubling what each
// holds), 24 instructions for all eight instead of about 50 one by one,
// which matters as the vpdpbusd of a 384-value head are only 48. order is
// the lane permutation 0, 4, 8, 12, 1, 5, 9, 13. The accumulators are
// clobbered.
func reduce8(acc []reg.VecVirtual, order reg.VecVirtual) reg.VecVirtual {
	// 128-bit lanes: a = [A0 A1 A2 A3], b = [B0 B1 B2 B3] → [A0+A2 A1+A3 B0+B2 B1+B3].
	var s [4]reg.VecVirtual
	for k := range s {
		s[k] = addShuffled(acc[2*k], acc[2*k+1], 0x44, 0xee)
	}
	// [P0 P1 Q0 Q1], [R0 R1 S0 S1] → [P0+P1 Q0+Q1 R0+R1 S0+S1]: lane k holds
	// four partial sums of accumulator k (of 4+k in the second).
	t := [2]reg.VecVirtual{addShuffled(s[0], s[1], 0x88, 0xdd), addShuffled(s[2], s[3], 0x88, 0xdd)}
	// Per lane k: [x0 x1 x2 x3], [y0 y1 y2 y3] → [Σx Σy Σx Σy].
	lo, hi := t[0], ZMM()
	VPUNPCKHDQ(t[1], t[0], hi)
	VPUNPCKLDQ(t[1], t[0], lo)
	VPADDD(hi, lo, lo)
	VPSHUFD(U8(0x4e), lo, hi)
	VPADDD(hi, lo, lo)
	VPERMD(lo, order, lo)
	return lo
}

// addShuffled sets a to the sum of two vshufi64x2 of a and b (128-bit
// lanes picked by the immediates x and y) and returns it.
func addShuffled(a, b reg.VecVirtual, x, y uint8) reg.VecVirtual {
	other := ZMM()
	VSHUFI64X2(U8(y), b, a, other)
	VSHUFI64X2(U8(x), b, a, a)
	VPADDD(other, a, a)
	return a
}

// storeSums8 is storeSums for eight sums, the low lanes of sums.
func storeSums8(sums reg.VecVirtual, out, corr, mask reg.Register) {
	y, t, bits := sums.AsY(), YMM(), GP32()
	VPSUBD(Mem{Base: corr}, y, y)
	VMOVDQU(y, Mem{Base: out})
	VPCMPGTD(Mem{Base: Load(Param("floor"), GP64())}, y, t)
	VMOVMSKPS(t, bits)
	MOVB(bits.As8(), Mem{Base: mask})
}

// dotsVNNI generates dotsI8x<p>VNNI: like dotsI8, with int8 probes, 64
// values per step on AVX-512 VNNI (vpdpbusd: unsigned bytes times signed
// bytes, four products summed into each int32 lane). The row is made
// unsigned by flipping its sign bits (x+128, one vpxord per step for all
// p probes); corr[j] = 128·Σq of probe j is subtracted at the end, so the
// result is the exact Σ x·q. Probes are packed by 64-value chunk: chunk c
// of probe j at qp[(c*p+j)*64 :].
func dotsVNNI(p int) {
	name := fmt.Sprintf("dotsI8x%dVNNI", p)
	TEXT(name, NOSPLIT, "func(m *int8, rows, stride, n64 int, qp *int8, corr *int32, out *int32, ostride int, floor *int32, mask *uint8, mstride int)")
	Doc(fmt.Sprintf("%s scores int8 rows against %d packed int8 probes (AVX-512 VNNI; n64 a positive multiple of 64).", name, p))
	m := Load(Param("m"), GP64())
	rows := Load(Param("rows"), GP64())
	stride := Load(Param("stride"), GP64())
	n64 := Load(Param("n64"), GP64())
	qp := Load(Param("qp"), GP64())
	out := Load(Param("out"), GP64())
	ostride := Load(Param("ostride"), GP64())
	SHLQ(U8(2), ostride)
	mask := Load(Param("mask"), GP64())

	acc := make([]reg.VecVirtual, p)
	for j := range acc {
		acc[j] = ZMM()
	}
	x, flip := ZMM(), ZMM()
	bits := GP32()
	MOVL(U32(0x80808080), bits)
	VPBROADCASTD(bits, flip)
	var order reg.VecVirtual // p = 8: where reduce8 leaves each probe's sum
	if p == 8 {
		order = ZMM()
		at := GP64()
		MOVQ(U64(0x0d0905010c080400), at) // lanes 0, 4, 8, 12, 1, 5, 9, 13
		VMOVQ(at, order.AsX())
		VPMOVZXBD(order.AsX(), order)
	}
	j, q := GP64(), GP64()

	TESTQ(rows, rows)
	JZ(LabelRef("done"))
	Label("row")
	for _, a := range acc {
		VPXORD(a, a, a)
	}
	XORQ(j, j)
	MOVQ(qp, q)
	ahead := GP64()
	if p > 1 {
		MOVQ(stride, ahead)
		SHLQ(U8(prefetchShift), ahead)
		ADDQ(m, ahead)
	}
	Label("chunk")
	if p > 1 {
		PREFETCHT0(Mem{Base: ahead, Index: j, Scale: 1})
	}
	VPXORD(Mem{Base: m, Index: j, Scale: 1}, flip, x)
	for k, a := range acc {
		VPDPBUSD(Mem{Base: q, Disp: 64 * k}, x, a)
	}
	ADDQ(U32(64*p), q)
	ADDQ(U8(64), j)
	CMPQ(j, n64)
	JL(LabelRef("chunk"))

	if p == 8 {
		storeSums8(reduce8(acc, order), out, Load(Param("corr"), GP64()), mask)
	} else {
		ys := make([]reg.VecVirtual, p)
		for k, a := range acc { // 16 lanes → 8
			hi := YMM()
			VEXTRACTI64X4(U8(1), a, hi)
			VPADDD(hi, a.AsY(), a.AsY())
			ys[k] = a
		}
		storeSums(ys, out, Load(Param("corr"), GP64()), mask)
	}

	ADDQ(stride, m)
	ADDQ(ostride, out)
	ADDQ(Load(Param("mstride"), GP64()), mask)
	DECQ(rows)
	JNZ(LabelRef("row"))
	Label("done")
	VZEROUPPER()
	RET()
}

// tileProbeCounts are the tile kernels generated, by probes per pass: 12
// fills 24 of the 32 vector registers with accumulators for two tiles.
var tileProbeCounts = []int{12, 8, 4, 1}

// Offsets of a tile's row bounds (float32s, 16 each) and of the probe
// parameters (float32s, p each), as kernel.TileBounds and kernel.TileProbes
// lay them out.
const (
	boundInv, boundRes, boundQn, boundSuf     = 0, 64, 128, 192 // bytes
	tileBoundBytes                            = 256
	paramQinv, paramRes, paramSuf, paramFloor = 0, 1, 2, 3 // × 4p bytes
)

// dotsTile generates dotsTile<p>VNNI: the int8 head products of the rows
// of a pair of tiles (the second tileBytes after the first; 16 rows each,
// interleaved by 4 values: value 4s+k of row r at byte s*64 + r*4 + k,
// stored as x+128) with p probes (value 4s+k of probe j at
// qp[(s*p+j)*4+k]), written less corr[j] to out (tile t of the two, probe
// j: 16 int32 at out + t*ostride + j*64), and for each row a bit of mask
// (tile t, probe j: a uint16 at mask + t*mstride + j*2), set when the row
// may score at least floor[j]:
//
//	d·inv·qinv[j] + qn·res[j] + suf·suf[j] + res ≥ floor[j]
//
// in float32, with the row's inv, res, qn and suf from its tile's bounds
// (256 bytes a tile, at rb). Each step reads 64 bytes of two tiles and
// broadcasts 4 bytes of each probe: 2p vpdpbusd for 2 + p loads, no
// horizontal sums, so the kernel runs at the vpdpbusd rate (two a cycle).
func dotsTile(p int) {
	name := fmt.Sprintf("dotsTile%dVNNI", p)
	TEXT(name, NOSPLIT, "func(tiles *uint8, tileBytes, steps int, qp *int8, corr *int32, pv *float32, rb *float32, out *int32, ostride int, mask *uint16, mstride int)")
	Doc(fmt.Sprintf("%s scores a pair of int8 tiles against %d packed int8 probes and flags the rows that may reach each probe's floor (AVX-512 VNNI).", name, p))
	tiles := Load(Param("tiles"), GP64())
	tileBytes := Load(Param("tileBytes"), GP64())
	qp := Load(Param("qp"), GP64())
	corr := Load(Param("corr"), GP64())
	pv := Load(Param("pv"), GP64())
	rb := Load(Param("rb"), GP64())
	out := Load(Param("out"), GP64())
	ostride := Load(Param("ostride"), GP64())
	mask := Load(Param("mask"), GP64())
	mstride := Load(Param("mstride"), GP64())

	acc := make([][]reg.VecVirtual, 2)
	for r := range acc {
		acc[r] = make([]reg.VecVirtual, p)
		for j := range acc[r] {
			acc[r][j] = ZMM()
		}
	}
	x := []reg.VecVirtual{ZMM(), ZMM()}
	a, b, q, step := GP64(), GP64(), GP64(), GP64()

	for r := range acc {
		for _, v := range acc[r] {
			VPXORD(v, v, v)
		}
	}
	MOVQ(tiles, a)
	LEAQ(Mem{Base: tiles, Index: tileBytes, Scale: 1}, b)
	MOVQ(qp, q)
	Load(Param("steps"), step)
	Label("step")
	VMOVDQU32(Mem{Base: a}, x[0])
	VMOVDQU32(Mem{Base: b}, x[1])
	for j := range p {
		for r := range acc {
			VPDPBUSD_BCST(Mem{Base: q, Disp: 4 * j}, x[r], acc[r][j])
		}
	}
	ADDQ(U8(64), a)
	ADDQ(U8(64), b)
	ADDQ(U32(4*p), q)
	DECQ(step)
	JNZ(LabelRef("step"))

	// The flags, tile by tile, probe by probe.
	o, mk := GP64(), GP64()
	MOVQ(out, o)
	MOVQ(mask, mk)
	for r := range acc {
		bound := func(off int) Mem { return Mem{Base: rb, Disp: r*tileBoundBytes + off} }
		for j, v := range acc[r] {
			param := func(which int) Mem { return Mem{Base: pv, Disp: 4 * (which*p + j)} }
			t, k := ZMM(), K()
			VPSUBD_BCST(Mem{Base: corr, Disp: 4 * j}, v, v)
			VMOVDQU32(v, Mem{Base: o, Disp: 64 * j})
			VCVTDQ2PS(v, v)
			VMULPS(bound(boundInv), v, v)
			VMULPS_BCST(param(paramQinv), v, v)
			VMOVUPS(bound(boundQn), t)
			VFMADD231PS_BCST(param(paramRes), t, v)
			VMOVUPS(bound(boundSuf), t)
			VFMADD231PS_BCST(param(paramSuf), t, v)
			VADDPS(bound(boundRes), v, v)
			VCMPPS_BCST(U8(0x1d), param(paramFloor), v, k) // ≥, ordered
			KMOVW(k, Mem{Base: mk, Disp: 2 * j})
		}
		ADDQ(ostride, o)
		ADDQ(mstride, mk)
	}
	VZEROUPPER()
	RET()
}

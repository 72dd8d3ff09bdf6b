//go:build goexperiment.simd && amd64

package kernel

import "simd/archsimd"

func init() {
	if !archsimd.X86.AVX2() || !archsimd.X86.FMA() {
		return
	}
	// float32 stays on gonum's assembly: measured faster than dotsF32AVX2
	// on this project's machines both in cache and streaming (bench/README.md).
	DotsI8, NameI8 = dotsI8AVX2, "avx2"
	HasSIMD = true
	simdKernels["avx2"] = F32Func(dotsF32AVX2)
	simdKernels["avx2-i8"] = I8Func(dotsI8AVX2)
}

// dotsF32AVX2: 4 FMA accumulators of 8 lanes (32 floats per step).
func dotsF32AVX2(m []float32, dim int, q []float32, out []float32) {
	q = q[:dim]
	for i := range out {
		row := m[i*dim : i*dim+dim]
		var a0, a1, a2, a3 archsimd.Float32x8
		j := 0
		for ; j+32 <= dim; j += 32 {
			// One bounds check per 32 floats: constant offsets into array pointers.
			r, p := (*[32]float32)(row[j:j+32]), (*[32]float32)(q[j:j+32])
			a0 = archsimd.LoadFloat32x8((*[8]float32)(r[0:8])).MulAdd(archsimd.LoadFloat32x8((*[8]float32)(p[0:8])), a0)
			a1 = archsimd.LoadFloat32x8((*[8]float32)(r[8:16])).MulAdd(archsimd.LoadFloat32x8((*[8]float32)(p[8:16])), a1)
			a2 = archsimd.LoadFloat32x8((*[8]float32)(r[16:24])).MulAdd(archsimd.LoadFloat32x8((*[8]float32)(p[16:24])), a2)
			a3 = archsimd.LoadFloat32x8((*[8]float32)(r[24:32])).MulAdd(archsimd.LoadFloat32x8((*[8]float32)(p[24:32])), a3)
		}
		for ; j+8 <= dim; j += 8 {
			a0 = archsimd.LoadFloat32x8((*[8]float32)(row[j:j+8])).MulAdd(archsimd.LoadFloat32x8((*[8]float32)(q[j:j+8])), a0)
		}
		var lanes [8]float32
		a0.Add(a1).Add(a2.Add(a3)).Store(&lanes)
		s := ((lanes[0] + lanes[1]) + (lanes[2] + lanes[3])) + ((lanes[4] + lanes[5]) + (lanes[6] + lanes[7]))
		for ; j < dim; j++ {
			s += row[j] * q[j]
		}
		out[i] = s
	}
	archsimd.ClearAVXUpperBits()
}

// dotsI8AVX2 widens 16 int8 at a time to int16 (vpmovsxbw) and multiplies
// pairs into int32 lanes (vpmaddwd): exact integer arithmetic.
func dotsI8AVX2(m []int8, dim int, q []int16, out []int32) {
	q = q[:dim]
	for i := range out {
		row := m[i*dim : i*dim+dim]
		var a0, a1 archsimd.Int32x8
		j := 0
		for ; j+32 <= dim; j += 32 {
			r, p := (*[32]int8)(row[j:j+32]), (*[32]int16)(q[j:j+32])
			a0 = a0.Add(archsimd.LoadInt8x16((*[16]int8)(r[0:16])).ExtendToInt16().DotProductPairs(archsimd.LoadInt16x16((*[16]int16)(p[0:16]))))
			a1 = a1.Add(archsimd.LoadInt8x16((*[16]int8)(r[16:32])).ExtendToInt16().DotProductPairs(archsimd.LoadInt16x16((*[16]int16)(p[16:32]))))
		}
		for ; j+16 <= dim; j += 16 {
			a0 = a0.Add(archsimd.LoadInt8x16((*[16]int8)(row[j : j+16])).ExtendToInt16().DotProductPairs(archsimd.LoadInt16x16((*[16]int16)(q[j : j+16]))))
		}
		var lanes [8]int32
		a0.Add(a1).Store(&lanes)
		s := lanes[0] + lanes[1] + lanes[2] + lanes[3] + lanes[4] + lanes[5] + lanes[6] + lanes[7]
		for ; j < dim; j++ {
			s += int32(row[j]) * int32(q[j])
		}
		out[i] = s
	}
	archsimd.ClearAVXUpperBits()
}

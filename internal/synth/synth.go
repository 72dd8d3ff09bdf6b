// Package synth makes synthetic face-embedding-like data: identities (a
// seeded random direction each) and noisy samples of them, L2-normalised.
// Tests, benchmarks and `biomatch client vector` use it; it never stands in
// for a real model's embeddings, only for their geometry.
package synth

import (
	"math"
	"math/rand/v2"
)

// Vector returns sample number `sample` of identity `identity`: the
// identity's direction plus Gaussian noise of relative size noise,
// normalised. noise 0 gives the identity itself; about 0.3 gives cosine
// ≈ 0.95 to it, 1.0 about 0.7.
func Vector(dim int, identity uint64, noise float64, sample uint64) []float32 {
	id := rand.New(rand.NewPCG(identity, 0x5eed))
	n := rand.New(rand.NewPCG(identity^0x9e3779b97f4a7c15, sample))
	v := make([]float64, dim)
	var s float64
	for i := range v {
		v[i] = id.NormFloat64() + noise*n.NormFloat64()
		s += v[i] * v[i]
	}
	out := make([]float32, dim)
	for i, x := range v {
		out[i] = float32(x / math.Sqrt(s))
	}
	return out
}

// Frames returns k samples of one identity back to back: a multi-frame
// enroll vector as the SDKs send it.
func Frames(dim int, identity uint64, noise float64, k int) []float32 {
	out := make([]float32, 0, dim*k)
	for i := range k {
		out = append(out, Vector(dim, identity, noise, uint64(i+1))...)
	}
	return out
}

// Float64s widens a vector to the float64 frames an enroll or predict takes.
func Float64s(v []float32) []float64 {
	out := make([]float64, len(v))
	for i, x := range v {
		out[i] = float64(x)
	}
	return out
}

// AtCosine returns a unit vector whose cosine with v is c: v's direction
// plus a part orthogonal to it, from the identity seed.
func AtCosine(v []float32, c float64, seed uint64) []float32 {
	w := Vector(len(v), seed, 0, 0)
	var dot, nv float64
	for i := range v {
		dot += float64(v[i]) * float64(w[i])
		nv += float64(v[i]) * float64(v[i])
	}
	// w minus its component along v, normalised: orthogonal to v.
	orth := make([]float64, len(v))
	var no float64
	for i := range v {
		orth[i] = float64(w[i]) - dot/nv*float64(v[i])
		no += orth[i] * orth[i]
	}
	out := make([]float32, len(v))
	for i := range v {
		out[i] = float32(c*float64(v[i])/math.Sqrt(nv) + math.Sqrt(1-c*c)*orth[i]/math.Sqrt(no))
	}
	return out
}

package engine

import (
	"fmt"
	"math"
)

// Dimension limits of a template.
const (
	MinDim = 128
	MaxDim = 512
	// MaxFrames is how many MaxDim-float frames one multi-frame vector may hold.
	MaxFrames = 10
	// ConsistencyMin is the cosine similarity to the other frames' mean below
	// which a frame of a multi-frame enroll is dropped as an outlier.
	ConsistencyMin = 0.8
)

// SplitFrames splits a multi-frame vector, the SDKs' default enroll (k frames
// of 512 floats back to back, COMPAT.md), into its frames. A vector of any
// other length is returned as the only frame.
func SplitFrames(v []float64) [][]float64 {
	n := len(v) / MaxDim
	if len(v) <= MaxDim || len(v)%MaxDim != 0 || n > MaxFrames {
		return [][]float64{v}
	}
	frames := make([][]float64, n)
	for i := range frames {
		frames[i] = v[i*MaxDim : (i+1)*MaxDim]
	}
	return frames
}

// NewEmbeddings validates raw vectors and returns them L2-normalised.
// All must have one dimension in [MinDim, MaxDim], finite values that fit a
// float32, and a non-zero norm. Errors wrap ErrInvalid and say what is wrong.
func NewEmbeddings(raw [][]float64) ([]Embedding, error) {
	if len(raw) == 0 {
		return nil, fmt.Errorf("%w: no embedding", ErrInvalid)
	}
	if len(raw) > MaxFrames {
		return nil, fmt.Errorf("%w: %d embeddings, at most %d", ErrInvalid, len(raw), MaxFrames)
	}
	dim := len(raw[0])
	out := make([]Embedding, len(raw))
	for i, v := range raw {
		if len(v) != dim {
			return nil, fmt.Errorf("%w: embeddings of mixed dimensions %d and %d", ErrInvalid, dim, len(v))
		}
		if dim < MinDim || dim > MaxDim {
			return nil, fmt.Errorf("%w: embedding has %d values, want %d to %d (or a multiple of %d up to %d frames)",
				ErrInvalid, dim, MinDim, MaxDim, MaxDim, MaxFrames)
		}
		var sum float64
		for j, x := range v {
			if math.IsNaN(x) || math.Abs(x) > math.MaxFloat32 {
				return nil, fmt.Errorf("%w: embedding value %d is not a finite float32", ErrInvalid, j)
			}
			x32 := float64(float32(x))
			sum += x32 * x32
		}
		norm := math.Sqrt(sum)
		if norm == 0 || math.IsInf(norm, 0) {
			return nil, fmt.Errorf("%w: embedding has zero or unbounded norm", ErrInvalid)
		}
		e := make(Embedding, dim)
		for j, x := range v {
			e[j] = float32(float64(float32(x)) / norm)
		}
		out[i] = e
	}
	return out, nil
}

// DropOutliers keeps the embeddings whose cosine similarity to the mean of the
// others is at least ConsistencyMin. One embedding is kept as it is. None
// left returns ErrRejected.
func DropOutliers(es []Embedding) ([]Embedding, error) {
	if len(es) < 2 {
		return es, nil
	}
	dim := len(es[0])
	sum := make([]float64, dim)
	for _, e := range es {
		for j, x := range e {
			sum[j] += float64(x)
		}
	}
	var kept []Embedding
	others := make([]float64, dim)
	for _, e := range es {
		for j, x := range e {
			others[j] = sum[j] - float64(x)
		}
		if cosine64(e, others) >= ConsistencyMin {
			kept = append(kept, e)
		}
	}
	if len(kept) == 0 {
		return nil, fmt.Errorf("%w: the %d embeddings do not show one face (none within %.2f of the others)",
			ErrRejected, len(es), ConsistencyMin)
	}
	return kept, nil
}

// Mean returns the L2-normalised mean of embeddings of one dimension.
// Embeddings that cancel out (their mean is shorter than MinMeanNorm) show
// no one face: that returns ErrRejected.
func Mean(es []Embedding) (Embedding, error) {
	if len(es) == 1 {
		return es[0], nil
	}
	sum := make([]float64, len(es[0]))
	for _, e := range es {
		for j, x := range e {
			sum[j] += float64(x)
		}
	}
	var n float64
	for _, x := range sum {
		n += x * x
	}
	n = math.Sqrt(n)
	if n < MinMeanNorm*float64(len(es)) {
		return nil, fmt.Errorf("%w: the %d frames do not show one face (they cancel out: their mean has length %.3f)",
			ErrRejected, len(es), n/float64(len(es)))
	}
	out := make(Embedding, len(sum))
	for j, x := range sum {
		out[j] = float32(x / n)
	}
	return out, nil
}

// MinMeanNorm is the shortest mean of unit frames that still has a direction:
// frames of one face have a mean close to 1, frames that cancel out close to 0.
const MinMeanNorm = 0.05

// Cosine returns the cosine similarity of two L2-normalised embeddings of one
// dimension: their dot product.
func Cosine(a, b Embedding) float64 {
	var s float64
	for i := range a {
		s += float64(a[i]) * float64(b[i])
	}
	return s
}

func cosine64(a Embedding, b []float64) float64 {
	var dot, nb float64
	for i := range a {
		dot += float64(a[i]) * b[i]
		nb += b[i] * b[i]
	}
	if nb == 0 {
		return 0
	}
	return dot / math.Sqrt(nb)
}

// RoundScore rounds a similarity to 4 decimals, as replies carry it.
func RoundScore(s float64) float64 { return math.Round(s*1e4) / 1e4 }

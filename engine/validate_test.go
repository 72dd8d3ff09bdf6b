package engine

import (
	"errors"
	"math"
	"math/rand/v2"
	"testing"
)

func randVec(r *rand.Rand, dim int) []float64 {
	v := make([]float64, dim)
	for i := range v {
		v[i] = r.NormFloat64()
	}
	return v
}

func TestSplitFrames(t *testing.T) {
	for _, tc := range []struct{ n, frames, frameLen int }{
		{128, 1, 128}, {512, 1, 512}, {1024, 2, 512}, {2560, 5, 512}, {5120, 10, 512}, {5632, 1, 5632}, {1000, 1, 1000},
	} {
		got := SplitFrames(make([]float64, tc.n))
		if len(got) != tc.frames || len(got[0]) != tc.frameLen {
			t.Errorf("SplitFrames(%d) = %d frames of %d, want %d of %d", tc.n, len(got), len(got[0]), tc.frames, tc.frameLen)
		}
	}
}

func TestNewEmbeddings(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	es, err := NewEmbeddings([][]float64{randVec(r, 512), randVec(r, 512)})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range es {
		if n := Cosine(e, e); math.Abs(n-1) > 1e-5 {
			t.Errorf("norm² = %v, want 1", n)
		}
	}
	bad := map[string][][]float64{
		"none":       nil,
		"127":        {randVec(r, 127)},
		"513":        {randVec(r, 513)},
		"mixed":      {randVec(r, 128), randVec(r, 256)},
		"NaN":        {append(randVec(r, 127), math.NaN())},
		"+Inf":       {append(randVec(r, 127), math.Inf(1))},
		"float32max": {append(randVec(r, 127), 1e39)},
		"zero":       {make([]float64, 256)},
		"11 frames":  make([][]float64, 11),
	}
	for name, raw := range bad {
		if _, err := NewEmbeddings(raw); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: NewEmbeddings error = %v, want ErrInvalid", name, err)
		}
	}
}

func TestDropOutliers(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	base := randVec(r, 512)
	sample := func() []float64 {
		v := make([]float64, len(base))
		for i := range v {
			v[i] = base[i] + 0.2*r.NormFloat64()
		}
		return v
	}
	es, _ := NewEmbeddings([][]float64{sample(), sample(), sample(), randVec(r, 512)})
	kept, err := DropOutliers(es)
	if err != nil || len(kept) != 3 {
		t.Fatalf("DropOutliers(3 samples + 1 stranger) kept %d, %v; want 3", len(kept), err)
	}
	es, _ = NewEmbeddings([][]float64{randVec(r, 512), randVec(r, 512)})
	if _, err := DropOutliers(es); !errors.Is(err, ErrRejected) {
		t.Errorf("DropOutliers(two strangers) error = %v, want ErrRejected", err)
	}
	one := es[:1]
	if kept, err := DropOutliers(one); err != nil || len(kept) != 1 {
		t.Errorf("DropOutliers(one) = %d, %v", len(kept), err)
	}
}

func TestIDs(t *testing.T) {
	seen := map[string]bool{}
	for range 1000 {
		id := NewID()
		if !IsID(id) || seen[id] {
			t.Fatalf("NewID() = %q (valid %v, repeated %v)", id, IsID(id), seen[id])
		}
		seen[id] = true
	}
	for _, s := range []string{"", "KW4i4cGr-fv76-YqIE-w7fA-UrAt0FcVyY2", "KW4i4cGr_fv76-YqIE-w7fA-UrAt0FcVyY2q", "KW4i4cGr-fv76-YqIE-w7fA-UrAt0FcVyY2!"} {
		if IsID(s) {
			t.Errorf("IsID(%q) = true", s)
		}
	}
	if !IsID("KW4i4cGr-fv76-YqIE-w7fA-UrAt0FcVyY2q") {
		t.Error("IsID rejects the document's example")
	}
}

func TestEmbeddingNeverFormatsValues(t *testing.T) {
	e := Embedding{0.123456, 0.654321}
	if s := e.String(); s != "Embedding[2]" {
		t.Errorf("String() = %q", s)
	}
	if s := e.LogValue().String(); s != "Embedding[2]" {
		t.Errorf("LogValue() = %q", s)
	}
}

// FuzzNewEmbeddings: any input either validates to unit vectors or is
// refused with ErrInvalid; nothing panics.
func FuzzNewEmbeddings(f *testing.F) {
	f.Add(128, 1.0, 0.5, uint64(1))
	f.Add(512, math.NaN(), 0.0, uint64(2))
	f.Add(1024, 1e39, -1.0, uint64(3))
	f.Fuzz(func(t *testing.T, n int, a, b float64, seed uint64) {
		if n < 0 || n > 6000 {
			return
		}
		r := rand.New(rand.NewPCG(seed, 0))
		v := make([]float64, n)
		for i := range v {
			switch r.IntN(3) {
			case 0:
				v[i] = a
			case 1:
				v[i] = b
			default:
				v[i] = r.NormFloat64()
			}
		}
		es, err := NewEmbeddings(SplitFrames(v))
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error %v does not wrap ErrInvalid", err)
			}
			return
		}
		for _, e := range es {
			if s := Cosine(e, e); math.Abs(s-1) > 1e-3 {
				t.Fatalf("validated embedding has norm² %v", s)
			}
		}
	})
}

// TestMeanOfFramesThatCancelOut: frames with no common direction have no
// mean: ErrRejected, never a NaN probe.
func TestMeanOfFramesThatCancelOut(t *testing.T) {
	a := Embedding{0.6, 0.8}
	neg := Embedding{-0.6, -0.8}
	if m, err := Mean([]Embedding{a, neg}); !errors.Is(err, ErrRejected) {
		t.Errorf("Mean(a, -a) = %v, %v; want ErrRejected", m, err)
	}
	m, err := Mean([]Embedding{a, a})
	if err != nil || math.Abs(float64(m[0])-0.6) > 1e-6 || math.Abs(float64(m[1])-0.8) > 1e-6 {
		t.Errorf("Mean(a, a) = %v, %v; want a", m, err)
	}
	raw := make([][]float64, 2)
	for i, sign := range []float64{1, -1} {
		raw[i] = make([]float64, 128)
		for j := range raw[i] {
			raw[i][j] = sign * float64(j+1)
		}
	}
	if p, err := Probe(raw); !errors.Is(err, ErrRejected) {
		t.Errorf("Probe(v, -v) = %v, %v; want ErrRejected", p, err)
	}
}

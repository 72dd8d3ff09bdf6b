package httpapi

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/biomatch/biomatch/engine"
)

// FuzzDecodeFeatures: any opened features either decode into frames the
// engine then validates, or are refused with ErrInvalid; nothing panics.
func FuzzDecodeFeatures(f *testing.F) {
	f.Add([]byte(`{"type":"face","embedding_vector":[0.5,-0.25]}`))
	f.Add([]byte(`{"features":[{"type":"face","embedding_vector":[1,2]},{"embedding_vector":[3]}]}`))
	f.Add([]byte(`{"embedding_vector":[NaN]}`))
	f.Add([]byte(`{"embedding_vector":[1],"embedding_vector":[2]}`))
	f.Add([]byte(`[[[[[[`))
	f.Fuzz(func(t *testing.T, plain []byte) {
		frames, err := decodeFeatures(plain)
		if err != nil {
			if !errors.Is(err, engine.ErrInvalid) {
				t.Fatalf("error %v does not wrap ErrInvalid", err)
			}
			return
		}
		if len(frames) == 0 {
			t.Fatal("no error and no frames")
		}
		engine.NewEmbeddings(frames) // must not panic either
	})
}

// FuzzNodeBody: the body decoding every /node route does, and the
// duplicate-key scan, never panic, and a body with a duplicate key is one
// encoding/json would accept.
func FuzzNodeBody(f *testing.F) {
	f.Add([]byte(`{"api_key":"k","features":"00","K":"2","puid_list":["a"]}`))
	f.Add([]byte(`{"api_key":"a","API_KEY":"b"}`))
	f.Add([]byte(`{"K":1e400}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		var req nodeRequest
		err := json.Unmarshal(body, &req)
		if _, dup := duplicateKey(body); dup && !json.Valid(body) {
			t.Fatalf("duplicate reported in invalid JSON %q", body)
		}
		_ = err
	})
}

package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
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

// FuzzNodeBody: decoding a /node body never panics, and a body it accepts
// is valid JSON, an object, with no name twice (in any case).
func FuzzNodeBody(f *testing.F) {
	f.Add([]byte(`{"api_key":"k","features":"00","K":"2","puid_list":["a"]}`))
	f.Add([]byte(`{"api_key":"a","API_KEY":"b"}`))
	f.Add([]byte(`{"K":1e400}`))
	f.Add([]byte(`{"sealed":"AAEC","x":{"y":1,"y":2}}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		var req nodeRequest
		if err := decodeJSON(body, &req); err != nil {
			return
		}
		if !json.Valid(body) {
			t.Fatalf("accepted invalid JSON %q", body)
		}
		dec := json.NewDecoder(bytes.NewReader(body))
		if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
			t.Fatalf("accepted a body that is not an object: %q", body)
		}
		seen := map[string]bool{}
		for dec.More() {
			tok, err := dec.Token()
			if err != nil {
				t.Fatal(err)
			}
			name := strings.ToLower(tok.(string))
			if seen[name] {
				t.Fatalf("accepted the name %q twice in %q", name, body)
			}
			seen[name] = true
			var skip json.RawMessage
			if err := dec.Decode(&skip); err != nil {
				t.Fatal(err)
			}
		}
	})
}

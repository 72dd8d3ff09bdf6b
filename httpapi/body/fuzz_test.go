package body

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	jsonv2 "github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"

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
		frames, err := DecodeFeatures(plain)
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
// is valid JSON, an object, with no name twice, and none of the fields we
// read twice in any case (K and k). An unknown name in two cases is
// accepted: both are ignored, so the body cannot say two things we act on.
// bound mirrors Node's fields as raw values: decoding one member
// into it (with DecodeNode's rules) shows which field, if any, it binds.
type bound struct {
	APIKey         jsontext.Value `json:"api_key"`
	Features       jsontext.Value `json:"features"`
	UserIdentifier jsontext.Value `json:"user_identifier"`
	MultiUser      jsontext.Value `json:"multi_user"`
	K              jsontext.Value `json:"K"`
	PUID           jsontext.Value `json:"puid"`
	PUIDList       jsontext.Value `json:"puid_list"`
	OriginalImage  jsontext.Value `json:"original_image"`
	Sealed         jsontext.Value `json:"sealed"`
}

// FuzzNodeBody: decoding a /node body never panics, and a body it accepts
// is valid JSON, an object, with no name twice, and no field we read bound
// by two names (K and k). An unknown name in two cases is accepted: both
// are ignored, so the body cannot say two things we act on.
func FuzzNodeBody(f *testing.F) {
	f.Add([]byte(`{"api_key":"k","features":"00","K":"2","puid_list":["a"]}`))
	f.Add([]byte(`{"api_key":"a","API_KEY":"b"}`))
	f.Add([]byte(`{"K":1e400}`))
	f.Add([]byte(`{"sealed":"AAEC","x":{"y":1,"y":2}}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		var req Node
		if err := DecodeNode(body, &req); err != nil {
			return
		}
		if !json.Valid(body) {
			t.Fatalf("accepted invalid JSON %q", body)
		}
		dec := json.NewDecoder(bytes.NewReader(body))
		if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
			t.Fatalf("accepted a body that is not an object: %q", body)
		}
		names, fields := map[string]bool{}, map[string]int{}
		for dec.More() {
			tok, err := dec.Token()
			if err != nil {
				t.Fatal(err)
			}
			name := tok.(string)
			if names[name] {
				t.Fatalf("accepted the name %q twice in %q", name, body)
			}
			names[name] = true
			var value json.RawMessage
			if err := dec.Decode(&value); err != nil {
				t.Fatal(err)
			}
			member, _ := json.Marshal(map[string]json.RawMessage{name: value})
			var b bound
			if err := jsonv2.Unmarshal(member, &b, jsonv2.MatchCaseInsensitiveNames(true)); err != nil {
				t.Fatalf("member %s of an accepted body does not decode alone: %v", member, err)
			}
			for field, v := range map[string]jsontext.Value{"api_key": b.APIKey, "features": b.Features,
				"user_identifier": b.UserIdentifier, "multi_user": b.MultiUser, "K": b.K, "puid": b.PUID,
				"puid_list": b.PUIDList, "original_image": b.OriginalImage, "sealed": b.Sealed} {
				if v != nil {
					if fields[field]++; fields[field] > 1 {
						t.Fatalf("accepted two names for %s in %q", field, body)
					}
				}
			}
		}
	})
}

// FuzzV1Body: the /v1 decoder never panics, and a body it accepts is one
// valid JSON object with no name twice and no name outside the target
// type (every /v1 body is closed), whose error messages never echo input.
func FuzzV1Body(f *testing.F) {
	f.Add([]byte(`{"embedding":[0.1,0.2],"k":2,"person":"alice","security_level":"high"}`))
	f.Add([]byte(`{"embeddings":[[1],[2]],"user_identifier":"u"}`))
	f.Add([]byte(`{"operations":["enroll"],"max_uses":3,"ttl_seconds":60}`))
	f.Add([]byte(`{"embedding":[1e400]}`))
	f.Add([]byte(`{"k":1,"K":2}`))
	f.Add([]byte(`{"url":"https://93.184.216.34/h","events":["person.deleted"]}`))
	known := map[string]bool{"embedding": true, "embeddings": true, "k": true, "person": true, "security_level": true,
		"user_identifier": true, "operations": true, "max_uses": true, "ttl_seconds": true, "url": true, "events": true}
	f.Fuzz(func(t *testing.T, body []byte) {
		var targets = []any{&Probe{}, &Enroll{}, &Session{}, &Webhook{}}
		for _, v := range targets {
			err := DecodeStrict(body, v)
			if err != nil {
				if len(body) >= 8 && strings.Contains(err.Error(), string(body)) {
					t.Fatalf("error %q echoes the body", err)
				}
				continue
			}
			if !json.Valid(body) {
				t.Fatalf("accepted invalid JSON %q", body)
			}
			var m map[string]json.RawMessage
			if err := json.Unmarshal(body, &m); err != nil {
				t.Fatalf("accepted a body that is not an object: %q", body)
			}
			for name := range m {
				if !known[name] {
					t.Fatalf("accepted the unknown name %q in %q", name, body)
				}
			}
		}
	})
}

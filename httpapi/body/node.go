// Package body decodes the API's request bodies: the CryptoNets /node body
// and its opened features (names match case-insensitively, a name twice is
// refused), and the native API's strict JSON. Errors say what is wrong
// without echoing the input. It imports no HTTP framework: its fuzz
// targets build in seconds.
package body

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"

	"github.com/biomatch/biomatch/engine"
)

// Node is the body every /node route accepts, decoded once (DecodeNode).
// Unknown fields are ignored. A version-3 body carries only Sealed; its
// opened plaintext is a V3.
type Node struct {
	APIKey         string         `json:"api_key"`
	Features       Features       `json:"features"`
	UserIdentifier string         `json:"user_identifier"`
	MultiUser      jsontext.Value `json:"multi_user"` // accepted, no effect
	K              Count          `json:"K"`
	PUID           string         `json:"puid"`
	PUIDList       []string       `json:"puid_list"`
	OriginalImage  jsontext.Value `json:"original_image"` // accepted, not stored
	Sealed         string         `json:"sealed"`         // version 3
}

// V3 is the opened body of a v3 request: no key, features as JSON.
type V3 struct {
	Features       jsontext.Value `json:"features"`
	UserIdentifier string         `json:"user_identifier"`
	K              Count          `json:"K"`
	PUID           string         `json:"puid"`
	PUIDList       []string       `json:"puid_list"`
}

// DecodeNode decodes one JSON document into v with the rules of Node:
// names match case-insensitively, a name that appears twice (in any case)
// is refused.
func DecodeNode(data []byte, v any) error {
	if err := json.Unmarshal(data, v, json.MatchCaseInsensitiveNames(true)); err != nil {
		return errors.New(problem(err))
	}
	return nil
}

// Features is `features`: a string (Text: hex ciphertext, or JSON text on
// the plain routes) or, on the plain routes only, the JSON itself (Raw).
type Features struct {
	Text string
	Raw  jsontext.Value
}

// UnmarshalJSON implements json.Unmarshaler.
func (f *Features) UnmarshalJSON(b []byte) error {
	switch {
	case string(b) == "null":
		return nil
	case b[0] == '"':
		return json.Unmarshal(b, &f.Text)
	case b[0] == '{' || b[0] == '[':
		f.Raw = append(jsontext.Value(nil), b...)
		return nil
	}
	return errors.New("features must be a string")
}

// Count is K: a JSON number, a numeric string or null, from 0 to 1000.
type Count int

// UnmarshalJSON implements json.Unmarshaler.
func (f *Count) UnmarshalJSON(b []byte) error {
	s := strings.Trim(string(b), `"`)
	if s == "null" || s == "" {
		return nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 || n > 1000 {
		return fmt.Errorf("K must be a whole number from 0 to 1000")
	}
	*f = Count(n)
	return nil
}

// featuresPayload is opened `features`: the SDKs' single object, or the
// document's list.
type featuresPayload struct {
	Type            string      `json:"type"`
	EmbeddingVector []float64   `json:"embedding_vector"`
	Features        []featureIn `json:"features"`
}

type featureIn struct {
	Type            string    `json:"type"`
	EmbeddingVector []float64 `json:"embedding_vector"`
}

// DecodeFeatures parses opened features — the SDKs' single object or the
// document's list — into raw frames, in one pass. Errors wrap
// engine.ErrInvalid.
func DecodeFeatures(plain []byte) ([][]float64, error) {
	var p featuresPayload
	if err := DecodeNode(plain, &p); err != nil {
		return nil, fmt.Errorf("%w: the opened features are not valid JSON (%v)", engine.ErrInvalid, err)
	}
	items := p.Features
	if len(p.EmbeddingVector) > 0 {
		items = append([]featureIn{{Type: p.Type, EmbeddingVector: p.EmbeddingVector}}, items...)
	}
	if len(items) == 0 {
		return nil, fmt.Errorf("%w: features hold no embedding_vector", engine.ErrInvalid)
	}
	var frames [][]float64
	for _, it := range items {
		if it.Type != "" && it.Type != "face" {
			return nil, fmt.Errorf("%w: features type %q is not supported (use \"face\")", engine.ErrInvalid, it.Type)
		}
		frames = append(frames, engine.SplitFrames(it.EmbeddingVector)...)
	}
	return frames, nil
}

// problem describes a JSON error without echoing the input (nor our type
// names).
func problem(err error) string {
	var syntax *jsontext.SyntacticError
	var semantic *json.SemanticError
	switch {
	case errors.Is(err, jsontext.ErrDuplicateName) && errors.As(err, &syntax):
		return fmt.Sprintf("a field appears twice (at %s)", pointer(syntax.JSONPointer))
	case errors.As(err, &syntax):
		return fmt.Sprintf("syntax error at byte %d", syntax.ByteOffset)
	case errors.As(err, &semantic) && semantic.JSONPointer == "":
		return "a JSON object is expected"
	case errors.As(err, &semantic) && errors.Is(semantic.Err, json.ErrUnknownName):
		return fmt.Sprintf("unknown field %s", pointer(semantic.JSONPointer))
	case errors.As(err, &semantic) && semantic.Err != nil && !errors.Is(semantic.Err, json.ErrUnknownName):
		var inner *json.SemanticError
		if !errors.As(semantic.Err, &inner) {
			return fmt.Sprintf("field %s: %v", pointer(semantic.JSONPointer), semantic.Err)
		}
		fallthrough
	case errors.As(err, &semantic):
		return fmt.Sprintf("field %s has the wrong type (%s)", pointer(semantic.JSONPointer), semantic.JSONKind)
	}
	return "malformed JSON"
}

// pointer names a JSON Pointer for a message: "K", or "features/0".
func pointer(p jsontext.Pointer) string { return strconv.Quote(strings.TrimPrefix(string(p), "/")) }

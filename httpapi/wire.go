package httpapi

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"

	"github.com/biomatch/biomatch/crypto"
	"github.com/biomatch/biomatch/engine"
)

// nodeRequest is the body every /node route accepts, decoded once. Names
// match case-insensitively (as the reference server's do); a name that
// appears twice, in any case, is refused; unknown fields are ignored. A
// version-3 body carries only Sealed; its opened plaintext is a v3Request.
type nodeRequest struct {
	APIKey         string         `json:"api_key"`
	Features       featuresField  `json:"features"`
	UserIdentifier string         `json:"user_identifier"`
	MultiUser      jsontext.Value `json:"multi_user"` // accepted, no effect
	K              flexInt        `json:"K"`
	PUID           string         `json:"puid"`
	PUIDList       []string       `json:"puid_list"`
	OriginalImage  jsontext.Value `json:"original_image"` // accepted, not stored
	Sealed         string         `json:"sealed"`         // version 3
}

// v3Request is the opened body of a v3 request: no key, features as JSON.
type v3Request struct {
	Features       jsontext.Value `json:"features"`
	UserIdentifier string         `json:"user_identifier"`
	K              flexInt        `json:"K"`
	PUID           string         `json:"puid"`
	PUIDList       []string       `json:"puid_list"`
}

// decodeJSON decodes one JSON document into v with the rules of
// nodeRequest. Errors say what is wrong without echoing the input.
func decodeJSON(data []byte, v any) error {
	if err := json.Unmarshal(data, v, json.MatchCaseInsensitiveNames(true)); err != nil {
		return errors.New(jsonProblem(err))
	}
	return nil
}

// jsonProblem describes a JSON error without echoing the input (nor our
// type names).
func jsonProblem(err error) string {
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

// featuresField is `features`: a string (hex ciphertext, or JSON text on
// the plain routes) or, on the plain routes only, the JSON itself.
type featuresField struct {
	text string
	json jsontext.Value
}

func (f *featuresField) UnmarshalJSON(b []byte) error {
	switch {
	case string(b) == "null":
		return nil
	case b[0] == '"':
		return json.Unmarshal(b, &f.text)
	case b[0] == '{' || b[0] == '[':
		f.json = append(jsontext.Value(nil), b...)
		return nil
	}
	return errors.New("features must be a string")
}

// flexInt accepts a JSON number, a numeric string or null.
type flexInt int

func (f *flexInt) UnmarshalJSON(b []byte) error {
	s := strings.Trim(string(b), `"`)
	if s == "null" || s == "" {
		return nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 || n > 1000 {
		return fmt.Errorf("K must be a whole number from 0 to 1000")
	}
	*f = flexInt(n)
	return nil
}

// Replies: exactly the fields COMPAT.md allows.
type statusReply struct {
	Status  int    `json:"status"`
	Message string `json:"message"`
}

type checkKeyReply struct {
	Message string `json:"message"`
	Status  int    `json:"status"`
}

type personReply struct {
	Status      int     `json:"status"`
	Message     string  `json:"message"`
	EnrollLevel int     `json:"enroll_level"`
	PUID        string  `json:"puid"`
	GUID        string  `json:"guid"`
	Score       float64 `json:"score"`
}

type predictReply struct {
	personReply
	PIList []piEntry `json:"PI_list,omitempty"`
}

type piEntry struct {
	EnrollLevel int     `json:"enroll_level"`
	PUID        string  `json:"puid"`
	GUID        string  `json:"guid"`
	Score       float64 `json:"score"`
}

type notEnrolledReply struct {
	Status  int     `json:"status"`
	Message string  `json:"message"`
	PUID    string  `json:"puid"`
	GUID    string  `json:"guid"`
	Score   float64 `json:"score"`
}

var notEnrolled = notEnrolledReply{Status: -1, Message: "User not enrolled", PUID: "-1", GUID: "-1", Score: -1}

type syncReply struct {
	Status    int            `json:"status"`
	PUIDState map[string]int `json:"puid_state"`
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

// readVectors opens `features` and parses them into raw frames. Errors wrap
// engine.ErrInvalid with a message the caller can act on.
func (call *nodeCall) readVectors() ([][]float64, error) {
	plain := call.features
	switch {
	case call.plain && len(call.req.Features.json) > 0:
		plain = call.req.Features.json
	case call.plain:
		plain = []byte(call.req.Features.text)
	case call.enc != crypto.V3 && len(call.req.Features.json) > 0:
		return nil, fmt.Errorf("%w: features must be a hex string of ciphertext (clear JSON features are taken only by the plain routes)", engine.ErrInvalid)
	case call.enc != crypto.V3:
		if call.req.Features.text == "" {
			return nil, fmt.Errorf("%w: missing features", engine.ErrInvalid)
		}
		var err error
		if plain, err = crypto.Decrypt(call.enc, call.apiKey, call.req.Features.text); err != nil {
			return nil, fmt.Errorf("%w: features could not be decrypted with this api_key and x-encryption-version %d (%v)",
				engine.ErrInvalid, call.enc, err)
		}
	}
	if len(plain) == 0 {
		return nil, fmt.Errorf("%w: missing features", engine.ErrInvalid)
	}
	return decodeFeatures(plain)
}

// decodeFeatures parses opened features — the SDKs' single object or the
// document's list — into raw frames, in one pass. Errors wrap engine.ErrInvalid.
func decodeFeatures(plain []byte) ([][]float64, error) {
	var p featuresPayload
	if err := decodeJSON(plain, &p); err != nil {
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

// encryptID encrypts a puid/guid for the reply in the request's version
// (v3 replies are sealed whole: ids stay plain inside; the plain routes
// answer ROT13 of the id).
func (call *nodeCall) encryptID(id string) string {
	if call.plain {
		return rot13(id)
	}
	if call.enc == crypto.V3 {
		return id
	}
	s, err := crypto.Encrypt(call.enc, call.apiKey, []byte(id), time.Now())
	if err != nil {
		panic(err) // enc was parsed by crypto.ParseVersion: cannot happen
	}
	return s
}

// decryptID reads a puid sent by a client: encrypted in the request's
// version, or plain.
func (call *nodeCall) decryptID(s string) (string, bool) {
	if call.plain {
		id := rot13(s)
		return id, engine.IsID(id)
	}
	if call.enc == crypto.V3 {
		return s, engine.IsID(s)
	}
	if plain, err := crypto.Decrypt(call.enc, call.apiKey, s); err == nil && engine.IsID(string(plain)) {
		return string(plain), true
	}
	return s, engine.IsID(s)
}

// rot13 rotates ASCII letters by 13 (its own inverse): the plain routes'
// id obfuscation.
func rot13(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z':
			return 'a' + (r-'a'+13)%26
		case r >= 'A' && r <= 'Z':
			return 'A' + (r-'A'+13)%26
		}
		return r
	}, s)
}

func (call *nodeCall) person(status int, message string, p engine.Person, score float64) personReply {
	return personReply{Status: status, Message: message, EnrollLevel: p.EnrollLevel,
		PUID: call.encryptID(p.PUID), GUID: call.encryptID(p.GUID), Score: score}
}

package httpapi

import (
	"fmt"
	"strings"
	"time"

	"github.com/biomatch/biomatch/crypto"
	"github.com/biomatch/biomatch/engine"
	"github.com/biomatch/biomatch/httpapi/body"
)

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

// readVectors opens `features` and parses them into raw frames. Errors wrap
// engine.ErrInvalid with a message the caller can act on.
func (call *nodeCall) readVectors() ([][]float64, error) {
	plain := call.features
	switch {
	case call.plain && len(call.req.Features.Raw) > 0:
		plain = call.req.Features.Raw
	case call.plain:
		plain = []byte(call.req.Features.Text)
	case call.enc != crypto.V3 && len(call.req.Features.Raw) > 0:
		return nil, fmt.Errorf("%w: features must be a hex string of ciphertext (clear JSON features are taken only by the plain routes)", engine.ErrInvalid)
	case call.enc != crypto.V3:
		if call.req.Features.Text == "" {
			return nil, fmt.Errorf("%w: missing features", engine.ErrInvalid)
		}
		var err error
		if plain, err = crypto.Decrypt(call.enc, call.apiKey, call.req.Features.Text); err != nil {
			return nil, fmt.Errorf("%w: features could not be decrypted with this api_key and x-encryption-version %d (%v)",
				engine.ErrInvalid, call.enc, err)
		}
	}
	if len(plain) == 0 {
		return nil, fmt.Errorf("%w: missing features", engine.ErrInvalid)
	}
	return body.DecodeFeatures(plain)
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

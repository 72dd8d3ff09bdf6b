package body

import (
	"errors"

	"github.com/go-json-experiment/json"
)

// DecodeStrict decodes one JSON object of the native API into v, refusing
// unknown fields, trailing data and duplicate names (names match exactly).
func DecodeStrict(raw []byte, v any) error {
	if err := json.Unmarshal(raw, v, json.RejectUnknownMembers(true)); err != nil {
		return errors.New(problem(err))
	}
	return nil
}

// Session is POST /v1/sessions.
type Session struct {
	Operations     []string `json:"operations"`
	UserIdentifier string   `json:"user_identifier,omitempty"`
	MaxUses        *int     `json:"max_uses,omitempty"`    // default 10
	TTLSeconds     *int     `json:"ttl_seconds,omitempty"` // default 600
}

// Probe is POST /v1/galleries/{version}/identify and verify.
type Probe struct {
	Embedding     []float64 `json:"embedding"`
	K             int       `json:"k,omitempty"`
	Person        string    `json:"person,omitempty"` // verify: puid or user_identifier
	SecurityLevel string    `json:"security_level,omitempty"`
}

// Enroll is POST /v1/galleries/{version}/persons.
type Enroll struct {
	// Embeddings are one or more frames of one person (Embedding: one).
	Embedding      []float64   `json:"embedding,omitempty"`
	Embeddings     [][]float64 `json:"embeddings,omitempty"`
	UserIdentifier string      `json:"user_identifier,omitempty"`
}

// Webhook is POST /v1/webhooks.
type Webhook struct {
	URL    string   `json:"url"`
	Events []string `json:"events"`
}

package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/biomatch/biomatch/engine"
	"github.com/biomatch/biomatch/httpapi/body"
)

// problem is an RFC 9457 problem details object: every /v1 error.
type problem struct {
	Type     string `json:"type"`
	Title    string `json:"title"`
	Status   int    `json:"status"`
	Detail   string `json:"detail,omitempty"`
	Instance string `json:"instance,omitempty"` // the request id
}

// problemType is the URI of a kind of problem; the API reference lists them.
func problemType(code string) string { return "https://biomatch.dev/problems/" + code }

// writeProblem answers a problem+json reply and stops the chain.
func writeProblem(c *gin.Context, status int, code, detail string) {
	c.Header("Content-Type", "application/problem+json")
	doc, _ := json.Marshal(problem{Type: problemType(code), Title: http.StatusText(status), Status: status,
		Detail: detail, Instance: "urn:request:" + c.GetString(ctxRequestID)})
	c.Data(status, "application/problem+json", doc)
	c.Abort()
}

// v1Errors is the one table from engine errors to /v1 problems, first
// match answering. Engine errors say what the caller can fix and never
// carry a template.
var v1Errors = []struct {
	err    error
	status int
	code   string
}{
	{engine.ErrInvalid, http.StatusBadRequest, "invalid-input"},
	{engine.ErrRejected, http.StatusUnprocessableEntity, "enrollment-rejected"},
	{engine.ErrNotFound, http.StatusNotFound, "not-found"},
	{engine.ErrConflict, http.StatusConflict, "conflict"},
	{engine.ErrForbidden, http.StatusForbidden, "forbidden"},
	{engine.ErrUnavailable, http.StatusServiceUnavailable, "unavailable"},
	{context.DeadlineExceeded, http.StatusServiceUnavailable, "unavailable"},
	{context.Canceled, 499, "canceled"},
}

// v1Error answers err through v1Errors; anything else is a 500 that says
// nothing internal (logged once, with the request id, by logRequests).
func v1Error(c *gin.Context, err error) {
	for _, row := range v1Errors {
		if errors.Is(err, row.err) {
			if row.status == http.StatusServiceUnavailable {
				c.Header("Retry-After", "5")
			}
			writeProblem(c, row.status, row.code, err.Error())
			return
		}
	}
	_ = c.Error(err)
	writeProblem(c, http.StatusInternalServerError, "internal", "internal error; quote the request id ("+c.GetString(ctxRequestID)+") to the operator")
}

// bindJSON decodes the body into v: one JSON object, no unknown field.
// On failure it has answered 400 (or 413) and returns false.
func bindJSON(c *gin.Context, v any) bool {
	raw, err := readBody(c)
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeProblem(c, http.StatusRequestEntityTooLarge, "too-large", fmt.Sprintf("request body too large: the limit is %d bytes", tooBig.Limit))
		} else {
			writeProblem(c, http.StatusBadRequest, "invalid-input", "could not read the request body")
		}
		return false
	}
	if err := body.DecodeStrict(raw, v); err != nil {
		writeProblem(c, http.StatusBadRequest, "invalid-input", err.Error())
		return false
	}
	return true
}

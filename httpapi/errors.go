package httpapi

import (
	"context"
	"errors"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/biomatch/biomatch/engine"
)

// nodeErrors is the one table from engine errors to an HTTP status and a
// CryptoNets reply: the first row whose error matches answers. message ""
// passes the error's own text (engine errors say what the caller can fix;
// they never carry a template).
var nodeErrors = []struct {
	err        error
	httpStatus int
	status     int // CryptoNets status
	message    string
	retryAfter string
}{
	{engine.ErrInvalid, http.StatusBadRequest, -2, "", ""},
	{engine.ErrRejected, http.StatusBadRequest, 152, "", ""},
	{engine.ErrConflict, http.StatusConflict, -2, "", ""},
	{engine.ErrForbidden, http.StatusForbidden, -1, "", ""},
	{engine.ErrUnavailable, http.StatusServiceUnavailable, -1, "service temporarily unavailable (its database or queue cannot be reached): retry in a few seconds", "5"},
	{context.DeadlineExceeded, http.StatusServiceUnavailable, -1, "service temporarily unavailable (its database or queue cannot be reached): retry in a few seconds", "5"},
	{context.Canceled, 499, -1, "request canceled", ""},
}

// nodeError answers err in CryptoNets' terms through nodeErrors. Anything
// else is a 500 that says nothing internal: the error is recorded on the
// context and logged once, with the request id, by logRequests.
func nodeError(c *gin.Context, err error) {
	for _, row := range nodeErrors {
		if !errors.Is(err, row.err) {
			continue
		}
		msg := row.message
		if msg == "" {
			msg = err.Error()
		}
		if row.retryAfter != "" {
			c.Header("Retry-After", row.retryAfter)
		}
		c.JSON(row.httpStatus, statusReply{row.status, msg})
		return
	}
	_ = c.Error(err) // logged by logRequests
	c.JSON(http.StatusInternalServerError, statusReply{-1, "internal error (request " + c.GetString(ctxRequestID) + ")"})
}

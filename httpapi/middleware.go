package httpapi

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/biomatch/biomatch/engine"
	"github.com/biomatch/biomatch/metrics"
)

// Response headers that carry what a /node body may not.
const (
	headerRequestID     = "x-request-id"
	headerCorrelationID = "x-correlation-id"
	headerEnrollRequest = "x-enroll-request-id"
)

// Context keys set by handlers for the request log.
const (
	ctxRequestID = "request_id"
	ctxKeyPrefix = "key_prefix"
	ctxTenant    = "tenant"
	ctxSealer    = "v3_sealer" // func(status int, body []byte) (string, error)
	ctxArrived   = "arrived"   // time.Time: when the request reached the router
)

// requestID accepts x-correlation-id (or requestID) from the caller, else
// makes one, and echoes it in the response headers.
func requestID() gin.HandlerFunc {
	return func(c *gin.Context) {
		id := c.GetHeader(headerCorrelationID)
		if id == "" {
			id = c.GetHeader("requestID")
		}
		if id == "" || len(id) > 128 {
			id = rand.Text()
		}
		c.Set(ctxRequestID, id)
		c.Header(headerRequestID, id)
		c.Header(headerCorrelationID, id)
		c.Next()
	}
}

// recovery turns a panic into a 500 that says nothing internal, logged once.
func recovery(log *slog.Logger) gin.HandlerFunc {
	return func(c *gin.Context) {
		defer func() {
			if p := recover(); p != nil {
				if err, ok := p.(error); ok && errors.Is(err, http.ErrAbortHandler) {
					panic(p)
				}
				log.ErrorContext(c.Request.Context(), "panic", "request_id", c.GetString(ctxRequestID), "panic", p)
				c.AbortWithStatusJSON(http.StatusInternalServerError, statusReply{Status: -1, Message: "internal error"})
			}
		}()
		c.Next()
	}
}

// logRequests writes one line per request, and observes its latency when
// m is not nil. It never logs bodies.
func logRequests(log *slog.Logger, m *metrics.Metrics) gin.HandlerFunc {
	return func(c *gin.Context) {
		start := time.Now()
		c.Set(ctxArrived, start)
		c.Next()
		route := c.FullPath()
		if route == "" {
			route = "unmatched"
		}
		if m != nil {
			m.HTTPDuration.WithLabelValues(route, c.Request.Method, strconv.Itoa(c.Writer.Status())).Observe(time.Since(start).Seconds())
		}
		attrs := []slog.Attr{
			slog.String("request_id", c.GetString(ctxRequestID)),
			slog.String("method", c.Request.Method),
			slog.String("route", route),
			slog.Int("status", c.Writer.Status()),
			slog.Float64("latency_ms", float64(time.Since(start).Microseconds())/1000),
			slog.String("key_prefix", c.GetString(ctxKeyPrefix)),
			slog.String("tenant", c.GetString(ctxTenant)),
		}
		if v, ok := c.Get(ctxDecision); ok {
			attrs = append(attrs, decisionAttr(v.(engine.Decision)))
		}
		level := slog.LevelInfo
		// Internal errors were recorded with c.Error by the error table: this
		// is the one place they are logged, with the request id.
		if err := c.Errors.Last(); err != nil {
			attrs = append(attrs, slog.String("err", err.Error()))
			level = slog.LevelError
		}
		log.LogAttrs(c.Request.Context(), level, "request", attrs...)
	}
}

// limitBody caps request bodies; reading past the cap fails with
// *http.MaxBytesError, which handlers answer with 413.
func limitBody(n int64) gin.HandlerFunc {
	return func(c *gin.Context) {
		if n > 0 && c.Request.Body != nil {
			c.Request.Body = http.MaxBytesReader(c.Writer, c.Request.Body, n)
		}
		c.Next()
	}
}

// sealReplies seals every reply to an authenticated v3 request as
// {"sealed": …}, bound to the request's nonce and the status. Replies
// before authentication (bad headers, unknown key) stay plain: they carry
// nothing about a person.
func sealReplies(log *slog.Logger) gin.HandlerFunc {
	return func(c *gin.Context) {
		if c.GetHeader("x-encryption-version") != "3" {
			c.Next()
			return
		}
		buf := &bufferedWriter{ResponseWriter: c.Writer, status: http.StatusOK}
		c.Writer = buf
		// Restored on every path: after a panic, recovery's 500 must reach
		// the client, not this buffer.
		defer func() { c.Writer = buf.ResponseWriter }()
		c.Next()
		c.Writer = buf.ResponseWriter
		body := buf.body.Bytes()
		if v, ok := c.Get(ctxSealer); ok {
			env, err := v.(func(int, []byte) (string, error))(buf.status, body)
			if err != nil {
				log.ErrorContext(c.Request.Context(), "seal v3 reply", "request_id", c.GetString(ctxRequestID), "err", err)
				buf.status, body = http.StatusInternalServerError, []byte(`{"status":-1,"message":"internal error"}`)
			} else {
				body, _ = json.Marshal(map[string]string{"sealed": env})
			}
		}
		c.Writer.Header().Set("Content-Type", "application/json; charset=utf-8")
		c.Writer.WriteHeader(buf.status)
		c.Writer.Write(body)
	}
}

// bufferedWriter holds a reply until sealReplies has sealed it.
type bufferedWriter struct {
	gin.ResponseWriter
	status int
	body   bytes.Buffer
}

func (w *bufferedWriter) WriteHeader(code int)              { w.status = code }
func (w *bufferedWriter) WriteHeaderNow()                   {}
func (w *bufferedWriter) Write(b []byte) (int, error)       { return w.body.Write(b) }
func (w *bufferedWriter) WriteString(s string) (int, error) { return w.body.WriteString(s) }
func (w *bufferedWriter) Status() int                       { return w.status }
func (w *bufferedWriter) Written() bool                     { return w.body.Len() > 0 }
func (w *bufferedWriter) Size() int                         { return w.body.Len() }

const ctxBody = "request_body" // bodyRead

// preallocMax bounds the buffer readBody sets aside before reading.
const preallocMax = 1 << 20

// bodyRead is what readBody read, kept for the handlers after.
type bodyRead struct {
	body []byte
	err  error
}

// readBody reads the request body once per request, into one buffer sized
// by Content-Length when that is given and at most preallocMax (io.ReadAll
// would grow it through a dozen copies for a 13 KB predict; a claimed
// length is not trusted further), and keeps it and the read's error (a
// body past limitBody's cap: *http.MaxBytesError) for later callers.
func readBody(c *gin.Context) ([]byte, error) {
	if v, ok := c.Get(ctxBody); ok {
		r := v.(bodyRead)
		return r.body, r.err
	}
	var r bodyRead
	if c.Request.Body != nil {
		var buf bytes.Buffer
		if n := c.Request.ContentLength; n > 0 && n < preallocMax {
			buf.Grow(int(n) + bytes.MinRead) // ReadFrom keeps MinRead free: no second buffer
		}
		_, r.err = buf.ReadFrom(c.Request.Body)
		r.body = buf.Bytes()
	}
	c.Set(ctxBody, r)
	return r.body, r.err
}

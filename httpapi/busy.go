package httpapi

import (
	"fmt"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"
)

// searchTurns bounds the searches (identify, verify) a process serves at
// once. A search that finds every turn taken waits for one at most wait,
// in arrival order, and is then refused: 503 with Retry-After, before its
// body is decoded or decrypted. Past what the machine can scan, more
// searches at once only make every answer later, until all of them come
// after the clients' patience (5 s) and the work is wasted; refused early,
// the searches let in stay inside it. The body is read (readBody, where
// the handlers behind find it) before the turn is taken: a client sending
// it slowly holds no turn. nil: no bound.
type searchTurns struct {
	turns chan struct{}
	wait  time.Duration
}

// newSearchTurns returns the bound of n searches at once, each waiting at
// most wait for its turn; n <= 0: nil, no bound.
func newSearchTurns(n int, wait time.Duration) *searchTurns {
	if n <= 0 {
		return nil
	}
	return &searchTurns{turns: make(chan struct{}, n), wait: wait}
}

// busyMessage tells a refused caller what happened and when to come back.
func busyMessage(wait time.Duration) string {
	return fmt.Sprintf("server busy: too many searches at once (waited %s for a turn); retry in a second", wait)
}

// node is the bound for /node routes: a refusal is a CryptoNets reply.
func (s *searchTurns) node() gin.HandlerFunc {
	return s.handler(func(c *gin.Context) {
		c.Header("Retry-After", "1")
		c.AbortWithStatusJSON(http.StatusServiceUnavailable, statusReply{-1, busyMessage(s.wait)})
	})
}

// v1 is the bound for /v1 routes: a refusal is a problem.
func (s *searchTurns) v1() gin.HandlerFunc {
	return s.handler(func(c *gin.Context) {
		c.Header("Retry-After", "1")
		writeProblem(c, http.StatusServiceUnavailable, "busy", busyMessage(s.wait))
	})
}

func (s *searchTurns) handler(refuse func(*gin.Context)) gin.HandlerFunc {
	if s == nil {
		return func(c *gin.Context) { c.Next() }
	}
	return func(c *gin.Context) {
		// The handler reads what was read, and answers its error (a body
		// over the limit is still answered 413 there).
		_, _ = readBody(c)
		timer := time.NewTimer(s.wait)
		select {
		case s.turns <- struct{}{}:
			timer.Stop()
		case <-timer.C:
			refuse(c)
			return
		case <-c.Request.Context().Done():
			timer.Stop()
			c.AbortWithStatus(499) // the client is gone: nobody reads a reply
			return
		}
		defer func() { <-s.turns }()
		c.Next()
	}
}

package httpapi

import (
	"crypto/subtle"
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"
)

// AdminPath is where the queue dashboard (asynqmon) is mounted.
const AdminPath = "/admin/queues"

// requireAdmin lets a request through with the admin token, as a bearer
// token or as the password of HTTP basic auth (any user name), so a
// browser can open the dashboard. The token is not an API key.
func requireAdmin(token string) gin.HandlerFunc {
	return func(c *gin.Context) {
		got, ok := "", false
		if h := c.GetHeader("Authorization"); strings.HasPrefix(h, "Bearer ") {
			got, ok = strings.TrimPrefix(h, "Bearer "), true
		} else if _, pw, basic := c.Request.BasicAuth(); basic {
			got, ok = pw, true
		}
		if !ok || subtle.ConstantTimeCompare([]byte(got), []byte(token)) != 1 {
			c.Header("WWW-Authenticate", `Basic realm="biomatch admin"`)
			c.AbortWithStatusJSON(http.StatusUnauthorized, gin.H{"status": -1, "message": "admin token required"})
			return
		}
		c.Next()
	}
}

package httpapi

import (
	_ "embed"
	"net/http"

	"github.com/gin-gonic/gin"
	"github.com/swaggest/swgui/v5emb"
)

// OpenAPI is the OpenAPI 3.1 document of the whole HTTP surface, served at
// /openapi.yaml. Tests validate real responses of every route against it.
//
//go:embed openapi.yaml
var OpenAPI []byte

// addDocs serves the document and a browsable page (Swagger UI, its assets
// embedded in the binary: no CDN).
func addDocs(r *gin.Engine) {
	r.GET("/openapi.yaml", func(c *gin.Context) { c.Data(http.StatusOK, "application/yaml", OpenAPI) })
	ui := v5emb.New("biomatch API", "/openapi.yaml", "/docs/")
	r.GET("/docs", func(c *gin.Context) { c.Redirect(http.StatusMovedPermanently, "/docs/") })
	r.GET("/docs/*asset", gin.WrapH(ui))
}

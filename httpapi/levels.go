package httpapi

import (
	"fmt"
	"log/slog"
	"strconv"

	"github.com/gin-gonic/gin"

	"github.com/biomatch/biomatch/engine"
)

// How a match decision was taken travels in response headers (the /node
// replies' fields are fixed by COMPAT.md) and in the request's log line.
const (
	// headerSecurityLevel: in a request, the level the caller asks for (no
	// laxer than its key's); in a reply, the level that decided.
	headerSecurityLevel    = "x-security-level"
	headerThreshold        = "x-match-threshold"   // the cosine the best score had to reach
	headerFMR              = "x-fmr"               // false match rate per comparison at the best score
	headerFPIR             = "x-fpir"              // that rate over the whole search: 1 − (1 − FMR)^N
	headerGalleryTemplates = "x-gallery-templates" // N: templates the probe was compared with
	headerClamped          = "x-match-threshold-clamped"

	ctxDecision = "decision" // engine.Decision
)

// matchLevel is the security level a caller with key decides at: the one
// it asks for (x-security-level on /node, security_level on /v1), else its
// key's ("": the server's for the version). A level laxer than the key's
// is ErrForbidden; an unknown one, ErrInvalid.
func matchLevel(svc *engine.Service, key engine.Key, asked string) (string, error) {
	if err := svc.CheckLevel(key.SecurityLevel); err != nil {
		return "", fmt.Errorf("this API key's level is not in the server's calibration (ask its operator): %w", err)
	}
	if err := svc.LevelAllowed(key.SecurityLevel, asked); err != nil {
		return "", err
	}
	if asked != "" {
		return asked, nil
	}
	return key.SecurityLevel, nil
}

// reportDecision writes d's headers and keeps it for the log line.
func reportDecision(c *gin.Context, d engine.Decision) {
	if d.Level != "" {
		c.Header(headerSecurityLevel, d.Level)
	}
	c.Header(headerThreshold, strconv.FormatFloat(d.Threshold, 'f', 4, 64))
	c.Header(headerGalleryTemplates, strconv.Itoa(d.Compared))
	if d.Clamped {
		c.Header(headerClamped, "true")
	}
	if d.Scored && d.Level != "" {
		c.Header(headerFMR, strconv.FormatFloat(d.FMR, 'g', 3, 64))
		c.Header(headerFPIR, strconv.FormatFloat(d.FPIR, 'g', 3, 64))
	}
	c.Set(ctxDecision, d)
}

func decisionAttr(d engine.Decision) slog.Attr {
	attrs := []any{slog.String("level", d.Level), slog.Float64("threshold", d.Threshold), slog.Int("compared", d.Compared)}
	if d.Scored {
		attrs = append(attrs, slog.Float64("best_score", engine.RoundScore(d.Score)))
		if d.Level != "" {
			attrs = append(attrs, slog.Float64("fmr", d.FMR), slog.Float64("fpir", d.FPIR))
		}
	}
	if d.Clamped {
		attrs = append(attrs, slog.Bool("clamped", true))
	}
	return slog.Group("decision", attrs...)
}

package httpapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/biomatch/biomatch/engine"
	"github.com/biomatch/biomatch/httpapi/body"
	"github.com/biomatch/biomatch/webhook"
)

// Webhooks stores a tenant's webhook endpoints and their deliveries
// (postgres.Webhooks). Another tenant's endpoint is ErrNotFound.
type Webhooks interface {
	Create(ctx context.Context, tenant, url string, events []string) (webhook.Endpoint, error)
	List(ctx context.Context, tenant string) ([]webhook.Endpoint, error)
	Delete(ctx context.Context, tenant, id string) error
	Deliveries(ctx context.Context, tenant, id string, limit int) ([]webhook.Record, error)
}

// maxWebhooks is how many endpoints one tenant may register.
const maxWebhooks = 20

type endpointJSON struct {
	ID        string    `json:"id"`
	URL       string    `json:"url"`
	Events    []string  `json:"events"`
	Secret    string    `json:"secret,omitempty"` // at registration only
	CreatedAt time.Time `json:"created_at"`
}

type attemptJSON struct {
	Attempt    int       `json:"attempt"`
	At         time.Time `json:"at"`
	Status     int       `json:"status,omitempty"`
	Error      string    `json:"error,omitempty"`
	DurationMS int64     `json:"duration_ms"`
}

type deliveryJSON struct {
	ID          string        `json:"id"`
	Event       string        `json:"event"`
	State       string        `json:"state"`
	Attempts    []attemptJSON `json:"attempts"`
	CreatedAt   time.Time     `json:"created_at"`
	DeliveredAt *time.Time    `json:"delivered_at,omitempty"`
}

func addWebhooks(r *gin.RouterGroup, hooks Webhooks, policy webhook.Policy) {
	r.POST("", func(c *gin.Context) {
		var req body.Webhook
		if !bindJSON(c, &req) {
			return
		}
		if len(req.Events) == 0 {
			v1Error(c, fmt.Errorf("%w: events: name at least one of %v", engine.ErrInvalid, webhook.Events))
			return
		}
		for _, e := range req.Events {
			if !slices.Contains(webhook.Events, e) {
				v1Error(c, fmt.Errorf("%w: events: %q is not one of %v", engine.ErrInvalid, e, webhook.Events))
				return
			}
		}
		if err := policy.CheckURL(c.Request.Context(), req.URL); err != nil {
			v1Error(c, fmt.Errorf("%w: url: %w", engine.ErrInvalid, err))
			return
		}
		tenant := v1KeyFrom(c).CustomerID
		existing, err := hooks.List(c.Request.Context(), tenant)
		if err != nil {
			v1Error(c, err)
			return
		}
		if len(existing) >= maxWebhooks {
			v1Error(c, fmt.Errorf("%w: this tenant has %d webhooks, the most allowed: delete one first", engine.ErrConflict, maxWebhooks))
			return
		}
		e, err := hooks.Create(c.Request.Context(), tenant, req.URL, slices.Compact(slices.Sorted(slices.Values(req.Events))))
		if err != nil {
			v1Error(c, err)
			return
		}
		c.JSON(http.StatusCreated, endpointJSON{e.ID, e.URL, e.Events, e.Secret, e.CreatedAt.UTC()})
	})
	r.GET("", func(c *gin.Context) {
		es, err := hooks.List(c.Request.Context(), v1KeyFrom(c).CustomerID)
		if err != nil {
			v1Error(c, err)
			return
		}
		out := make([]endpointJSON, 0, len(es))
		for _, e := range es {
			out = append(out, endpointJSON{ID: e.ID, URL: e.URL, Events: e.Events, CreatedAt: e.CreatedAt.UTC()})
		}
		c.JSON(http.StatusOK, gin.H{"webhooks": out})
	})
	r.DELETE("/:id", func(c *gin.Context) {
		if err := hooks.Delete(c.Request.Context(), v1KeyFrom(c).CustomerID, c.Param("id")); err != nil {
			v1Error(c, notFoundAs(err, "webhook"))
			return
		}
		c.Status(http.StatusNoContent)
	})
	r.GET("/:id/deliveries", func(c *gin.Context) {
		limit := 50
		if s := c.Query("limit"); s != "" {
			n, err := strconv.Atoi(s)
			if err != nil || n < 1 || n > 500 {
				v1Error(c, fmt.Errorf("%w: limit: want 1 to 500", engine.ErrInvalid))
				return
			}
			limit = n
		}
		rs, err := hooks.Deliveries(c.Request.Context(), v1KeyFrom(c).CustomerID, c.Param("id"), limit)
		if err != nil {
			v1Error(c, notFoundAs(err, "webhook"))
			return
		}
		out := make([]deliveryJSON, 0, len(rs))
		for _, r := range rs {
			d := deliveryJSON{ID: r.ID, Event: r.Event, State: r.State, Attempts: []attemptJSON{}, CreatedAt: r.CreatedAt.UTC(), DeliveredAt: r.DeliveredAt}
			for _, a := range r.Attempts {
				d.Attempts = append(d.Attempts, attemptJSON{a.N, a.At.UTC(), a.Status, a.Error, a.Duration.Milliseconds()})
			}
			out = append(out, d)
		}
		c.JSON(http.StatusOK, gin.H{"deliveries": out})
	})
}

// notFoundAs names what was not found.
func notFoundAs(err error, what string) error {
	if errors.Is(err, engine.ErrNotFound) {
		return fmt.Errorf("%w: no such %s for this tenant", engine.ErrNotFound, what)
	}
	return err
}

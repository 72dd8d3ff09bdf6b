package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/biomatch/biomatch/engine"
	"github.com/biomatch/biomatch/webhook"
)

// Webhooks stores webhook endpoints and their delivery outbox.
type Webhooks struct{ pool *pgxpool.Pool }

// NewWebhooks returns the webhook store on pool.
func NewWebhooks(pool *pgxpool.Pool) *Webhooks { return &Webhooks{pool: pool} }

// Create registers an endpoint for a tenant and returns it with its secret.
func (w *Webhooks) Create(ctx context.Context, tenant, url string, events []string) (webhook.Endpoint, error) {
	e := webhook.Endpoint{ID: uuid.NewString(), Tenant: tenant, URL: url, Events: events, Secret: webhook.NewSecret()}
	err := w.pool.QueryRow(ctx, `INSERT INTO webhooks (id, tenant, url, events, secret) VALUES ($1, $2, $3, $4, $5) RETURNING created_at`,
		e.ID, tenant, url, events, e.Secret).Scan(&e.CreatedAt)
	return e, Translate(err)
}

// List returns the tenant's endpoints, without their secrets.
func (w *Webhooks) List(ctx context.Context, tenant string) ([]webhook.Endpoint, error) {
	rows, err := w.pool.Query(ctx, `SELECT id::text, tenant, url, events, created_at FROM webhooks WHERE tenant = $1 ORDER BY created_at`, tenant)
	if err != nil {
		return nil, Translate(err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (webhook.Endpoint, error) {
		var e webhook.Endpoint
		return e, row.Scan(&e.ID, &e.Tenant, &e.URL, &e.Events, &e.CreatedAt)
	})
	return out, Translate(err)
}

// Delete removes the tenant's endpoint and its deliveries (ErrNotFound).
func (w *Webhooks) Delete(ctx context.Context, tenant, id string) error {
	if uuid.Validate(id) != nil {
		return engine.ErrNotFound
	}
	tag, err := w.pool.Exec(ctx, `DELETE FROM webhooks WHERE tenant = $1 AND id = $2`, tenant, id)
	if err != nil {
		return Translate(err)
	}
	if tag.RowsAffected() == 0 {
		return engine.ErrNotFound
	}
	return nil
}

// Deliveries returns the newest deliveries of the tenant's endpoint with
// their attempts (ErrNotFound for another tenant's endpoint).
func (w *Webhooks) Deliveries(ctx context.Context, tenant, id string, limit int) ([]webhook.Record, error) {
	if uuid.Validate(id) != nil {
		return nil, engine.ErrNotFound
	}
	var one int
	if err := w.pool.QueryRow(ctx, `SELECT 1 FROM webhooks WHERE tenant = $1 AND id = $2`, tenant, id).Scan(&one); err != nil {
		return nil, Translate(err)
	}
	rows, err := w.pool.Query(ctx, `SELECT d.id::text, d.event, d.state, d.created_at, d.delivered_at,
			coalesce(jsonb_agg(jsonb_build_object('n', a.attempt, 'at', a.at, 'status', a.status, 'error', a.error, 'ms', a.duration_ms)
				ORDER BY a.attempt) FILTER (WHERE a.attempt IS NOT NULL), '[]')
		FROM webhook_deliveries d LEFT JOIN webhook_attempts a ON a.tenant = d.tenant AND a.delivery_id = d.id
		WHERE d.tenant = $1 AND d.webhook_id = $2 GROUP BY d.tenant, d.id ORDER BY d.created_at DESC LIMIT $3`, tenant, id, limit)
	if err != nil {
		return nil, Translate(err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (webhook.Record, error) {
		var r webhook.Record
		var attempts []byte
		if err := row.Scan(&r.ID, &r.Event, &r.State, &r.CreatedAt, &r.DeliveredAt, &attempts); err != nil {
			return r, err
		}
		var as []struct {
			N      int       `json:"n"`
			At     time.Time `json:"at"`
			Status int       `json:"status"`
			Error  string    `json:"error"`
			MS     int       `json:"ms"`
		}
		if err := json.Unmarshal(attempts, &as); err != nil {
			return r, err
		}
		for _, a := range as {
			r.Attempts = append(r.Attempts, webhook.Attempt{N: a.N, At: a.At, Status: a.Status, Error: a.Error, Duration: time.Duration(a.MS) * time.Millisecond})
		}
		return r, nil
	})
	return out, Translate(err)
}

// Undispatched returns deliveries not yet handed to the queue, oldest first.
func (w *Webhooks) Undispatched(ctx context.Context, limit int) ([]string, error) {
	rows, err := w.pool.Query(ctx, `SELECT id::text FROM webhook_deliveries WHERE NOT dispatched ORDER BY created_at LIMIT $1`, limit)
	if err != nil {
		return nil, Translate(err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	return ids, Translate(err)
}

// MarkDispatched records that the queue holds these deliveries.
func (w *Webhooks) MarkDispatched(ctx context.Context, ids []string) error {
	_, err := w.pool.Exec(ctx, `UPDATE webhook_deliveries SET dispatched = true WHERE id = ANY($1::uuid[])`, ids)
	return Translate(err)
}

// Load returns a pending delivery, ready to send (its body: the event
// envelope). A delivery that is no longer pending returns ok = false.
func (w *Webhooks) Load(ctx context.Context, id string) (d webhook.Delivery, attempts int, ok bool, err error) {
	var state string
	var payload []byte
	var created time.Time
	err = w.pool.QueryRow(ctx, `SELECT d.event, d.state, d.attempts, d.payload, d.created_at, w.url, w.secret
		FROM webhook_deliveries d JOIN webhooks w ON w.tenant = d.tenant AND w.id = d.webhook_id WHERE d.id = $1`, id).
		Scan(&d.Event, &state, &attempts, &payload, &created, &d.URL, &d.Secret)
	if errors.Is(err, pgx.ErrNoRows) {
		return d, 0, false, nil // its endpoint was deleted
	}
	if err != nil {
		return d, 0, false, Translate(err)
	}
	d.ID = id
	d.Body, err = json.Marshal(map[string]any{"id": id, "type": d.Event, "created_at": created.UTC(), "data": json.RawMessage(payload)})
	return d, attempts, state == "pending", err
}

// RecordAttempt stores one try and the delivery's state after it:
// delivered, failed (no retry left) or still pending.
func (w *Webhooks) RecordAttempt(ctx context.Context, id string, status int, sendErr error, took time.Duration, final bool) error {
	state, errText := "pending", ""
	switch {
	case sendErr == nil:
		state = "delivered"
	case final:
		state, errText = "failed", sendErr.Error()
	default:
		errText = sendErr.Error()
	}
	return Translate(pgx.BeginFunc(ctx, w.pool, func(tx pgx.Tx) error {
		var n int
		var tenant string
		if err := tx.QueryRow(ctx, `UPDATE webhook_deliveries SET attempts = attempts + 1, last_status = $2, last_error = $3, state = $4,
			delivered_at = CASE WHEN $4 = 'delivered' THEN now() END WHERE id = $1 RETURNING attempts, tenant`, id, status, errText, state).Scan(&n, &tenant); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `INSERT INTO webhook_attempts (tenant, delivery_id, attempt, status, error, duration_ms) VALUES ($1, $2, $3, $4, $5, $6)`,
			tenant, id, n, status, errText, took.Milliseconds())
		return err
	}))
}

// enqueueEnrollEvents writes, in the transaction that finishes them, one
// delivery per subscribed endpoint for each finished enroll request.
func enqueueEnrollEvents(ctx context.Context, tx pgx.Tx, ids []string) error {
	_, err := tx.Exec(ctx, `INSERT INTO webhook_deliveries (id, tenant, webhook_id, event, payload)
		SELECT gen_random_uuid(), w.tenant, w.id, e.event, jsonb_build_object('enrollment', jsonb_strip_nulls(jsonb_build_object(
			'id', r.id, 'gallery', r.version, 'state', r.state, 'outcome', r.outcome, 'reason', nullif(r.reason, ''),
			'score', CASE WHEN r.state = 'done' THEN round(r.score::numeric, 4) END,
			'person', CASE WHEN p.id IS NOT NULL THEN jsonb_strip_nulls(jsonb_build_object('puid', p.puid, 'guid', p.guid,
				'user_identifier', nullif(p.external_id, ''), 'gallery', p.version, 'enroll_level', p.enroll_level)) END)))
		FROM enroll_requests r
		LEFT JOIN persons p ON p.tenant = r.tenant AND p.id = r.person_id
		CROSS JOIN LATERAL (SELECT CASE WHEN r.state = 'done' THEN 'enrollment.completed' ELSE 'enrollment.failed' END AS event) e
		JOIN webhooks w ON w.tenant = r.tenant AND e.event = ANY(w.events)
		WHERE r.id = ANY($1) AND r.state <> 'pending'`, ids)
	if err != nil {
		return fmt.Errorf("webhook outbox: %w", err)
	}
	return nil
}

// enqueuePersonDeleted writes the person.deleted deliveries of a delete.
func enqueuePersonDeleted(ctx context.Context, tx pgx.Tx, p engine.Person) error {
	_, err := tx.Exec(ctx, `INSERT INTO webhook_deliveries (id, tenant, webhook_id, event, payload)
		SELECT gen_random_uuid(), w.tenant, w.id, 'person.deleted', jsonb_build_object('person', jsonb_strip_nulls(jsonb_build_object(
			'puid', $2::text, 'guid', $3::text, 'user_identifier', nullif($4::text, ''), 'gallery', $5::text)))
		FROM webhooks w WHERE w.tenant = $1 AND 'person.deleted' = ANY(w.events)`,
		p.Gallery.Tenant, p.PUID, p.GUID, p.ExternalID, p.Gallery.Version)
	if err != nil {
		return fmt.Errorf("webhook outbox: %w", err)
	}
	return nil
}

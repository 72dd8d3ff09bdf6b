package queue

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/hibiken/asynq"

	"github.com/biomatch/biomatch/webhook"
)

// TypeWebhook is the task type of a webhook delivery.
const TypeWebhook = "webhook"

// WebhookMaxRetry is how many times a delivery is retried after its first
// try, with exponential backoff (WorkerConfig.WebhookRetryBase · 2ⁿ, at most
// an hour apart), before it is marked failed.
const WebhookMaxRetry = 8

// Outbox is the webhook delivery outbox (postgres.Webhooks).
type Outbox interface {
	Undispatched(ctx context.Context, limit int) ([]string, error)
	MarkDispatched(ctx context.Context, ids []string) error
	Load(ctx context.Context, id string) (d webhook.Delivery, attempts int, pending bool, err error)
	RecordAttempt(ctx context.Context, id string, status int, sendErr error, took time.Duration, final bool) error
}

type webhookPayload struct {
	DeliveryID string `json:"delivery_id"`
}

// NewWebhookTask returns the task of one delivery; its TaskID is the id.
func NewWebhookTask(id, queueName string) *asynq.Task {
	payload, _ := json.Marshal(webhookPayload{DeliveryID: id})
	return asynq.NewTask(TypeWebhook, payload, asynq.TaskID("webhook:"+id), asynq.MaxRetry(WebhookMaxRetry),
		asynq.Timeout(30*time.Second), asynq.Retention(WebhookRetention), asynq.Queue(queueName))
}

// webhookDelay is the backoff before retry n (1, 2, …) of a delivery.
func webhookDelay(base time.Duration, n int) time.Duration {
	return min(time.Duration(float64(base)*math.Pow(2, float64(n-1))), time.Hour)
}

// dispatchWebhooks hands the outbox's new deliveries to the queue. A
// delivery enqueued twice (two workers, or a crash before MarkDispatched)
// is refused by its task id while that task lives; after, the receiver
// dedupes by the Biomatch-Delivery id.
func (w *Worker) dispatchWebhooks(ctx context.Context) {
	ids, err := w.outbox.Undispatched(ctx, 200)
	if err != nil || len(ids) == 0 {
		if err != nil {
			w.log.WarnContext(ctx, "webhook outbox", "err", err)
		}
		return
	}
	var done []string
	for _, id := range ids {
		_, err := w.client.EnqueueContext(ctx, NewWebhookTask(id, Shards(w.cfg.Queue, w.cfg.Shards)[0]))
		if err != nil && !errors.Is(err, asynq.ErrTaskIDConflict) {
			w.log.WarnContext(ctx, "enqueue webhook delivery", "delivery", id, "err", err)
			continue
		}
		done = append(done, id)
	}
	if err := w.outbox.MarkDispatched(ctx, done); err != nil {
		w.log.WarnContext(ctx, "mark webhook deliveries dispatched", "err", err)
	}
}

func (w *Worker) handleWebhook(ctx context.Context, t *asynq.Task) error {
	var p webhookPayload
	if err := json.Unmarshal(t.Payload(), &p); err != nil || p.DeliveryID == "" {
		return fmt.Errorf("bad webhook payload: %w", asynq.SkipRetry)
	}
	d, _, pending, err := w.outbox.Load(ctx, p.DeliveryID)
	if err != nil {
		return err
	}
	if !pending {
		return nil // delivered, failed, or its endpoint deleted
	}
	start := time.Now()
	status, sendErr := webhook.Send(ctx, w.webhookClient, d, start)
	retried, _ := asynq.GetRetryCount(ctx)
	maxRetry, _ := asynq.GetMaxRetry(ctx)
	final := sendErr != nil && retried >= maxRetry
	if err := w.outbox.RecordAttempt(ctx, d.ID, status, sendErr, time.Since(start), final); err != nil {
		return err
	}
	if sendErr != nil {
		w.log.InfoContext(ctx, "webhook delivery failed", "delivery", d.ID, "event", d.Event, "status", status, "retried", retried, "final", final, "err", sendErr)
		if final {
			return fmt.Errorf("webhook delivery %s: %w: %w", d.ID, sendErr, asynq.SkipRetry)
		}
		return fmt.Errorf("webhook delivery %s: %w", d.ID, sendErr)
	}
	return nil
}

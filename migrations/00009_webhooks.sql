-- +goose Up
-- Webhooks: a tenant's endpoints and the events they want. Deliveries are
-- an outbox: written in the transaction that makes the event (an enroll's
-- result, a delete), then handed to the queue by the worker. A delivery
-- never holds a template.
CREATE TABLE webhooks (
    id         uuid PRIMARY KEY,
    tenant     text NOT NULL,
    url        text NOT NULL,
    events     text[] NOT NULL,
    secret     text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX webhooks_tenant ON webhooks (tenant);

CREATE TABLE webhook_deliveries (
    id           uuid PRIMARY KEY,
    webhook_id   uuid NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    event        text NOT NULL,
    payload      jsonb NOT NULL,
    state        text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'delivered', 'failed')),
    dispatched   boolean NOT NULL DEFAULT false,
    attempts     int NOT NULL DEFAULT 0,
    last_status  int NOT NULL DEFAULT 0,
    last_error   text NOT NULL DEFAULT '',
    created_at   timestamptz NOT NULL DEFAULT now(),
    delivered_at timestamptz
);
CREATE INDEX webhook_deliveries_undispatched ON webhook_deliveries (created_at) WHERE NOT dispatched;
CREATE INDEX webhook_deliveries_webhook ON webhook_deliveries (webhook_id, created_at);

CREATE TABLE webhook_attempts (
    delivery_id uuid NOT NULL REFERENCES webhook_deliveries (id) ON DELETE CASCADE,
    attempt     int NOT NULL,
    at          timestamptz NOT NULL DEFAULT now(),
    status      int NOT NULL DEFAULT 0,
    error       text NOT NULL DEFAULT '',
    duration_ms int NOT NULL DEFAULT 0,
    PRIMARY KEY (delivery_id, attempt)
);

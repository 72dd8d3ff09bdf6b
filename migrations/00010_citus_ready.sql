-- +goose Up
-- Citus-ready: the tenant column leads every primary key, unique constraint
-- and foreign key of the tenant tables, so Citus can distribute them by
-- tenant (docs/scale-out.md). On plain PostgreSQL nothing else changes.
-- api_keys, session_keys, access_tokens and import_progress are operator
-- tables (reference or local tables under Citus).

-- persons: (tenant, id); guid unique per tenant.
ALTER TABLE templates DROP CONSTRAINT templates_person_id_fkey;
ALTER TABLE enroll_requests DROP CONSTRAINT enroll_requests_person_id_fkey;
ALTER TABLE persons DROP CONSTRAINT persons_pkey;
ALTER TABLE persons ADD PRIMARY KEY (tenant, id);
ALTER TABLE persons DROP CONSTRAINT persons_guid_key;
ALTER TABLE persons ADD CONSTRAINT persons_tenant_guid_key UNIQUE (tenant, guid);

-- templates: (tenant, id), its person by (tenant, person_id).
ALTER TABLE templates DROP CONSTRAINT templates_pkey;
ALTER TABLE templates ADD PRIMARY KEY (tenant, id);
ALTER TABLE templates ADD CONSTRAINT templates_person_fkey
    FOREIGN KEY (tenant, person_id) REFERENCES persons (tenant, id) ON DELETE CASCADE;

-- enroll_requests: (tenant, id); a deleted person leaves the request, without it.
ALTER TABLE enroll_requests DROP CONSTRAINT enroll_requests_pkey;
ALTER TABLE enroll_requests ADD PRIMARY KEY (tenant, id);
-- Lookups by id alone (the worker's): ids are random, unique in practice.
CREATE INDEX enroll_requests_id ON enroll_requests (id);
ALTER TABLE enroll_requests ADD CONSTRAINT enroll_requests_person_fkey
    FOREIGN KEY (tenant, person_id) REFERENCES persons (tenant, id) ON DELETE SET NULL (person_id);

-- audit_log: (tenant, id).
ALTER TABLE audit_log DROP CONSTRAINT audit_log_pkey;
ALTER TABLE audit_log ADD PRIMARY KEY (tenant, id);

-- webhooks and their deliveries and attempts: by tenant.
ALTER TABLE webhook_attempts DROP CONSTRAINT webhook_attempts_delivery_id_fkey;
ALTER TABLE webhook_deliveries DROP CONSTRAINT webhook_deliveries_webhook_id_fkey;
ALTER TABLE webhooks DROP CONSTRAINT webhooks_pkey;
ALTER TABLE webhooks ADD PRIMARY KEY (tenant, id);
ALTER TABLE webhook_deliveries ADD COLUMN tenant text;
UPDATE webhook_deliveries d SET tenant = w.tenant FROM webhooks w WHERE w.id = d.webhook_id;
DELETE FROM webhook_deliveries WHERE tenant IS NULL;
ALTER TABLE webhook_deliveries ALTER COLUMN tenant SET NOT NULL;
ALTER TABLE webhook_deliveries DROP CONSTRAINT webhook_deliveries_pkey;
ALTER TABLE webhook_deliveries ADD PRIMARY KEY (tenant, id);
ALTER TABLE webhook_deliveries ADD CONSTRAINT webhook_deliveries_webhook_fkey
    FOREIGN KEY (tenant, webhook_id) REFERENCES webhooks (tenant, id) ON DELETE CASCADE;
ALTER TABLE webhook_attempts ADD COLUMN tenant text;
UPDATE webhook_attempts a SET tenant = d.tenant FROM webhook_deliveries d WHERE d.id = a.delivery_id;
DELETE FROM webhook_attempts WHERE tenant IS NULL;
ALTER TABLE webhook_attempts ALTER COLUMN tenant SET NOT NULL;
ALTER TABLE webhook_attempts DROP CONSTRAINT webhook_attempts_pkey;
ALTER TABLE webhook_attempts ADD PRIMARY KEY (tenant, delivery_id, attempt);
ALTER TABLE webhook_attempts ADD CONSTRAINT webhook_attempts_delivery_fkey
    FOREIGN KEY (tenant, delivery_id) REFERENCES webhook_deliveries (tenant, id) ON DELETE CASCADE;

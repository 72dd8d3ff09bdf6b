-- +goose Up

-- API keys: the CryptoNets fields, but the key itself only as a SHA-256 hash
-- and a short display prefix.
CREATE TABLE api_keys (
    id            uuid PRIMARY KEY,
    key_hash      bytea NOT NULL UNIQUE,
    key_prefix    text NOT NULL,
    customer_id   text NOT NULL,            -- the tenant
    api_id        text NOT NULL DEFAULT '',
    usage_plan_id text NOT NULL DEFAULT '',
    product_code  text NOT NULL DEFAULT '',
    status        text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'inactive', 'revoked')),
    when_created  timestamptz NOT NULL DEFAULT now(),
    last_updated  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE persons (
    id           bigserial PRIMARY KEY,
    tenant       text NOT NULL,
    version      text NOT NULL,
    puid         text NOT NULL,
    guid         text NOT NULL UNIQUE,
    external_id  text NOT NULL DEFAULT '',
    enroll_level int NOT NULL DEFAULT 0,
    created_at   timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant, puid)
);
CREATE UNIQUE INDEX persons_external_id ON persons (tenant, version, external_id) WHERE external_id <> '';

-- One table for every dimension: an unsized vector column, searched per
-- dimension through partial HNSW expression indexes created on first use
-- (vectorstore.Postgres.ensureIndex). Without pgvector (not installed, or
-- not installable by this role) the column is real[] and search runs in
-- memory (vectorstore.Exact).
-- +goose StatementBegin
DO $$
BEGIN
    BEGIN
        CREATE EXTENSION IF NOT EXISTS vector;
    EXCEPTION WHEN OTHERS THEN
        RAISE WARNING 'pgvector is not available (%): templates are stored as real[] and searched in memory', SQLERRM;
    END;
    IF EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'vector') THEN
        CREATE TABLE templates (
            id         bigserial PRIMARY KEY,
            person_id  bigint NOT NULL REFERENCES persons (id) ON DELETE CASCADE,
            tenant     text NOT NULL,
            version    text NOT NULL,
            dim        int NOT NULL CHECK (dim BETWEEN 128 AND 512),
            embedding  vector NOT NULL CHECK (vector_dims(embedding) = dim),
            created_at timestamptz NOT NULL DEFAULT now()
        );
        -- Inline storage: pgvector's default out-of-line (TOAST) storage makes
        -- exact scans about 4x slower. 512 floats (2 KiB) fit a page.
        ALTER TABLE templates ALTER COLUMN embedding SET STORAGE PLAIN;
    ELSE
        CREATE TABLE templates (
            id         bigserial PRIMARY KEY,
            person_id  bigint NOT NULL REFERENCES persons (id) ON DELETE CASCADE,
            tenant     text NOT NULL,
            version    text NOT NULL,
            dim        int NOT NULL CHECK (dim BETWEEN 128 AND 512),
            embedding  real[] NOT NULL CHECK (cardinality(embedding) = dim),
            created_at timestamptz NOT NULL DEFAULT now()
        );
    END IF;
END $$;
-- +goose StatementEnd
CREATE INDEX templates_gallery ON templates (tenant, version, dim);
CREATE INDEX templates_person ON templates (person_id);

-- Template counts per gallery, kept in the same transactions as the
-- templates, so search can choose exact or HNSW without counting.
CREATE TABLE galleries (
    tenant    text NOT NULL,
    version   text NOT NULL,
    persons   int NOT NULL DEFAULT 0,
    templates int NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant, version)
);

-- The durability point of an enroll: written before the job is queued.
CREATE TABLE enroll_requests (
    id          text PRIMARY KEY,
    tenant      text NOT NULL,
    version     text NOT NULL,
    key_id      uuid,
    request_id  text NOT NULL DEFAULT '',
    external_id text NOT NULL DEFAULT '',
    dim         int NOT NULL,
    templates   real[],                     -- frames back to back; NULL once finished
    state       text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'done', 'failed')),
    attempts    int NOT NULL DEFAULT 0,
    outcome     text NOT NULL DEFAULT '',
    reason      text NOT NULL DEFAULT '',
    person_id   bigint REFERENCES persons (id) ON DELETE SET NULL,
    score       double precision NOT NULL DEFAULT 0,
    created_at  timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz
);
CREATE INDEX enroll_requests_pending ON enroll_requests (created_at) WHERE state = 'pending';

-- Who did what to which person, when. Never a template.
CREATE TABLE audit_log (
    id         bigserial PRIMARY KEY,
    at         timestamptz NOT NULL DEFAULT now(),
    key_id     uuid,
    tenant     text NOT NULL,
    action     text NOT NULL,
    puid       text NOT NULL DEFAULT '',
    request_id text NOT NULL DEFAULT '',
    detail     text NOT NULL DEFAULT ''
);
CREATE INDEX audit_log_tenant_at ON audit_log (tenant, at);

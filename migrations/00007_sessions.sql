-- +goose Up
-- Short-lived session keys (POST /v1/sessions): a browser SDK uses one as
-- its api_key, so the tenant's own key never reaches a page. Only the
-- SHA-256 of the key is stored. A session acts for its parent key, within
-- its operations, for at most uses_left requests until expires_at.
CREATE TABLE session_keys (
    id              uuid PRIMARY KEY,
    key_hash        bytea NOT NULL UNIQUE,
    parent_key_id   uuid NOT NULL REFERENCES api_keys (id) ON DELETE CASCADE,
    operations      text[] NOT NULL,
    user_identifier text NOT NULL DEFAULT '',
    uses_left       int NOT NULL CHECK (uses_left >= 0),
    expires_at      timestamptz NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX session_keys_expires ON session_keys (expires_at);

-- +goose Up
-- OAuth2 access tokens (client credentials, POST /v1/oauth/token): short-
-- lived bearer tokens for /v1 that act for the key that obtained them. Only
-- the SHA-256 of a token is stored.
CREATE TABLE access_tokens (
    token_hash    bytea PRIMARY KEY,
    parent_key_id uuid NOT NULL REFERENCES api_keys (id) ON DELETE CASCADE,
    expires_at    timestamptz NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX access_tokens_expires ON access_tokens (expires_at);

-- +goose Up
-- Encryption version 3: each key's secret, sealed under the server's
-- MASTER_KEY (never in clear), and a per-key floor on the version a client
-- may use (3 refuses the unauthenticated CryptoNets versions 1 and 2).
ALTER TABLE api_keys ADD COLUMN secret_sealed bytea;
ALTER TABLE api_keys ADD COLUMN min_encryption int NOT NULL DEFAULT 1 CHECK (min_encryption BETWEEN 1 AND 3);

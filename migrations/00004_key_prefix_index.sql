-- +goose Up
-- Keys are looked up by their (non-secret) display prefix, then the
-- candidates' hashes are compared in constant time.
CREATE INDEX api_keys_prefix ON api_keys (key_prefix);

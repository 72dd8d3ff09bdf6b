-- +goose Up
-- A key's security level (calibration.Levels: low … highest): its requests
-- decide at that level and may ask only for stricter ones. '' means the
-- server's level for the version.
ALTER TABLE api_keys ADD COLUMN security_level text NOT NULL DEFAULT '';

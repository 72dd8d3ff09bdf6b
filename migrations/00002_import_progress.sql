-- +goose Up
-- Bulk imports checkpoint here after every batch, so an interrupted
-- `biomatch import` resumes where it stopped.
CREATE TABLE import_progress (
    source     text PRIMARY KEY,   -- tenant, version and the file's identity
    done       bigint NOT NULL DEFAULT 0,
    updated_at timestamptz NOT NULL DEFAULT now()
);

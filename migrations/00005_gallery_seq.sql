-- +goose Up
-- A gallery's change sequence: every transaction that adds or deletes a
-- person's templates increments it (under the gallery's lock) and announces
-- the new value with the change. The enroll decision reads it under the lock
-- and lets the in-memory index catch up to it before searching, so dedup is
-- exact and sees every committed template.
ALTER TABLE galleries ADD COLUMN seq bigint NOT NULL DEFAULT 0;

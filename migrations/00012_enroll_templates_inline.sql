-- +goose Up
-- An accepted enroll's templates stay in its row, uncompressed. A 512-value
-- template (2 KB of float4) passes PostgreSQL's 2 KB TOAST threshold, so
-- each accepted enroll tried to compress it (floats do not compress) and
-- wrote it out of line, as two TOAST rows and their index entries, which the
-- worker's finish (templates = NULL) deleted again. Measured on 20,000 rows:
-- 28-34 µs an insert instead of 46-50, 2 µs to clear instead of 16.
-- Requests whose templates do not fit in a page still go out of line,
-- uncompressed.
ALTER TABLE enroll_requests ALTER COLUMN templates SET STORAGE EXTERNAL;
ALTER TABLE enroll_requests SET (toast_tuple_target = 8160);

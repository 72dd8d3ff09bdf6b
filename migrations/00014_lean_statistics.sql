-- +goose Up
-- ANALYZE samples 300 rows per unit of a column's statistics target (100
-- by default: 30,000 rows) and reads their pages. A template row is 2 KB,
-- so autovacuum's analyze of templates read ~25,000 pages for about a
-- second of CPU (1.5 s with the vector's statistics), and enroll_requests,
-- analyzed every minute under a steady enroll load, up to 0.5 s: on a
-- 2-core machine under load those bursts (3.4 s of CPU in 6 s) queued
-- requests for tens of seconds. audit_log, a row per request, outgrows
-- them all: its analyze read 30,000 pages (1.4-1.9 s of CPU in 5-6 s).
-- Every query of these tables goes by key, gallery or tenant, which 3,000
-- sampled rows estimate as well; nothing filters on a template, so no
-- statistics are kept of one. A column added to these
-- tables later should get the same target.
ALTER TABLE templates
    ALTER COLUMN id SET STATISTICS 10,
    ALTER COLUMN person_id SET STATISTICS 10,
    ALTER COLUMN tenant SET STATISTICS 10,
    ALTER COLUMN version SET STATISTICS 10,
    ALTER COLUMN dim SET STATISTICS 10,
    ALTER COLUMN created_at SET STATISTICS 10,
    ALTER COLUMN embedding SET STATISTICS 0;
ALTER TABLE enroll_requests
    ALTER COLUMN id SET STATISTICS 10,
    ALTER COLUMN tenant SET STATISTICS 10,
    ALTER COLUMN version SET STATISTICS 10,
    ALTER COLUMN key_id SET STATISTICS 10,
    ALTER COLUMN request_id SET STATISTICS 10,
    ALTER COLUMN external_id SET STATISTICS 10,
    ALTER COLUMN dim SET STATISTICS 10,
    ALTER COLUMN state SET STATISTICS 10,
    ALTER COLUMN attempts SET STATISTICS 10,
    ALTER COLUMN outcome SET STATISTICS 10,
    ALTER COLUMN reason SET STATISTICS 10,
    ALTER COLUMN person_id SET STATISTICS 10,
    ALTER COLUMN score SET STATISTICS 10,
    ALTER COLUMN created_at SET STATISTICS 10,
    ALTER COLUMN finished_at SET STATISTICS 10,
    ALTER COLUMN templates SET STATISTICS 0;
ALTER TABLE persons
    ALTER COLUMN id SET STATISTICS 10,
    ALTER COLUMN tenant SET STATISTICS 10,
    ALTER COLUMN version SET STATISTICS 10,
    ALTER COLUMN puid SET STATISTICS 10,
    ALTER COLUMN guid SET STATISTICS 10,
    ALTER COLUMN external_id SET STATISTICS 10,
    ALTER COLUMN enroll_level SET STATISTICS 10,
    ALTER COLUMN created_at SET STATISTICS 10;
ALTER TABLE audit_log
    ALTER COLUMN id SET STATISTICS 10,
    ALTER COLUMN at SET STATISTICS 10,
    ALTER COLUMN key_id SET STATISTICS 10,
    ALTER COLUMN tenant SET STATISTICS 10,
    ALTER COLUMN action SET STATISTICS 10,
    ALTER COLUMN puid SET STATISTICS 10,
    ALTER COLUMN request_id SET STATISTICS 10,
    ALTER COLUMN detail SET STATISTICS 10;

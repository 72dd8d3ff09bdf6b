-- +goose Up
-- A worker's batch reads its gallery's oldest pending enrolls (tenant,
-- version, by created_at). With only (created_at) to go by, a plan made
-- while the statistics knew none of the tenant's requests (a new tenant,
-- or one whose requests were deleted) read the tenant's every request by
-- its key and filtered the pending ones: 70 ms a batch 25 s into a load
-- test, growing with every enroll until autovacuum analyzed. The pending
-- index now leads with the gallery; the reconciler's scan for stale
-- requests of any gallery reads the same (small) partial index whole.
CREATE INDEX enroll_requests_pending_gallery ON enroll_requests (tenant, version, created_at) WHERE state = 'pending';
DROP INDEX enroll_requests_pending;


-- +goose Up
-- Lookups that the (tenant, …) keys of 00010 do not serve, each of which
-- would otherwise read a whole table or key index: the webhook dispatcher
-- finds a delivery by its id alone, and a person's delete clears the
-- person from its enroll requests (the foreign key's ON DELETE SET NULL).
CREATE INDEX webhook_deliveries_id ON webhook_deliveries (id);
CREATE INDEX enroll_requests_person ON enroll_requests (tenant, person_id) WHERE person_id IS NOT NULL;

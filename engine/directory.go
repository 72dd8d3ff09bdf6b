package engine

import (
	"context"
	"fmt"
)

// GalleryInfo is one gallery of a tenant and its size.
type GalleryInfo struct {
	Version   string
	Persons   int
	Templates int
}

// MaxListLimit is the most persons one page of ListPersons returns.
const MaxListLimit = 1000

// Enrollment returns the tenant's enroll request by id: another tenant's,
// like an unknown one, is ErrNotFound.
func (s *Service) Enrollment(ctx context.Context, tenant, id string) (EnrollRequest, error) {
	if !IsID(id) {
		return EnrollRequest{}, fmt.Errorf("enrollment %q: %w", id, ErrNotFound)
	}
	r, err := s.store.EnrollRequest(ctx, id)
	if err != nil {
		return EnrollRequest{}, err
	}
	if r.Gallery.Tenant != tenant {
		return EnrollRequest{}, fmt.Errorf("enrollment %q: %w", id, ErrNotFound)
	}
	r.Templates = nil
	return r, nil
}

// Galleries returns the tenant's galleries with their sizes, by version.
func (s *Service) Galleries(ctx context.Context, tenant string) ([]GalleryInfo, error) {
	return s.store.Galleries(ctx, tenant)
}

// ListPersons returns up to limit persons of g with ids above after, in
// id order (after = the last id of the previous page; 0 for the first).
func (s *Service) ListPersons(ctx context.Context, g Gallery, after int64, limit int) ([]Person, error) {
	if limit < 1 || limit > MaxListLimit {
		return nil, fmt.Errorf("%w: limit: want 1 to %d", ErrInvalid, MaxListLimit)
	}
	return s.store.ListPersons(ctx, g, after, limit)
}

// FindPersons returns the tenant's persons with that external id, in
// every gallery, or in version's alone when version is not "".
func (s *Service) FindPersons(ctx context.Context, tenant, externalID, version string) ([]Person, error) {
	if externalID == "" {
		return nil, fmt.Errorf("%w: external_id: required", ErrInvalid)
	}
	return s.store.PersonsByExternalID(ctx, tenant, externalID, version)
}

// PersonByPUID returns the tenant's person with that puid (ErrNotFound).
func (s *Service) PersonByPUID(ctx context.Context, tenant, puid string) (Person, error) {
	return s.store.PersonByPUID(ctx, tenant, puid)
}

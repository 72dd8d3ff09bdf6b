package engine

import (
	"context"
	"time"
)

// Store persists persons, templates, enroll requests and the audit log.
// PostgreSQL is the source of truth; postgres.Store implements it.
// Methods return errors wrapping ErrNotFound or ErrUnavailable where they say so.
type Store interface {
	// CreateEnrollRequest durably records a pending enroll; once it returns
	// nil the enroll is accepted and will complete.
	CreateEnrollRequest(ctx context.Context, r EnrollRequest) error
	// EnrollRequest returns the request by id (ErrNotFound).
	EnrollRequest(ctx context.Context, id string) (EnrollRequest, error)
	// EnrollState returns the gallery and state of request id, without
	// reading its templates (ErrNotFound): what a worker's task looks at.
	EnrollState(ctx context.Context, id string) (Gallery, EnrollState, error)
	// CountEnrollAttempt records that a worker started on the request.
	CountEnrollAttempt(ctx context.Context, id string) error
	// FailEnrollRequest ends a pending request as failed with reason.
	FailEnrollRequest(ctx context.Context, id, reason string) error
	// PendingEnrollRequests returns ids of requests still pending that were
	// created before before, oldest first.
	PendingEnrollRequests(ctx context.Context, before time.Time, limit int) ([]string, error)
	// InGallery runs fn in one transaction that holds g's exclusive enroll
	// lock, so two enrolls of one gallery never decide concurrently.
	InGallery(ctx context.Context, g Gallery, fn func(ctx context.Context, tx GalleryTx) error) error

	// GallerySize returns how many templates g holds (0 for a new gallery).
	GallerySize(ctx context.Context, g Gallery) (int, error)
	// Galleries returns the tenant's galleries and their sizes, by version.
	Galleries(ctx context.Context, tenant string) ([]GalleryInfo, error)
	// ListPersons returns up to limit persons of g with ids above after, by id.
	ListPersons(ctx context.Context, g Gallery, after int64, limit int) ([]Person, error)
	// PersonsByExternalID returns the tenant's persons with that external
	// id (in version's gallery only, unless version is ""), by id.
	PersonsByExternalID(ctx context.Context, tenant, externalID, version string) ([]Person, error)
	// PersonByPUID returns the tenant's person with that puid (ErrNotFound).
	PersonByPUID(ctx context.Context, tenant, puid string) (Person, error)
	// Persons returns the tenant's persons with the given ids that still exist.
	Persons(ctx context.Context, tenant string, ids []int64) (map[int64]Person, error)
	// PersonByIdentifier finds a person of g by external id, else by puid (ErrNotFound).
	PersonByIdentifier(ctx context.Context, g Gallery, identifier string) (Person, error)
	// PersonTemplates returns the person's templates.
	PersonTemplates(ctx context.Context, personID int64) ([]Embedding, error)
	// DeletePerson erases a tenant's person and its templates and records a
	// in one transaction (ErrNotFound).
	DeletePerson(ctx context.Context, tenant, puid string, a AuditEntry) (Person, error)
	// EnrollLevels returns, for each puid of the tenant that exists, its level.
	EnrollLevels(ctx context.Context, tenant string, puids []string) (map[string]int, error)
	// Audit records a.
	Audit(ctx context.Context, a AuditEntry) error
	// ImportProgress returns a bulk import's checkpoint (0 when new).
	ImportProgress(ctx context.Context, source string) (int64, error)
	// Export calls fn for each person of g, with its templates when
	// withTemplates, in id order.
	Export(ctx context.Context, g Gallery, withTemplates bool, fn func(Person, []Embedding) error) error
}

// GalleryTx is the view of one locked gallery inside Store.InGallery.
type GalleryTx interface {
	// LockEnrollRequest returns the request, locked for update (ErrNotFound).
	LockEnrollRequest(ctx context.Context, id string) (EnrollRequest, error)
	// LockPendingEnrolls returns up to limit other pending requests of g,
	// oldest first, locked for update (those another transaction holds are
	// skipped): the rest of a batch.
	LockPendingEnrolls(ctx context.Context, g Gallery, except string, limit int) ([]EnrollRequest, error)
	// Savepoint runs fn so that, when it fails, what it wrote is undone and
	// the transaction goes on (one item of a batch fails alone).
	Savepoint(ctx context.Context, fn func(ctx context.Context) error) error
	// Nearest is Index.Nearest, seeing this transaction's own writes.
	Nearest(ctx context.Context, g Gallery, probe Embedding, k int) ([]Match, error)
	// NearestBatch is Nearest for each probe, keeping the matches that
	// score at least atLeast (−∞: all), in one pass where the index can
	// (the in-memory index reads each template once for many probes, and
	// reads less of those that cannot reach a high atLeast).
	NearestBatch(ctx context.Context, g Gallery, probes []Embedding, k int, atLeast float64) ([][]Match, error)
	// PersonsByExternalIDs returns the persons of g with those external ids.
	PersonsByExternalIDs(ctx context.Context, g Gallery, externalIDs []string) (map[string]Person, error)
	// CreatePersons writes new persons of g with their templates in bulk
	// and returns them with their ids, in order. Their Person.ID is ignored.
	CreatePersons(ctx context.Context, g Gallery, ps []NewPerson) ([]Person, error)
	// Person returns the tenant's person by id (ErrNotFound).
	Person(ctx context.Context, tenant string, id int64) (Person, error)
	// PersonByExternalID returns the person of g with that external id (ErrNotFound).
	PersonByExternalID(ctx context.Context, g Gallery, externalID string) (Person, error)
	// CreatePerson inserts p and returns it with its id.
	CreatePerson(ctx context.Context, p Person) (Person, error)
	// SetExternalID sets p's external id.
	SetExternalID(ctx context.Context, p Person, externalID string) error
	// AddTemplates stores templates for p and returns its new enroll level.
	AddTemplates(ctx context.Context, p Person, ts []Embedding) (int, error)
	// FinishEnrollRequests stores each request's result, clears its
	// templates and marks it done (or failed for a rejection).
	FinishEnrollRequests(ctx context.Context, ids []string, res []EnrollResult) error
	// AuditAll records entries in this transaction, in bulk.
	AuditAll(ctx context.Context, entries []AuditEntry) error
	// SaveImportProgress records a bulk import's checkpoint.
	SaveImportProgress(ctx context.Context, source string, done int64) error
}

// Index finds the templates of a gallery nearest to a probe.
type Index interface {
	// Nearest returns up to k matches of g with the probe's dimension, by
	// descending score, ties broken by ascending template id.
	Nearest(ctx context.Context, g Gallery, probe Embedding, k int) ([]Match, error)
}

// Jobs hands accepted enrolls to the worker. queue.Client implements it.
type Jobs interface {
	// EnqueueEnroll schedules the enroll request; enqueueing an id twice is harmless.
	EnqueueEnroll(ctx context.Context, requestID string) error
}

// AuditEntry is one row of the audit log. It never holds a template.
type AuditEntry struct {
	KeyID     string
	Tenant    string
	Action    string // enroll, identify, verify, delete, key.create, key.revoke, …
	PUID      string
	RequestID string
	Detail    string
}

// Follower is an index that keeps its own copy of the templates, following
// every process's writes by its own means. The Service makes its answers
// readable at once: it waits for an enrolled person to be there before
// answering, and tells it about a delete.
type Follower interface {
	// PersonChanged reloads the person's templates (none: it was deleted).
	PersonChanged(ctx context.Context, personID int64) error
	// AwaitPerson returns once the person's rows are searchable (or the
	// follower does not serve searches), or when ctx ends.
	AwaitPerson(ctx context.Context, personID int64) error
}

// Finished wakes a handler waiting for an enroll request when the request
// may have finished (postgres.Finished: LISTEN/NOTIFY), so waiting costs no
// polling.
type Finished interface {
	// Subscribe returns a channel that receives once when request id may
	// have finished — when it did, or when a notification of it may have
	// been missed — and a function that ends the subscription. It receives
	// the finished request when the notification carried it; nil: the
	// subscriber looks, and subscribes again if the request is still
	// pending.
	Subscribe(id string) (<-chan *EnrollRequest, func())
}

package engine

import (
	"context"
	"errors"
	"fmt"
	"slices"
)

// ImportItem is one template of a bulk import.
type ImportItem struct {
	ExternalID string
	Vector     []float64
}

// NewPerson is a person a bulk write creates, with its templates.
type NewPerson struct {
	Person    Person
	Templates []Embedding
}

// Scratch is an empty exact index of the templates one import batch writes,
// so that each item is compared with the batch's earlier ones
// (vectorstore.Exact). Not safe for concurrent use.
type Scratch interface {
	Index
	// Insert adds a template of a person.
	Insert(g Gallery, templateID, personID int64, e Embedding)
}

// Import decides and writes a batch of a bulk import in one gallery-locked
// transaction, by the enroll's dedup rule, and records done as the
// source's checkpoint in that transaction. Each item is compared with the
// whole gallery (one batched exact search for the batch) and with the
// earlier items of the batch (a Scratch index). New persons and their
// templates are written in bulk (COPY). An invalid item is reported in its
// result (Rejected, Reason) and does not stop the batch.
func (s *Service) Import(ctx context.Context, g Gallery, items []ImportItem, source string, done int64) ([]EnrollResult, error) {
	results := make([]EnrollResult, len(items))
	err := s.store.InGallery(ctx, g, func(ctx context.Context, tx GalleryTx) error {
		b := importBatch{s: s, tx: tx, g: g, items: items, results: results, scratch: s.newScratch()}
		if err := b.decide(ctx); err != nil {
			return err
		}
		if err := b.write(ctx); err != nil {
			return err
		}
		return tx.SaveImportProgress(ctx, source, done)
	})
	return results, err
}

// importBatch is one Import call's state.
type importBatch struct {
	s       *Service
	tx      GalleryTx
	g       Gallery
	items   []ImportItem
	results []EnrollResult
	scratch Scratch

	created  []NewPerson // new persons, in item order; their index i is person id −(i+1) until written
	ofItem   []int       // per item: index into created, or −1
	existing map[int64]*Person
	audit    []AuditEntry
}

// pendingID is the stand-in id of created[i] before it is written.
func pendingID(i int) int64 { return -int64(i) - 1 }

func (b *importBatch) decide(ctx context.Context) error {
	es := make([]Embedding, len(b.items))
	var probes []Embedding
	var externals []string
	for i, it := range b.items {
		e, err := NewEmbeddings([][]float64{it.Vector})
		if err != nil {
			b.results[i] = rejected(err.Error())
			continue
		}
		es[i] = e[0]
		probes = append(probes, e[0])
		if it.ExternalID != "" {
			externals = append(externals, it.ExternalID)
		}
	}
	gallery, err := b.tx.NearestBatch(ctx, b.g, probes, 1)
	if err != nil {
		return err
	}
	byExternal, err := b.tx.PersonsByExternalIDs(ctx, b.g, externals)
	if err != nil {
		return err
	}
	newByExternal := map[string]int{} // external id → index into created
	b.ofItem = make([]int, len(b.items))
	b.existing = map[int64]*Person{}
	dedup := b.s.cfg.Thresholds(b.g.Version).Dedup
	next := 0 // index into probes and gallery
	var templateID int64
	for i, it := range b.items {
		b.ofItem[i] = -1
		e := es[i]
		if e == nil {
			continue
		}
		best := Match{Score: -2}
		if ms := gallery[next]; len(ms) > 0 {
			best = ms[0]
		}
		next++
		if ms, err := b.scratch.Nearest(ctx, b.g, e, 1); err != nil {
			return err
		} else if len(ms) > 0 && ms[0].Score > best.Score {
			best = ms[0]
		}
		var known *Person // the person of it.ExternalID, if any
		if it.ExternalID != "" {
			if j, ok := newByExternal[it.ExternalID]; ok {
				known = &b.created[j].Person
			} else if p, ok := byExternal[it.ExternalID]; ok {
				known = &p
			}
		}
		if best.Score >= dedup {
			p, err := b.person(ctx, best.PersonID)
			if err != nil {
				return err
			}
			switch {
			case known != nil && known.ID != p.ID:
				b.results[i] = rejected("the face is enrolled under another user_identifier")
				continue
			case it.ExternalID != "" && p.ExternalID != "" && p.ExternalID != it.ExternalID:
				b.results[i] = rejected("the face is enrolled under another user_identifier")
				continue
			case it.ExternalID != "" && p.ExternalID == "":
				if p.ID > 0 {
					if err := b.tx.SetExternalID(ctx, p.ID, it.ExternalID); err != nil {
						return err
					}
				} else {
					newByExternal[it.ExternalID] = int(-p.ID - 1)
				}
				p.ExternalID = it.ExternalID
			}
			if p.EnrollLevel < b.s.cfg.MaxTemplatesPerPerson {
				if p.ID > 0 {
					if p.EnrollLevel, err = b.tx.AddTemplates(ctx, *p, []Embedding{e}); err != nil {
						return err
					}
				} else {
					np := &b.created[-p.ID-1]
					np.Templates = append(np.Templates, e)
					p.EnrollLevel++
				}
				templateID++
				b.scratch.Insert(b.g, templateID, p.ID, e)
			}
			b.results[i] = EnrollResult{Outcome: Existing, Person: *p, Score: RoundScore(best.Score)}
			if p.ID < 0 {
				b.ofItem[i] = int(-p.ID - 1)
			}
			b.audit = append(b.audit, AuditEntry{Tenant: b.g.Tenant, Action: "import", PUID: p.PUID, Detail: string(Existing)})
			continue
		}
		if known != nil {
			b.results[i] = rejected("user_identifier is enrolled with a different face")
			continue
		}
		j := len(b.created)
		b.created = append(b.created, NewPerson{
			Person:    Person{ID: pendingID(j), Gallery: b.g, PUID: NewID(), GUID: NewID(), ExternalID: it.ExternalID, EnrollLevel: 1},
			Templates: []Embedding{e},
		})
		if it.ExternalID != "" {
			newByExternal[it.ExternalID] = j
		}
		templateID++
		b.scratch.Insert(b.g, templateID, pendingID(j), e)
		b.ofItem[i] = j
		b.results[i] = EnrollResult{Outcome: Created, Score: 1}
		b.audit = append(b.audit, AuditEntry{Tenant: b.g.Tenant, Action: "import", PUID: b.created[j].Person.PUID, Detail: string(Created)})
	}
	return nil
}

// person returns the person of a match: written earlier (cached, as this
// batch changes its level) or created by this batch (a stand-in id).
func (b *importBatch) person(ctx context.Context, id int64) (*Person, error) {
	if id < 0 {
		return &b.created[-id-1].Person, nil
	}
	if p, ok := b.existing[id]; ok {
		return p, nil
	}
	p, err := b.tx.Person(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("person %d of a match: %w", id, err)
	}
	b.existing[id] = &p
	return &p, nil
}

// write stores the new persons in bulk, fills in the results that name
// them, and audits every accepted item.
func (b *importBatch) write(ctx context.Context) error {
	if len(b.created) > 0 {
		persons, err := b.tx.CreatePersons(ctx, b.g, b.created)
		if err != nil {
			return err
		}
		if len(persons) != len(b.created) {
			return errors.New("bulk write returned a different number of persons")
		}
		for i, j := range b.ofItem {
			if j >= 0 {
				b.results[i].Person = persons[j]
			}
		}
	}
	if len(b.audit) == 0 {
		return nil
	}
	return b.tx.AuditAll(ctx, b.audit)
}

// newScratch returns the Scratch for one batch: Deps.NewScratch, else a
// plain scan.
func (s *Service) newScratch() Scratch {
	if s.scratch != nil {
		return s.scratch()
	}
	return &scanScratch{}
}

// scanScratch is a Scratch that scores every template (the engine's own
// tests; the service uses vectorstore.Exact).
type scanScratch struct {
	rows []Match
	embs []Embedding
}

func (s *scanScratch) Insert(g Gallery, templateID, personID int64, e Embedding) {
	s.rows = append(s.rows, Match{TemplateID: templateID, PersonID: personID})
	s.embs = append(s.embs, e)
}

func (s *scanScratch) Nearest(ctx context.Context, g Gallery, probe Embedding, k int) ([]Match, error) {
	var ms []Match
	for i, m := range s.rows {
		if len(s.embs[i]) == len(probe) {
			m.Score = Cosine(s.embs[i], probe)
			ms = append(ms, m)
		}
	}
	slices.SortFunc(ms, CompareMatches)
	return ms[:min(k, len(ms))], nil
}

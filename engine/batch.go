package engine

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
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

// PairsFunc compares the templates of one batch with each other: for
// each probe i, the probes j < i scoring at least atLeast with it, as
// Matches whose TemplateID is j (PersonID unset), best first, ties by j,
// scored as an Index scores. So each item of a batch is compared with the
// batch's earlier ones.
type PairsFunc func(ctx context.Context, probes []Embedding, atLeast float64) ([][]Match, error)

// Import decides and writes a batch of a bulk import in one gallery-locked
// transaction, by the enroll's dedup rule (decideBatch), and records done
// as the source's checkpoint in that transaction. An invalid item is
// reported in its result (Rejected, Reason) and does not stop the batch.
func (s *Service) Import(ctx context.Context, g Gallery, items []ImportItem, source string, done int64) ([]EnrollResult, error) {
	results := make([]EnrollResult, len(items))
	defer s.forgetSize(g)
	err := s.store.InGallery(ctx, g, func(ctx context.Context, tx GalleryTx) error {
		b := s.newBatch(tx, g)
		for i, it := range items {
			es, err := NewEmbeddings([][]float64{it.Vector})
			if err != nil {
				results[i] = rejected(err.Error())
				es = nil
			}
			b.items = append(b.items, batchItem{externalID: it.ExternalID, templates: es,
				audit: AuditEntry{Tenant: g.Tenant, Action: "import", RequestID: source}})
		}
		if err := b.decideAndWrite(ctx); err != nil {
			return err
		}
		for i, r := range b.results {
			if len(b.items[i].templates) > 0 {
				results[i] = r
			}
		}
		return tx.SaveImportProgress(ctx, source, done)
	})
	return results, err
}

// batch decides many enrolls (or import items) of one gallery together,
// under its lock: each item against the whole gallery (one batched search
// for all templates of the batch) and against the batch's earlier items
// (one comparison of the batch's templates with each other, PairsFunc),
// by the dedup rule; then writes the new persons in bulk.
type batch struct {
	s       *Service
	tx      GalleryTx
	g       Gallery
	items   []batchItem
	results []EnrollResult

	created  []NewPerson // new persons, in item order; created[i] has stand-in id −(i+1) until written
	ofItem   []int       // per item: index into created, or −1
	existing map[int64]*Person
	audit    []AuditEntry
}

// batchItem is one enroll of a batch: its validated templates (none: the
// item is skipped) and the audit entry its outcome completes.
type batchItem struct {
	externalID string
	templates  []Embedding
	audit      AuditEntry
}

func (s *Service) newBatch(tx GalleryTx, g Gallery) *batch {
	return &batch{s: s, tx: tx, g: g, existing: map[int64]*Person{}}
}

// decideAndWrite decides every item (results, in order) and writes.
func (b *batch) decideAndWrite(ctx context.Context) error {
	if err := b.decide(ctx); err != nil {
		return err
	}
	return b.write(ctx)
}

// pendingID is the stand-in id of created[i] before it is written.
func pendingID(i int) int64 { return -int64(i) - 1 }

func (b *batch) decide(ctx context.Context) error {
	var probes []Embedding
	var externals []string
	for _, it := range b.items {
		probes = append(probes, it.templates...)
		if it.externalID != "" {
			externals = append(externals, it.externalID)
		}
	}
	n, err := b.s.gallerySize(ctx, b.g)
	if err != nil {
		return err
	}
	dedup := b.s.decide(b.g.Version, b.s.dedupLevel(b.g.Version), n, true).Threshold
	// Only a match at the threshold decides: the searches look for no
	// other. The batch's comparison with itself runs beside the gallery's
	// (which is parallel only over a large gallery).
	var pairs [][]Match
	var pairsErr error
	var wg sync.WaitGroup
	wg.Go(func() { pairs, pairsErr = b.s.batchPairs(ctx, probes, dedup) })
	gallery, err := b.tx.NearestBatch(ctx, b.g, probes, 1, dedup)
	wg.Wait()
	if err != nil {
		return err
	}
	if pairsErr != nil {
		return pairsErr
	}
	// ofProbe is the person each probe was stored for by an earlier item of
	// this batch (0: not stored): what the pairs of a later probe can match.
	ofProbe := make([]int64, len(probes))
	byExternal, err := b.tx.PersonsByExternalIDs(ctx, b.g, externals)
	if err != nil {
		return err
	}
	newByExternal := map[string]int{} // external id → index into created
	b.results = make([]EnrollResult, len(b.items))
	b.ofItem = make([]int, len(b.items))
	maxLevel := b.s.cfg.MaxTemplatesPerPerson
	next := 0 // index into probes, gallery and pairs of the item's first template
	for i, it := range b.items {
		b.ofItem[i] = -1
		if len(it.templates) == 0 {
			continue
		}
		first := next
		best := Match{Score: -2}
		for range it.templates {
			if ms := gallery[next]; len(ms) > 0 && ms[0].Score > best.Score {
				best = ms[0]
			}
			for _, m := range pairs[next] {
				if ofProbe[m.TemplateID] != 0 {
					if m.Score > best.Score {
						best = Match{TemplateID: m.TemplateID, PersonID: ofProbe[m.TemplateID], Score: m.Score}
					}
					break
				}
			}
			next++
		}
		var known *Person // the person of it.externalID, if any
		if it.externalID != "" {
			if j, ok := newByExternal[it.externalID]; ok {
				known = &b.created[j].Person
			} else if p, ok := byExternal[it.externalID]; ok {
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
			case it.externalID != "" && p.ExternalID != "" && p.ExternalID != it.externalID:
				b.results[i] = rejected("the face is enrolled under another user_identifier")
				continue
			case it.externalID != "" && p.ExternalID == "":
				if p.ID > 0 {
					if err := b.tx.SetExternalID(ctx, *p, it.externalID); err != nil {
						return err
					}
				} else {
					newByExternal[it.externalID] = int(-p.ID - 1)
				}
				p.ExternalID = it.externalID
			}
			if room := maxLevel - p.EnrollLevel; room > 0 {
				add := it.templates[:min(room, len(it.templates))]
				if p.ID > 0 {
					if p.EnrollLevel, err = b.tx.AddTemplates(ctx, *p, add); err != nil {
						return err
					}
				} else {
					np := &b.created[-p.ID-1]
					np.Templates = append(np.Templates, add...)
					p.EnrollLevel += len(add)
				}
				for t := range add {
					ofProbe[first+t] = p.ID
				}
			}
			b.results[i] = EnrollResult{Outcome: Existing, Person: *p, Score: RoundScore(best.Score)}
			if p.ID < 0 {
				b.ofItem[i] = int(-p.ID - 1)
			}
			b.auditItem(it, p.PUID, Existing)
			continue
		}
		if known != nil {
			b.results[i] = rejected("user_identifier is enrolled with a different face")
			continue
		}
		ts := it.templates[:min(maxLevel, len(it.templates))]
		j := len(b.created)
		b.created = append(b.created, NewPerson{
			Person:    Person{ID: pendingID(j), Gallery: b.g, PUID: NewID(), GUID: NewID(), ExternalID: it.externalID, EnrollLevel: len(ts)},
			Templates: slices.Clone(ts),
		})
		if it.externalID != "" {
			newByExternal[it.externalID] = j
		}
		for t := range ts {
			ofProbe[first+t] = pendingID(j)
		}
		b.ofItem[i] = j
		b.results[i] = EnrollResult{Outcome: Created, Person: Person{EnrollLevel: len(ts)}, Score: RoundScore(consistency(ts))}
		b.auditItem(it, b.created[j].Person.PUID, Created)
	}
	return nil
}

func (b *batch) auditItem(it batchItem, puid string, o Outcome) {
	a := it.audit
	a.Tenant, a.PUID, a.Detail = b.g.Tenant, puid, string(o)
	b.audit = append(b.audit, a)
}

// person returns the person of a match: written earlier (cached, as this
// batch changes its level) or created by this batch (a stand-in id).
func (b *batch) person(ctx context.Context, id int64) (*Person, error) {
	if id < 0 {
		return &b.created[-id-1].Person, nil
	}
	if p, ok := b.existing[id]; ok {
		return p, nil
	}
	p, err := b.tx.Person(ctx, b.g.Tenant, id)
	if err != nil {
		return nil, fmt.Errorf("person %d of a match: %w", id, err)
	}
	b.existing[id] = &p
	return &p, nil
}

// write stores the new persons in bulk, fills in the results that name
// them, and audits every accepted item.
func (b *batch) write(ctx context.Context) error {
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
				level := b.results[i].Person.EnrollLevel // as this item left it
				b.results[i].Person = persons[j]
				b.results[i].Person.EnrollLevel = level
			}
		}
	}
	if len(b.audit) == 0 {
		return nil
	}
	return b.tx.AuditAll(ctx, b.audit)
}

// batchPairs is Deps.Pairs, else a plain scan.
func (s *Service) batchPairs(ctx context.Context, probes []Embedding, atLeast float64) ([][]Match, error) {
	if s.pairs != nil {
		return s.pairs(ctx, probes, atLeast)
	}
	out := make([][]Match, len(probes))
	for i, p := range probes {
		for j, q := range probes[:i] {
			if len(p) == len(q) {
				if c := Cosine(p, q); c >= atLeast {
					out[i] = append(out[i], Match{TemplateID: int64(j), Score: c})
				}
			}
		}
		slices.SortFunc(out[i], CompareMatches)
	}
	return out, nil
}

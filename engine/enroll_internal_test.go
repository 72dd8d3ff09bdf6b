package engine

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestPollDelay(t *testing.T) {
	const i = 25 * time.Millisecond
	for n, want := range map[int]time.Duration{1: i, 9: i, 10: 2 * i, 11: 4 * i, 12: 8 * i, 13: 10 * i, 1000: 10 * i} {
		if got := pollDelay(i, n); got != want {
			t.Errorf("pollDelay(%v, %d) = %v, want %v", i, n, got, want)
		}
	}
}

// TestZeroThresholdsAreHonoured: an operator's 0 is a threshold, not "unset";
// without bare thresholds the levels decide.
func TestZeroThresholdsAreHonoured(t *testing.T) {
	for _, tc := range []struct {
		cfg  Config
		want Thresholds
		bare bool
	}{
		{Config{}, Thresholds{}, false},
		{Config{Default: &Thresholds{}}, Thresholds{}, true},
		{Config{Default: &Thresholds{Match: 0, Dedup: 0.7}}, Thresholds{Match: 0, Dedup: 0.7}, true},
		{Config{Default: &Thresholds{Match: -0.2, Dedup: 0}}, Thresholds{Match: -0.2, Dedup: 0}, true},
	} {
		s := &Service{cfg: tc.cfg.withDefaults()}
		if got, bare := s.bareThreshold("FACE3_1"); got != tc.want || bare != tc.bare {
			t.Errorf("%+v: thresholds %+v (bare %v), want %+v (bare %v)", tc.cfg, got, bare, tc.want, tc.bare)
		}
	}
}

// TestRecentIDsForgetsTheOldest: the set keeps the last recentIDsKept ids
// added, forgets the oldest first, and adding one it holds changes nothing.
func TestRecentIDsForgetsTheOldest(t *testing.T) {
	var r recentIDs
	id := func(i int) string { return fmt.Sprintf("req-%d", i) }
	var first []string
	for i := range recentIDsKept {
		first = append(first, id(i))
	}
	r.add(first)
	r.add([]string{id(0)}) // held already: not added again
	if !r.has(id(0)) || !r.has(id(recentIDsKept-1)) || r.has(id(recentIDsKept)) {
		t.Fatal("a full set lost an id it holds, or holds one never added")
	}
	r.add([]string{id(recentIDsKept), id(recentIDsKept + 1)})
	if r.has(id(0)) || r.has(id(1)) {
		t.Error("the two oldest were not forgotten for two new ids")
	}
	if !r.has(id(2)) || !r.has(id(recentIDsKept)) || !r.has(id(recentIDsKept+1)) {
		t.Error("an id newer than the two forgotten was lost")
	}
	if len(r.ids) != recentIDsKept {
		t.Errorf("%d ids held, want at most %d", len(r.ids), recentIDsKept)
	}
}

// slowSizes is a Store whose GallerySize counts its calls and answers when
// released; nothing else of it is called.
type slowSizes struct {
	Store
	calls   atomic.Int32
	release chan struct{}
}

func (s *slowSizes) GallerySize(ctx context.Context, g Gallery) (int, error) {
	s.calls.Add(1)
	<-s.release
	return 100_000, nil
}

// TestGallerySizeSharesOneQuery: the requests that find a gallery's size
// missing (or expired) share one count query instead of each taking a
// connection, and a write this Service made is counted by a new query.
func TestGallerySizeSharesOneQuery(t *testing.T) {
	store := &slowSizes{release: make(chan struct{})}
	s := &Service{store: store}
	g := Gallery{Tenant: "t", Version: "FACE3_1"}
	const callers = 50
	var wg sync.WaitGroup
	sizes := make([]int, callers)
	for i := range callers {
		wg.Go(func() {
			n, err := s.gallerySize(context.Background(), g)
			if err != nil {
				t.Error(err)
			}
			sizes[i] = n
		})
	}
	for store.calls.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(20 * time.Millisecond) // the others arrive while it runs
	close(store.release)
	wg.Wait()
	if n := store.calls.Load(); n != 1 {
		t.Errorf("%d callers made %d count queries, want 1", callers, n)
	}
	for i, n := range sizes {
		if n != 100_000 {
			t.Fatalf("caller %d got size %d, want 100000", i, n)
		}
	}
	if _, err := s.gallerySize(context.Background(), g); err != nil || store.calls.Load() != 1 {
		t.Errorf("a fresh size was queried again (%d queries, %v)", store.calls.Load(), err)
	}
	s.forgetSize(g)
	if _, err := s.gallerySize(context.Background(), g); err != nil || store.calls.Load() != 2 {
		t.Errorf("after this Service's write the size was not counted again (%d queries, %v)", store.calls.Load(), err)
	}
}

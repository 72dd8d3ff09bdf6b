package engine

import (
	"fmt"
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

package engine

import (
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

// TestZeroThresholdsAreHonoured: an operator's 0 is a threshold, not "unset".
func TestZeroThresholdsAreHonoured(t *testing.T) {
	for _, tc := range []struct {
		cfg  Config
		want Thresholds
	}{
		{Config{}, DefaultThresholds},
		{Config{Default: &Thresholds{}}, Thresholds{}},
		{Config{Default: &Thresholds{Match: 0, Dedup: 0.7}}, Thresholds{Match: 0, Dedup: 0.7}},
		{Config{Default: &Thresholds{Match: -0.2, Dedup: 0}}, Thresholds{Match: -0.2, Dedup: 0}},
	} {
		if got := tc.cfg.withDefaults().Thresholds("FACE3_1"); got != tc.want {
			t.Errorf("%+v: thresholds %+v, want %+v", tc.cfg, got, tc.want)
		}
	}
}

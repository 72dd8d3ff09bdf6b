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

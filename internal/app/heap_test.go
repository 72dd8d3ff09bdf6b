package app

import (
	"bytes"
	"math"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"strconv"
	"testing"
)

// TestHeadroom: GOGC % of the live heap, nothing when collection is off,
// and never past GOMEMLIMIT.
func TestHeadroom(t *testing.T) {
	const gb = 1 << 30
	for _, tc := range []struct {
		live, inUse uint64
		percent     int
		limit       int64
		want        uint64
	}{
		{4 * gb, 4 * gb, 25, math.MaxInt64, gb},
		{4 * gb, 4 * gb, 100, math.MaxInt64, 4 * gb},
		{4 * gb, 4 * gb, -1, math.MaxInt64, 0}, // GOGC=off
		{4 * gb, 4 * gb, 0, math.MaxInt64, 0},
		{4 * gb, 5 * gb, 100, 6 * gb, gb}, // the limit leaves 1 GB
		{4 * gb, 5 * gb, 25, 20 * gb, gb},
		{4 * gb, 5 * gb, 25, 5 * gb, 0}, // at the limit already
		{4 * gb, 5 * gb, 25, 4 * gb, 0},
	} {
		if got := headroom(tc.live, tc.inUse, tc.percent, tc.limit); got != tc.want {
			t.Errorf("headroom(%d, %d, %d, %d) = %d, want %d", tc.live, tc.inUse, tc.percent, tc.limit, got, tc.want)
		}
	}
}

// TestTouchHeadroomLeavesPagesToAllocate: after touchHeadroom the heap
// holds its headroom as free memory backed by pages (not returned to the
// system), and the collection percentage is as it was; without the race
// detector, also that the process's resident memory grew by it. It runs in a fresh
// process: in one that touched its headroom before (-count), the pages are
// resident already and the growth it measures is not there to see.
func TestTouchHeadroomLeavesPagesToAllocate(t *testing.T) {
	if os.Getenv(touchChild) == "" {
		cmd := exec.Command(os.Args[0], "-test.run=^TestTouchHeadroomLeavesPagesToAllocate$", "-test.count=1", "-test.v")
		cmd.Env = append(os.Environ(), touchChild+"=1")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("in a fresh process: %v\n%s", err, out)
		}
		return
	}
	defer debug.SetGCPercent(debug.SetGCPercent(50))
	live := make([]byte, 64<<20) // a heap mostly one long-lived block, like an index
	before := resident(t)
	n := touchHeadroom()
	after := resident(t)
	sample := []metrics.Sample{{Name: "/memory/classes/heap/free:bytes"}}
	metrics.Read(sample)
	runtime.KeepAlive(live)
	if n < 32<<20 {
		t.Fatalf("touched %d bytes; want at least half of the 64 MiB block", n)
	}
	if !raceDetector && after < before+n/2 { // under -race any allocation grows it
		t.Errorf("resident memory grew by %d bytes while touching %d; want the pages faulted in", int64(after)-int64(before), n)
	}
	if free := sample[0].Value.Uint64(); free < n/2 {
		t.Errorf("%d bytes free and backed after touching %d; want most of them kept", free, n)
	}
	if p := debug.SetGCPercent(50); p != 50 {
		t.Errorf("GOGC is %d after touchHeadroom; want it unchanged (50)", p)
	}
}

// touchChild marks the fresh process TestTouchHeadroomLeavesPagesToAllocate runs in.
const touchChild = "BIOMATCH_TOUCH_HEADROOM_CHILD"

// resident is this process's resident memory in bytes (Linux).
func resident(t *testing.T) uint64 {
	t.Helper()
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		t.Skipf("no /proc/self/statm: %v", err)
	}
	f := bytes.Fields(b)
	pages, err := strconv.ParseUint(string(f[1]), 10, 64)
	if err != nil {
		t.Fatalf("statm %q: %v", b, err)
	}
	return pages * uint64(os.Getpagesize())
}

package importfile

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"testing"
)

// openFiles counts this process's open file descriptors.
func openFiles(t *testing.T) int {
	t.Helper()
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skip("no /proc/self/fd here:", err)
	}
	return len(fds)
}

// TestOpenClosesItsFiles: a reader's Close closes every file Open opened
// (the .npy and its ids, or the JSONL), and an Open that fails leaves
// none open.
func TestOpenClosesItsFiles(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("counts descriptors in /proc")
	}
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	npy := write("m.npy", npyFile(2, 128))
	ids := write("ids.txt", []byte("a\nb\n"))
	jsonl := write("m.jsonl", []byte(`{"external_id":"a","embedding":[1,0]}`+"\n"))
	bad := write("bad.npy", []byte("not a matrix"))

	before := openFiles(t)
	for _, tc := range []struct {
		path, ids string
		files     int
	}{{npy, ids, 2}, {npy, "", 1}, {jsonl, "", 1}} {
		r, n, err := Open(tc.path, tc.ids)
		if err != nil || n == 0 {
			t.Fatalf("Open(%s, %q) = %d items, %v", tc.path, tc.ids, n, err)
		}
		if got := openFiles(t) - before; got != tc.files {
			t.Fatalf("Open(%s, %q) holds %d files, want %d", tc.path, tc.ids, got, tc.files)
		}
		if _, err := r.Next(); err != nil && !errors.Is(err, io.EOF) {
			t.Fatalf("Next: %v", err)
		}
		if err := r.Close(); err != nil {
			t.Fatal(err)
		}
		if got := openFiles(t) - before; got != 0 {
			t.Fatalf("after Close of %s: %d files still open", tc.path, got)
		}
	}
	for _, tc := range []struct{ path, ids string }{{bad, ""}, {npy, filepath.Join(dir, "missing.txt")}} {
		if _, _, err := Open(tc.path, tc.ids); err == nil {
			t.Fatalf("Open(%s, %q) succeeded", tc.path, tc.ids)
		}
		if got := openFiles(t) - before; got != 0 {
			t.Fatalf("failed Open(%s, %q) left %d files open", tc.path, tc.ids, got)
		}
	}
}

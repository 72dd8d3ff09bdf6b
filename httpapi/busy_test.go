package httpapi_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/biomatch/biomatch/client"
	"github.com/biomatch/biomatch/internal/synth"
)

// TestSearchesBeyondTheBoundAreRefusedInTime: with MAX_SEARCHES=1, a search
// held up (here by its audit entry, the audit table locked) keeps the only
// turn; another search is refused 503 after SEARCH_WAIT, with a message,
// while other routes answer; once the first finishes, searches are
// answered again.
func TestSearchesBeyondTheBoundAreRefusedInTime(t *testing.T) {
	h := newHarnessWith(t, options{env: map[string]string{"MAX_SEARCHES": "1", "SEARCH_WAIT": "300ms"}})
	key := h.newKey("acme")
	ctx := context.Background()
	must := mustOK(t)
	c := h.client(key, "", 2)
	c.Tries = 1 // the client retries a 503 by default
	const alice = 4242
	puid := must(c.Enroll(ctx, synth.Vector(512, alice, 0, 0), "")).PUID

	tx, err := h.pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, `LOCK TABLE audit_log IN ACCESS EXCLUSIVE MODE`); err != nil {
		t.Fatal(err)
	}
	first := make(chan client.Reply, 1)
	go func() {
		r, err := c.Predict(ctx, synth.Vector(512, alice, 0.3, 1), 0, "")
		if err != nil {
			t.Error(err)
		}
		first <- r
	}()
	eventually(t, "the first search to wait for the audit table", func() bool {
		var waiting int
		err := h.pool.QueryRow(ctx, `SELECT count(*) FROM pg_locks WHERE relation = 'audit_log'::regclass AND NOT granted`).Scan(&waiting)
		return err == nil && waiting > 0
	})

	began := time.Now()
	r, err := c.Predict(ctx, synth.Vector(512, alice, 0.3, 2), 0, "")
	if err != nil {
		t.Fatal(err)
	}
	waited := time.Since(began)
	if r.HTTPStatus != 503 || r.Status != -1 || !strings.Contains(r.Message, "server busy") {
		t.Errorf("a search beyond the bound answered %+v, want 503 server busy", r)
	}
	if waited < 300*time.Millisecond || waited > 4*time.Second {
		t.Errorf("refused after %s, want after its SEARCH_WAIT of 300ms and well inside 5 s", waited)
	}
	if status, m := h.post("/node/api-key/checkApiKeyValid", []byte(`{"api_key":"`+key+`"}`), nil); status != 200 {
		t.Errorf("checkApiKeyValid answered %d %v while the searches were busy, want 200", status, m)
	}

	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if r := <-first; r.HTTPStatus != 200 || r.PUID != puid {
		t.Errorf("the held search answered %+v, want 200 with %s", r, puid)
	}
	if r := must(c.Predict(ctx, synth.Vector(512, alice, 0.3, 3), 0, "")); r.HTTPStatus != 200 || r.PUID != puid {
		t.Errorf("a search after the turn freed answered %+v, want 200 with %s", r, puid)
	}
}

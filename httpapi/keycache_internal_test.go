package httpapi

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/biomatch/biomatch/engine"
)

// countingKeys is an in-memory KeyLookup that counts its lookups; gate
// holds BySecret until released, to line concurrent callers up.
type countingKeys struct {
	valid   map[string]engine.Key
	lookups atomic.Int64
	gate    chan struct{}
}

func (k *countingKeys) UseSession(context.Context, string) error { return nil }

func (k *countingKeys) BySecret(ctx context.Context, secret string) (engine.Key, error) {
	k.lookups.Add(1)
	if k.gate != nil {
		<-k.gate
	}
	if key, ok := k.valid[secret]; ok {
		return key, nil
	}
	return engine.Key{}, engine.ErrNotFound
}

func (k *countingKeys) ByID(ctx context.Context, id string) (engine.Key, []byte, error) {
	k.lookups.Add(1)
	for _, key := range k.valid {
		if key.ID == id {
			return key, []byte("secret"), nil
		}
	}
	return engine.Key{}, nil, engine.ErrNotFound
}

// TestKeyCacheHoldsValidKeysOnly: a flood of unknown keys is never cached,
// so it cannot evict a valid key (which then costs no lookup), and the
// cache stays bounded.
func TestKeyCacheHoldsValidKeysOnly(t *testing.T) {
	store := &countingKeys{valid: map[string]engine.Key{"bm_valid-key-0000000001": {ID: "k1", Status: "active"}}}
	c := newKeyCache(store, time.Minute)
	ctx := context.Background()
	if _, err := c.bySecret(ctx, "bm_valid-key-0000000001"); err != nil {
		t.Fatal(err)
	}
	for i := range 3 * keyCacheSize {
		if _, err := c.bySecret(ctx, fmt.Sprintf("bm_guess-%08d", i)); err == nil {
			t.Fatal("a guessed key was accepted")
		}
	}
	if n := c.len(); n != 1 {
		t.Errorf("after %d unknown keys the cache holds %d entries, want 1 (the valid key)", 3*keyCacheSize, n)
	}
	before := store.lookups.Load()
	if k, err := c.bySecret(ctx, "bm_valid-key-0000000001"); err != nil || k.ID != "k1" {
		t.Fatalf("valid key after the flood = %+v, %v", k, err)
	}
	if got := store.lookups.Load() - before; got != 0 {
		t.Errorf("the valid key cost %d lookups after the flood, want 0 (cached)", got)
	}
}

// TestKeyCacheSharesConcurrentLookups: many requests with one key at once
// make one lookup.
func TestKeyCacheSharesConcurrentLookups(t *testing.T) {
	store := &countingKeys{valid: map[string]engine.Key{"bm_valid-key-0000000001": {ID: "k1", Status: "active"}},
		gate: make(chan struct{})}
	c := newKeyCache(store, time.Minute)
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			if _, err := c.bySecret(context.Background(), "bm_valid-key-0000000001"); err != nil {
				t.Error(err)
			}
		})
	}
	for store.lookups.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(20 * time.Millisecond) // the others join the one lookup in flight
	close(store.gate)
	wg.Wait()
	// Without sharing, all 20 would be waiting in the store by now. (One
	// goroutine descheduled for the whole 20 ms between its cache miss and
	// joining may make a second lookup: allowed, so the test cannot flake.)
	if n := store.lookups.Load(); n > 2 {
		t.Errorf("20 concurrent requests made %d lookups, want 1", n)
	}
}

// TestKeyCacheExpires: a revoked key stops working within the TTL.
func TestKeyCacheExpires(t *testing.T) {
	store := &countingKeys{valid: map[string]engine.Key{"bm_valid-key-0000000001": {ID: "k1", Status: "active"}}}
	c := newKeyCache(store, 50*time.Millisecond)
	ctx := context.Background()
	if _, err := c.bySecret(ctx, "bm_valid-key-0000000001"); err != nil {
		t.Fatal(err)
	}
	delete(store.valid, "bm_valid-key-0000000001") // revoked
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, err := c.bySecret(ctx, "bm_valid-key-0000000001"); err != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("a revoked key still works after 5 s (TTL 50 ms)")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

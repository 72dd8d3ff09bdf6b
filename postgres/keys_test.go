package postgres_test

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/biomatch/biomatch/crypto"
	"github.com/biomatch/biomatch/engine"
	"github.com/biomatch/biomatch/internal/testenv"
	"github.com/biomatch/biomatch/postgres"
)

func TestKeys(t *testing.T) {
	pool := testenv.NewPool(t)
	s := postgres.NewKeys(pool, bytes.Repeat([]byte{9}, 32))
	ctx := context.Background()

	secret, k, err := s.Create(ctx, postgres.KeyOptions{CustomerID: "acme", ProductCode: "face"})
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.BySecret(ctx, secret)
	if err != nil || got.ID != k.ID || got.CustomerID != "acme" || got.ProductCode != "face" {
		t.Fatalf("BySecret = %+v, %v", got, err)
	}
	var stored []byte
	if err := pool.QueryRow(ctx, `SELECT key_hash FROM api_keys WHERE id = $1`, k.ID).Scan(&stored); err != nil {
		t.Fatal(err)
	}
	if string(stored) == secret || len(stored) != 32 {
		t.Errorf("stored key = %d bytes, want a SHA-256", len(stored))
	}

	if got, sec, err := s.ByID(ctx, k.ID); err != nil || got.ID != k.ID || !bytes.Equal(sec, crypto.V3Secret(secret)) {
		t.Errorf("ByID = %v, %v: want the key's derived secret", got.ID, err)
	}
	var sealed []byte
	pool.QueryRow(ctx, `SELECT secret_sealed FROM api_keys WHERE id = $1`, k.ID).Scan(&sealed)
	if len(sealed) == 0 || bytes.Contains(sealed, crypto.V3Secret(secret)) {
		t.Error("the v3 secret is not stored sealed")
	}
	if _, err := s.BySecret(ctx, secret+"x"); !errors.Is(err, engine.ErrNotFound) {
		t.Errorf("BySecret(wrong) error = %v, want ErrNotFound", err)
	}
	imported, err := s.Import(ctx, "cryptonets-existing-key-0001", postgres.KeyOptions{CustomerID: "legacy"})
	if err != nil || imported.Prefix != "cryptone" {
		t.Fatalf("Import = %+v, %v", imported, err)
	}
	if _, err := s.Import(ctx, "cryptonets-existing-key-0001", postgres.KeyOptions{CustomerID: "legacy"}); !errors.Is(err, engine.ErrConflict) {
		t.Errorf("Import twice error = %v, want ErrConflict", err)
	}
	if _, err := s.Import(ctx, "short", postgres.KeyOptions{CustomerID: "legacy"}); !errors.Is(err, engine.ErrInvalid) {
		t.Errorf("Import(short) error = %v, want ErrInvalid", err)
	}
	if list, err := s.List(ctx, "legacy"); err != nil || len(list) != 1 || list[0].ID != imported.ID {
		t.Errorf("List(legacy) = %+v, %v", list, err)
	}
	// Keys sharing a display prefix are told apart by their hashes.
	twin, err := s.Import(ctx, "cryptonets-existing-key-0002", postgres.KeyOptions{CustomerID: "twin"})
	if err != nil || twin.Prefix != imported.Prefix {
		t.Fatalf("Import(twin) = %+v, %v", twin, err)
	}
	for secret, want := range map[string]string{"cryptonets-existing-key-0001": imported.ID, "cryptonets-existing-key-0002": twin.ID} {
		if got, err := s.BySecret(ctx, secret); err != nil || got.ID != want {
			t.Errorf("BySecret(%s) = %s, %v; want %s", secret, got.ID, err, want)
		}
	}
	if _, err := s.BySecret(ctx, "cryptonets-existing-key-0003"); !errors.Is(err, engine.ErrNotFound) {
		t.Errorf("BySecret(same prefix, unknown) error = %v, want ErrNotFound", err)
	}

	if _, err := s.Revoke(ctx, k.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.BySecret(ctx, secret); !errors.Is(err, engine.ErrNotFound) {
		t.Errorf("BySecret after revoke: error = %v, want ErrNotFound", err)
	}
	if _, _, err := s.ByID(ctx, k.ID); !errors.Is(err, engine.ErrNotFound) {
		t.Errorf("ByID after revoke: error = %v, want ErrNotFound", err)
	}
	if _, _, err := s.ByID(ctx, "not-a-uuid"); !errors.Is(err, engine.ErrNotFound) {
		t.Errorf("ByID(not a uuid) error = %v, want ErrNotFound", err)
	}
	if _, err := s.Revoke(ctx, "no-such-key"); !errors.Is(err, engine.ErrNotFound) {
		t.Errorf("Revoke(unknown) error = %v, want ErrNotFound", err)
	}
	var audits int
	pool.QueryRow(ctx, `SELECT count(*) FROM audit_log WHERE action LIKE 'key.%'`).Scan(&audits)
	if audits != 4 {
		t.Errorf("key audit rows = %d, want 4 (3 creates, 1 revoke)", audits)
	}
}

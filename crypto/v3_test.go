package crypto

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"testing"
)

// The v3 test vector documented in README.md: api key test-api-key-0001,
// POST /node/FACE3_1/predict at ts 1700000000, nonce 000102…0b; computed
// independently with Python's cryptography package (HMAC, HKDF, AES-GCM).
const (
	v3Plain    = `{"K":1,"features":{"type":"face","embedding_vector":[0.5,-0.25]}}`
	v3Envelope = "AAECAwQFBgcICQoLRpCzFLsfAajyyKLiqQJvJBh0mYYO3C4GJwYNmFuMPZZ8B2v6OW0r6t3ATuXPjoKwweNOhTsKKh4jGA9Z1z5S14YD2LikwD0-FBouPWQNdm6e"
)

func TestV3Vector(t *testing.T) {
	secret := V3Secret(vecKey)
	if got := hex.EncodeToString(secret); got == "" {
		t.Fatal("no secret")
	}
	nonce := []byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}
	env, _, err := sealV3(secret, requestAAD("POST", "/node/FACE3_1/predict", 1700000000), nonce, []byte(v3Plain))
	if err != nil {
		t.Fatal(err)
	}
	if env != v3Envelope {
		t.Errorf("sealV3 = %s, want the documented %s", env, v3Envelope)
	}
	plain, n, err := OpenV3Request(secret, "POST", "/node/FACE3_1/predict", 1700000000, v3Envelope)
	if err != nil || string(plain) != v3Plain || n != base64.RawURLEncoding.EncodeToString(nonce) {
		t.Errorf("OpenV3Request(vector) = %q, %s, %v", plain, n, err)
	}
}

func TestV3Binds(t *testing.T) {
	secret := V3Secret("k-000000000000000000")
	env, nonce, err := SealV3Request(secret, "POST", "/node/FACE3_1/enroll", 100, []byte("hello"))
	if err != nil {
		t.Fatal(err)
	}
	if plain, n, err := OpenV3Request(secret, "POST", "/node/FACE3_1/enroll", 100, env); err != nil || string(plain) != "hello" || n != nonce {
		t.Fatalf("round trip = %q, %v", plain, err)
	}
	raw, _ := base64.RawURLEncoding.DecodeString(env)
	raw[len(raw)-1] ^= 1
	flipped := base64.RawURLEncoding.EncodeToString(raw)
	for name, open := range map[string]func() error{
		"another path": func() error {
			_, _, err := OpenV3Request(secret, "POST", "/node/FACE3_1/predict", 100, env)
			return err
		},
		"another method": func() error { _, _, err := OpenV3Request(secret, "PUT", "/node/FACE3_1/enroll", 100, env); return err },
		"another time":   func() error { _, _, err := OpenV3Request(secret, "POST", "/node/FACE3_1/enroll", 101, env); return err },
		"another key": func() error {
			_, _, err := OpenV3Request(V3Secret("other"), "POST", "/node/FACE3_1/enroll", 100, env)
			return err
		},
		"a flipped bit": func() error {
			_, _, err := OpenV3Request(secret, "POST", "/node/FACE3_1/enroll", 100, flipped)
			return err
		},
		"garbage": func() error {
			_, _, err := OpenV3Request(secret, "POST", "/node/FACE3_1/enroll", 100, "!!")
			return err
		},
		"truncated": func() error {
			_, _, err := OpenV3Request(secret, "POST", "/node/FACE3_1/enroll", 100, env[:20])
			return err
		},
	} {
		if err := open(); !errors.Is(err, ErrSealed) {
			t.Errorf("%s: error %v, want ErrSealed", name, err)
		}
	}
	reply, err := SealV3Response(secret, nonce, 200, []byte("ok"))
	if err != nil {
		t.Fatal(err)
	}
	if got, err := OpenV3Response(secret, nonce, 200, reply); err != nil || string(got) != "ok" {
		t.Errorf("reply round trip = %q, %v", got, err)
	}
	if _, err := OpenV3Response(secret, "another-nonce", 200, reply); !errors.Is(err, ErrSealed) {
		t.Errorf("a reply opened for another request: %v", err)
	}
	if _, err := OpenV3Response(secret, nonce, 500, reply); !errors.Is(err, ErrSealed) {
		t.Errorf("a reply opened under another status: %v", err)
	}
}

func TestSealSecret(t *testing.T) {
	master := bytes.Repeat([]byte{7}, 32)
	sealed, err := SealSecret(master, []byte("secret"))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(sealed, []byte("secret")) {
		t.Error("the sealed secret holds it in clear")
	}
	if got, err := OpenSecret(master, sealed); err != nil || string(got) != "secret" {
		t.Errorf("OpenSecret = %q, %v", got, err)
	}
	if _, err := OpenSecret(bytes.Repeat([]byte{8}, 32), sealed); !errors.Is(err, ErrSealed) {
		t.Errorf("another master key opened it: %v", err)
	}
}

func FuzzOpenV3(f *testing.F) {
	f.Add(v3Envelope, "/node/FACE3_1/predict", int64(1700000000))
	f.Fuzz(func(t *testing.T, env, path string, ts int64) {
		OpenV3Request(V3Secret(vecKey), "POST", path, ts, env) // must not panic
	})
}

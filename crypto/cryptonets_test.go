package crypto

import (
	"errors"
	"strings"
	"testing"
	"time"
)

const vecKey = "test-api-key-0001"

var vecTime = time.UnixMilli(0x0000018c0d3a9000)

// COMPAT.md test vectors.
var vectors = []struct {
	plain  string
	v      Version
	cipher string
}{
	{"PUID-0001", V1, "07D92A4FD49BBCB56D0FB951709572D163"},
	{"PUID-0001", V2, "07685CB44E3E008E2DB969596BFE5CAF3A30303030303138633064336139303030"},
	{`{"type":"face","embedding_vector":[0.5,-0.25]}`, V2, "029CF4763FBFFE9AE7784D38A6423BDA2F18928C7C3992A2E8A0AD963B5DFDAA816E376E57FDA84AECBBB095498FBCFE3C30303030303138633064336139303030"},
}

func TestCompatVectors(t *testing.T) {
	for _, tc := range vectors {
		got, err := Encrypt(tc.v, vecKey, []byte(tc.plain), vecTime)
		if err != nil || strings.ToUpper(got) != tc.cipher {
			t.Errorf("Encrypt(v%d, %q) = %s, %v; want %s", tc.v, tc.plain, got, err, tc.cipher)
		}
		for _, text := range []string{tc.cipher, strings.ToLower(tc.cipher)} {
			plain, err := Decrypt(tc.v, vecKey, text)
			if err != nil || string(plain) != tc.plain {
				t.Errorf("Decrypt(v%d, %s) = %q, %v; want %q", tc.v, text, plain, err, tc.plain)
			}
		}
	}
}

func TestRoundTrip(t *testing.T) {
	for _, v := range []Version{V1, V2} {
		for n := 0; n <= 40; n++ {
			plain := strings.Repeat("x", n)
			c, err := Encrypt(v, "k", []byte(plain), time.Now())
			if err != nil {
				t.Fatal(err)
			}
			got, err := Decrypt(v, "k", c)
			if err != nil || string(got) != plain {
				t.Errorf("round trip v%d len %d = %q, %v", v, n, got, err)
			}
		}
	}
}

func TestDecryptMalformed(t *testing.T) {
	good := vectors[1].cipher
	cases := map[string]string{
		"empty":       "",
		"odd length":  good[:len(good)-1],
		"not hex":     "ZZ" + good[2:],
		"truncated":   good[:20],
		"pad too big": "FF" + good[2:],
		"pad only":    "05",
	}
	for name, text := range cases {
		for _, v := range []Version{V1, V2} {
			if _, err := Decrypt(v, vecKey, text); !errors.Is(err, ErrCiphertext) {
				t.Errorf("%s: Decrypt(v%d) error = %v, want ErrCiphertext", name, v, err)
			}
		}
	}
}

func TestDecryptWrongKeyIsDetectedByPadding(t *testing.T) {
	// PUID-0001 has 7 pad bytes: a wrong key leaves them non-zero with
	// probability 1 - 2^-56.
	if _, err := Decrypt(V2, "another-key", vectors[1].cipher); !errors.Is(err, ErrCiphertext) {
		t.Errorf("Decrypt under wrong key: error = %v, want ErrCiphertext", err)
	}
}

func TestParseVersion(t *testing.T) {
	for in, want := range map[string]Version{"": V1, "1": V1, "2": V2, "3": V3} {
		if got, err := ParseVersion(in); got != want || err != nil {
			t.Errorf("ParseVersion(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"0", "4", "v2", " 2", "abc"} {
		if _, err := ParseVersion(in); !errors.Is(err, ErrVersion) {
			t.Errorf("ParseVersion(%q) error = %v, want ErrVersion", in, err)
		}
	}
}

func TestAPIKeyHash(t *testing.T) {
	k := NewAPIKey()
	if !strings.HasPrefix(k, "bm_") || len(k) != 55 {
		t.Fatalf("NewAPIKey() = %q", k)
	}
	if k == NewAPIKey() {
		t.Fatal("NewAPIKey repeats")
	}
	h := HashAPIKey(k)
	if !HashMatches(k, h) || HashMatches(k+"x", h) {
		t.Error("HashMatches disagrees with HashAPIKey")
	}
	if KeyPrefix(k) != k[:8] {
		t.Errorf("KeyPrefix = %q", KeyPrefix(k))
	}
}

func FuzzDecrypt(f *testing.F) {
	for _, tc := range vectors {
		f.Add(int(tc.v), tc.cipher)
	}
	f.Add(2, "00")
	f.Fuzz(func(t *testing.T, v int, text string) {
		plain, err := Decrypt(Version(v), vecKey, text)
		if err != nil {
			return
		}
		// Whatever decrypts must re-encrypt to a ciphertext that opens to it.
		c, err := Encrypt(Version(v), vecKey, plain, vecTime)
		if err != nil {
			t.Fatalf("Encrypt after Decrypt: %v", err)
		}
		again, err := Decrypt(Version(v), vecKey, c)
		if err != nil || string(again) != string(plain) {
			t.Fatalf("re-encrypt round trip = %q, %v", again, err)
		}
	})
}

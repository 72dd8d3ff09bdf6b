package crypto

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
)

// KeyPrefixLen is how many leading characters of an API key are kept in
// clear for display (`biomatch apikey list`, logs).
const KeyPrefixLen = 8

// NewAPIKey returns a fresh random API key: "bm_" and 52 base32 characters
// (256 bits from crypto/rand).
func NewAPIKey() string {
	return "bm_" + rand.Text() + rand.Text()
}

// HashAPIKey returns the SHA-256 of key: what is stored, never the key.
func HashAPIKey(key string) []byte {
	h := sha256.Sum256([]byte(key))
	return h[:]
}

// KeyPrefix returns the display prefix of key.
func KeyPrefix(key string) string {
	if len(key) <= KeyPrefixLen {
		return key
	}
	return key[:KeyPrefixLen]
}

// HashMatches reports, in constant time, whether key hashes to stored.
func HashMatches(key string, stored []byte) bool {
	return subtle.ConstantTimeCompare(HashAPIKey(key), stored) == 1
}

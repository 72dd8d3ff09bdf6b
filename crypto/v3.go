package crypto

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
)

// V3 is biomatch's own, authenticated version: no key in the body,
// AES-256-GCM under a key derived (HKDF-SHA256) from a per-key secret, the
// additional data binding direction, method, path and timestamp, and a
// random nonce the server refuses to see twice. The reply is sealed the
// same way and bound to the request's nonce.
const V3 Version = 3

// ErrSealed reports a V3 envelope that does not open: malformed, tampered,
// under another key, or bound to another method, path or time.
var ErrSealed = errors.New("sealed payload does not open")

const nonceSize = 12

// V3Secret derives the per-key secret from a clear API key. The client
// computes it; the server computes it once, when the key is created or
// imported, and keeps it only sealed under its master key.
func V3Secret(apiKey string) []byte {
	m := hmac.New(sha256.New, []byte(apiKey))
	m.Write([]byte("biomatch v3 secret"))
	return m.Sum(nil)
}

// SealV3Request seals a request body for method and path at unix time ts
// and returns the envelope (base64url of nonce ‖ ciphertext) and the nonce.
func SealV3Request(secret []byte, method, path string, ts int64, plaintext []byte) (envelope, nonce string, err error) {
	n := make([]byte, nonceSize)
	rand.Read(n)
	return sealV3(secret, requestAAD(method, path, ts), n, plaintext)
}

// OpenV3Request opens a request envelope and returns the plaintext and its
// nonce (for the replay check). Errors wrap ErrSealed.
func OpenV3Request(secret []byte, method, path string, ts int64, envelope string) (plaintext []byte, nonce string, err error) {
	return openV3(secret, requestAAD(method, path, ts), envelope)
}

// SealV3Response seals a reply to the request whose nonce is requestNonce.
func SealV3Response(secret []byte, requestNonce string, status int, plaintext []byte) (string, error) {
	n := make([]byte, nonceSize)
	rand.Read(n)
	env, _, err := sealV3(secret, responseAAD(requestNonce, status), n, plaintext)
	return env, err
}

// OpenV3Response opens a reply envelope to the request with requestNonce.
func OpenV3Response(secret []byte, requestNonce string, status int, envelope string) ([]byte, error) {
	plain, _, err := openV3(secret, responseAAD(requestNonce, status), envelope)
	return plain, err
}

func requestAAD(method, path string, ts int64) []byte {
	return []byte("biomatch/v3 request\n" + method + "\n" + path + "\n" + strconv.FormatInt(ts, 10))
}

func responseAAD(requestNonce string, status int) []byte {
	return []byte("biomatch/v3 response\n" + requestNonce + "\n" + strconv.Itoa(status))
}

func v3AEAD(secret []byte, info string) (cipher.AEAD, error) {
	key, err := hkdf.Key(sha256.New, secret, nil, info, 32)
	if err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

func sealV3(secret, aad, nonce, plaintext []byte) (string, string, error) {
	aead, err := v3AEAD(secret, "biomatch v3 aes-256-gcm")
	if err != nil {
		return "", "", err
	}
	out := aead.Seal(append([]byte(nil), nonce...), nonce, plaintext, aad)
	return base64.RawURLEncoding.EncodeToString(out), base64.RawURLEncoding.EncodeToString(nonce), nil
}

func openV3(secret, aad []byte, envelope string) ([]byte, string, error) {
	raw, err := base64.RawURLEncoding.DecodeString(envelope)
	if err != nil || len(raw) < nonceSize+16 {
		return nil, "", fmt.Errorf("%w: not base64url of nonce and ciphertext", ErrSealed)
	}
	aead, err := v3AEAD(secret, "biomatch v3 aes-256-gcm")
	if err != nil {
		return nil, "", err
	}
	plain, err := aead.Open(nil, raw[:nonceSize], raw[nonceSize:], aad)
	if err != nil {
		return nil, "", fmt.Errorf("%w: authentication failed (tampered, another key, method, path or time)", ErrSealed)
	}
	return plain, base64.RawURLEncoding.EncodeToString(raw[:nonceSize]), nil
}

// SealSecret seals a per-key secret under the server's 32-byte master key.
func SealSecret(master, secret []byte) ([]byte, error) {
	aead, err := masterAEAD(master)
	if err != nil {
		return nil, err
	}
	n := make([]byte, aead.NonceSize())
	rand.Read(n)
	return aead.Seal(n, n, secret, []byte("biomatch key secret")), nil
}

// OpenSecret opens a per-key secret sealed by SealSecret.
func OpenSecret(master, sealed []byte) ([]byte, error) {
	aead, err := masterAEAD(master)
	if err != nil {
		return nil, err
	}
	if len(sealed) < aead.NonceSize() {
		return nil, ErrSealed
	}
	plain, err := aead.Open(nil, sealed[:aead.NonceSize()], sealed[aead.NonceSize():], []byte("biomatch key secret"))
	if err != nil {
		return nil, fmt.Errorf("%w: key secret (wrong MASTER_KEY?)", ErrSealed)
	}
	return plain, nil
}

func masterAEAD(master []byte) (cipher.AEAD, error) {
	if len(master) != 32 {
		return nil, fmt.Errorf("master key must be 32 bytes, got %d", len(master))
	}
	block, _ := aes.NewCipher(master)
	return cipher.NewGCM(block)
}

// Package crypto owns the payload codecs of the CryptoNets /node API
// (encryption versions 1 and 2, COMPAT.md) and API-key hashing.
//
// Versions 1 and 2 are obfuscation, not protection: the AES key derives from
// the api_key that travels in the same body. They carry no integrity, so a
// wrong key yields garbage, which callers must detect from what follows.
// This package does not know about HTTP, JSON payload shapes or storage.
package crypto

import (
	"bytes"
	"crypto/aes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"time"
)

// Version is a CryptoNets payload encryption version (x-encryption-version).
type Version int

// The supported compatibility versions.
const (
	V1 Version = 1 // AES-256-ECB, key = SHA-256(api_key)
	V2 Version = 2 // AES-256-ECB, key = SHA-256(api_key ‖ ts), ts appended
)

// ErrCiphertext reports a ciphertext that is not well formed: not hex, odd
// length, truncated, or with a pad that does not decode.
var ErrCiphertext = errors.New("malformed ciphertext")

// ErrVersion reports an encryption version this package does not speak.
var ErrVersion = errors.New("unsupported encryption version")

const tsLen = 16 // "%016x" of unix milliseconds

// ParseVersion maps an x-encryption-version header value to a Version.
// An empty value means version 1, as the CryptoNets document says.
func ParseVersion(header string) (Version, error) {
	switch header {
	case "", "1":
		return V1, nil
	case "2":
		return V2, nil
	case "3":
		return V3, nil
	}
	return 0, fmt.Errorf("%w %q: use 1, 2 or 3", ErrVersion, header)
}

// Encrypt seals plaintext for apiKey in version v and returns upper-case hex,
// as the SDKs send it. now gives version 2 its timestamp.
func Encrypt(v Version, apiKey string, plaintext []byte, now time.Time) (string, error) {
	switch v {
	case V1:
		return hex.EncodeToString(seal(sha256.Sum256([]byte(apiKey)), plaintext, nil)), nil
	case V2:
		ts := fmt.Appendf(nil, "%016x", now.UnixMilli())
		return hex.EncodeToString(seal(v2Key(apiKey, ts), plaintext, ts)), nil
	}
	return "", fmt.Errorf("%w %d", ErrVersion, v)
}

// Decrypt opens a hex ciphertext (either case) of version v under apiKey.
// It returns ErrCiphertext when the text is malformed. A well-formed
// ciphertext under another key decrypts to garbage without error, unless the
// zero padding betrays it.
func Decrypt(v Version, apiKey, text string) ([]byte, error) {
	raw, err := hex.DecodeString(text)
	if errors.Is(err, hex.ErrLength) {
		return nil, fmt.Errorf("%w: odd number of hex digits", ErrCiphertext)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: not hex", ErrCiphertext)
	}
	var key [32]byte
	switch v {
	case V1:
		key = sha256.Sum256([]byte(apiKey))
	case V2:
		if len(raw) < 1+tsLen {
			return nil, fmt.Errorf("%w: too short", ErrCiphertext)
		}
		ts := raw[len(raw)-tsLen:]
		raw = raw[:len(raw)-tsLen]
		key = v2Key(apiKey, ts)
	default:
		return nil, fmt.Errorf("%w %d", ErrVersion, v)
	}
	return open(key, raw)
}

func v2Key(apiKey string, ts []byte) [32]byte {
	return sha256.Sum256(append([]byte(apiKey), ts...))
}

// seal returns padLen ‖ AES-256-ECB(plaintext ‖ zeros) ‖ suffix.
func seal(key [32]byte, plaintext, suffix []byte) []byte {
	block, _ := aes.NewCipher(key[:]) // a 32-byte key cannot fail
	padLen := (aes.BlockSize - len(plaintext)%aes.BlockSize) % aes.BlockSize
	body := make([]byte, len(plaintext)+padLen)
	copy(body, plaintext)
	out := make([]byte, 1, 1+len(body)+len(suffix))
	out[0] = byte(padLen)
	for i := 0; i < len(body); i += aes.BlockSize {
		block.Encrypt(body[i:i+aes.BlockSize], body[i:i+aes.BlockSize])
	}
	out = append(out, body...)
	return append(out, suffix...)
}

// open reverses seal without the suffix.
func open(key [32]byte, raw []byte) ([]byte, error) {
	if len(raw) < 1 || (len(raw)-1)%aes.BlockSize != 0 {
		return nil, fmt.Errorf("%w: length is not a whole number of blocks", ErrCiphertext)
	}
	padLen := int(raw[0])
	if padLen >= aes.BlockSize || padLen > len(raw)-1 {
		return nil, fmt.Errorf("%w: bad pad length", ErrCiphertext)
	}
	block, _ := aes.NewCipher(key[:])
	body := make([]byte, len(raw)-1)
	for i := 0; i < len(body); i += aes.BlockSize {
		block.Decrypt(body[i:i+aes.BlockSize], raw[1+i:1+i+aes.BlockSize])
	}
	plain, pad := body[:len(body)-padLen], body[len(body)-padLen:]
	if !bytes.Equal(pad, make([]byte, padLen)) {
		return nil, fmt.Errorf("%w: padding does not decode (wrong key?)", ErrCiphertext)
	}
	return plain, nil
}

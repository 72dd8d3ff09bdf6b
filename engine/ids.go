package engine

import "crypto/rand"

const base62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

// NewID returns a random identifier shaped like CryptoNets' puid and guid:
// base62 groups of 8-4-4-4-12 characters (190 bits from crypto/rand).
func NewID() string {
	const n = 32
	var raw [n]byte
	out := make([]byte, 0, n+4)
	for i := 0; i < n; {
		rand.Read(raw[:])
		for _, b := range raw {
			if b >= 248 { // 248 = 4×62: reject to stay uniform
				continue
			}
			if i == 8 || i == 12 || i == 16 || i == 20 {
				out = append(out, '-')
			}
			out = append(out, base62[b%62])
			i++
			if i == n {
				break
			}
		}
	}
	return string(out)
}

// IsID reports whether s has the shape NewID produces.
func IsID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case i == 8 || i == 13 || i == 18 || i == 23:
			if c != '-' {
				return false
			}
		case '0' <= c && c <= '9', 'A' <= c && c <= 'Z', 'a' <= c && c <= 'z':
		default:
			return false
		}
	}
	return true
}

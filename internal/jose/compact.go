package jose

import (
	"strings"
	"unsafe"
)

// SplitCompact splits a compact JWS into its three base64url parts. It
// refuses any byte outside the base64url alphabet and the dot, empty
// parts, and non-canonical base64url (a last character with unused bits
// set, or a length no encoding has): every token has exactly one
// spelling, so no variant of a token can be told apart from it by a cache
// or a log. dots is the number of dots when every byte is of the alphabet
// (four is a JWE), and -1 otherwise.
func SplitCompact(tok string) (header, payload, sig string, dots int, ok bool) {
	for i := 0; i < len(tok); i++ {
		c := tok[i]
		switch {
		case c == '.':
			dots++
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '-', c == '_':
		default:
			return "", "", "", -1, false
		}
	}
	if dots != 2 {
		return "", "", "", dots, false
	}
	i := strings.IndexByte(tok, '.')
	j := i + 1 + strings.IndexByte(tok[i+1:], '.')
	header, payload, sig = tok[:i], tok[i+1:j], tok[j+1:]
	if header == "" || payload == "" || sig == "" || !Canonical(header) || !Canonical(payload) || !Canonical(sig) {
		return "", "", "", dots, false
	}
	return header, payload, sig, dots, true
}

// Canonical reports whether s, made of base64url characters, is the one
// unpadded encoding of its bytes: its length leaves no lone character and
// the bits of its last character beyond the data are zero (RFC 4648 §3.5).
func Canonical(s string) bool {
	if s == "" {
		return true
	}
	last := strings.IndexByte(alphabet, s[len(s)-1])
	switch len(s) % 4 {
	case 1:
		return false
	case 2:
		return last&0x0f == 0
	case 3:
		return last&0x03 == 0
	}
	return true
}

const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

// bytesOf views a string's bytes without copying; callers only read them.
func bytesOf(s string) []byte { return unsafe.Slice(unsafe.StringData(s), len(s)) }

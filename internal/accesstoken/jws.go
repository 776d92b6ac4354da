package accesstoken

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/lestrrat-go/jwx/v3/jws"
)

// Limits on what a token may make a verifier read.
const (
	// MaxTokenSize caps a token: a longer one is refused before anything
	// in it is decoded.
	MaxTokenSize = 8 << 10

	// maxHeaderFields caps the members of a token's protected header.
	maxHeaderFields = 32

	// maxKIDLength caps a kid; longer ones cannot name a key of ours.
	maxKIDLength = 256
)

// splitCompact splits a compact JWS into its three base64url parts. It
// refuses the other JOSE forms (JWE with five parts, the JSON
// serializations), any byte outside the base64url alphabet, and
// non-canonical base64url (a last character with unused bits set, or a
// length no encoding has): every token has exactly one spelling, so no
// variant of a token can be told apart from it by a cache or a log.
func splitCompact(tok string) (header, payload, sig string, err error) {
	if tok[0] == '{' {
		return "", "", "", ErrNotCompact
	}
	dots := 0
	for i := 0; i < len(tok); i++ {
		c := tok[i]
		switch {
		case c == '.':
			dots++
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '-', c == '_':
		default:
			return "", "", "", ErrMalformed
		}
	}
	switch dots {
	case 2:
	case 4:
		return "", "", "", ErrEncrypted
	default:
		return "", "", "", ErrMalformed
	}
	i := strings.IndexByte(tok, '.')
	j := i + 1 + strings.IndexByte(tok[i+1:], '.')
	header, payload, sig = tok[:i], tok[i+1:j], tok[j+1:]
	if header == "" || payload == "" || sig == "" || !canonical(header) || !canonical(payload) || !canonical(sig) {
		return "", "", "", ErrMalformed
	}
	return header, payload, sig, nil
}

// canonical reports whether s, made of base64url characters, is the one
// unpadded encoding of its bytes: its length leaves no lone character and
// the bits of its last character beyond the data are zero (RFC 4648 §3.5).
func canonical(s string) bool {
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

// header is what is read of a protected header. The key sources a header
// may name (jku, x5u, jwk, x5c) are deliberately not read: keys come from
// the configured issuer only.
type header struct {
	Alg     string
	KID     string
	Typ     string
	HasCrit bool
	HasB64  bool
}

// parseHeader decodes a protected header. It refuses duplicate members (a
// classic source of parser disagreement), non-string alg/kid/typ, and more
// than maxHeaderFields members. Member names match exactly.
func parseHeader(enc string) (header, error) {
	var h header
	raw, err := base64.RawURLEncoding.DecodeString(enc)
	if err != nil {
		return h, ErrMalformed
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return h, ErrMalformed
	}
	seen := make(map[string]bool, 4)
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return h, ErrMalformed
		}
		name, ok := t.(string)
		if !ok || seen[name] || len(seen) >= maxHeaderFields {
			return h, ErrMalformed
		}
		seen[name] = true
		var val json.RawMessage
		if err := dec.Decode(&val); err != nil {
			return h, ErrMalformed
		}
		switch name {
		case "alg":
			if err := json.Unmarshal(val, &h.Alg); err != nil {
				return h, ErrMalformed
			}
		case "kid":
			if err := json.Unmarshal(val, &h.KID); err != nil || len(h.KID) > maxKIDLength {
				return h, ErrMalformed
			}
		case "typ":
			if err := json.Unmarshal(val, &h.Typ); err != nil {
				return h, ErrMalformed
			}
		case "crit":
			h.HasCrit = true
		case "b64":
			h.HasB64 = true
		}
	}
	if t, err := dec.Token(); err != nil || t != json.Delim('}') {
		return h, ErrMalformed
	}
	if _, err := dec.Token(); err != io.EOF {
		return h, ErrMalformed // trailing data after the object
	}
	if h.Alg == "" {
		return h, ErrMalformed
	}
	return h, nil
}

// isAccessTokenTyp reports whether typ marks an RFC 9068 access token.
func isAccessTokenTyp(typ string) bool {
	return strings.EqualFold(typ, "at+jwt") || strings.EqualFold(typ, "application/at+jwt")
}

// maxCachedHeaders bounds the parsed-header cache; when it is full it is
// emptied and refilled.
const maxCachedHeaders = 64

// headers caches parseHeader by the encoded header. An issuer signs all its
// tokens with a few headers (one per key), so the JSON is parsed once per
// key instead of once per token. Only headers of tokens whose signature
// verified are added, so forged tokens cannot fill it.
var headers struct {
	m atomic.Pointer[sync.Map] // encoded header -> header
	n atomic.Int32
}

func lookupHeader(enc string) (header, bool) {
	if m := headers.m.Load(); m != nil {
		if v, ok := m.Load(enc); ok {
			return v.(header), true
		}
	}
	return header{}, false
}

func rememberHeader(enc string, h header) {
	m := headers.m.Load()
	if m == nil || headers.n.Load() >= maxCachedHeaders {
		m = new(sync.Map)
		headers.m.Store(m)
		headers.n.Store(0)
	}
	if _, loaded := m.LoadOrStore(enc, h); !loaded {
		headers.n.Add(1)
	}
}

// verifySignature checks the signature of the compact JWS tok (split into
// payloadEnc and sigEnc) with k, whose algorithm the header was already
// found to name, and returns the decoded payload. ES256 and EdDSA, what
// issuers sign with, are checked here directly with the standard library;
// jws.VerifyCompactFast, used for the others, would parse the header again
// and unpack ECDSA signatures into big integers first.
func verifySignature(k *Key, tok, payloadEnc, sigEnc string) ([]byte, error) {
	input := tok[:len(tok)-len(sigEnc)-1]
	switch pub := k.Public.(type) {
	case *ecdsa.PublicKey:
		if k.Alg.String() != "ES256" || pub.Curve != elliptic.P256() {
			break
		}
		var sig [64]byte
		if base64.RawURLEncoding.DecodedLen(len(sigEnc)) != len(sig) {
			return nil, ErrBadSignature
		}
		if _, err := base64.RawURLEncoding.Decode(sig[:], bytesOf(sigEnc)); err != nil {
			return nil, ErrBadSignature
		}
		digest := sha256.Sum256(bytesOf(input))
		if !ecdsa.VerifyASN1(pub, digest[:], derECDSA(sig[:32], sig[32:])) {
			return nil, ErrBadSignature
		}
		return decodePayload(payloadEnc)
	case ed25519.PublicKey:
		if k.Alg.String() != "EdDSA" || len(pub) != ed25519.PublicKeySize {
			break
		}
		var sig [ed25519.SignatureSize]byte
		if base64.RawURLEncoding.DecodedLen(len(sigEnc)) != len(sig) {
			return nil, ErrBadSignature
		}
		if _, err := base64.RawURLEncoding.Decode(sig[:], bytesOf(sigEnc)); err != nil {
			return nil, ErrBadSignature
		}
		if !ed25519.Verify(pub, bytesOf(input), sig[:]) {
			return nil, ErrBadSignature
		}
		return decodePayload(payloadEnc)
	}
	payload, err := jws.VerifyCompactFast(k.Public, []byte(tok), k.Alg)
	if err != nil {
		return nil, ErrBadSignature
	}
	return payload, nil
}

func decodePayload(enc string) ([]byte, error) {
	payload, err := base64.RawURLEncoding.DecodeString(enc)
	if err != nil {
		return nil, ErrBadSignature
	}
	return payload, nil
}

// derECDSA is the ASN.1 DER form of the P-256 signature (r, s), each a
// 32-byte big-endian unsigned integer: SEQUENCE { INTEGER r, INTEGER s }.
// Every length is below 128, so each fits in one byte.
func derECDSA(r, s []byte) []byte {
	der := make([]byte, 2, 2+2*(2+33))
	der[0] = 0x30 // SEQUENCE
	for _, v := range [][]byte{r, s} {
		for len(v) > 1 && v[0] == 0 {
			v = v[1:] // minimal: no leading zero bytes
		}
		pad := v[0] >> 7                          // a leading 0 keeps the integer non-negative
		der = append(der, 0x02, byte(len(v))+pad) // INTEGER
		if pad == 1 {
			der = append(der, 0)
		}
		der = append(der, v...)
	}
	der[1] = byte(len(der) - 2)
	return der
}

// bytesOf views a string's bytes without copying; callers only read them.
func bytesOf(s string) []byte { return unsafe.Slice(unsafe.StringData(s), len(s)) }

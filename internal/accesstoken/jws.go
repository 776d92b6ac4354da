package accesstoken

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"io"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/tokengate/tokengate/internal/jose"
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

// splitCompact splits a compact JWS into its three base64url parts
// (jose.SplitCompact: one spelling per token). It refuses the other JOSE
// forms, JWE with five parts and the JSON serializations, with errors of
// their own.
func splitCompact(tok string) (header, payload, sig string, err error) {
	if tok[0] == '{' {
		return "", "", "", ErrNotCompact
	}
	header, payload, sig, dots, ok := jose.SplitCompact(tok)
	switch {
	case ok:
		return header, payload, sig, nil
	case dots == 4:
		return "", "", "", ErrEncrypted
	}
	return "", "", "", ErrMalformed
}

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
// found to name, and returns the decoded payload.
func verifySignature(k *Key, tok, payloadEnc string) ([]byte, error) {
	if !jose.VerifyCompact(k.Alg, k.Public, tok) {
		return nil, ErrBadSignature
	}
	payload, err := base64.RawURLEncoding.DecodeString(payloadEnc)
	if err != nil {
		return nil, ErrBadSignature
	}
	return payload, nil
}

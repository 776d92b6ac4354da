package validator

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"strings"
)

// Limits on what a request may make the validator read.
const (
	// MaxAuthorizationSize caps the Authorization header: a longer one is
	// refused before anything in it is decoded.
	MaxAuthorizationSize = 8 << 10

	// maxHeaderFields caps the members of a token's protected header.
	maxHeaderFields = 32

	// maxKIDLength caps a kid; longer ones cannot name a key of ours.
	maxKIDLength = 256
)

// Reasons a token is refused. They become the error_description of the
// answer, so they say what is wrong in general terms and never quote the
// token.
var (
	errNoToken       = errors.New("no bearer token")
	errTooLarge      = errors.New("token too large")
	errMalformed     = errors.New("malformed token")
	errEncrypted     = errors.New("encrypted tokens are not accepted")
	errNotCompact    = errors.New("only compact JWS tokens are accepted")
	errDuplicateAuth = errors.New("more than one authorization header")
	errUnsigned      = errors.New("unsigned token")
	errCrit          = errors.New("critical header extensions are not supported")
	errUnknownKey    = errors.New("token signed with an unknown key")
	errAlgMismatch   = errors.New("token algorithm does not match its key")
	errBadSignature  = errors.New("bad signature")
	errNoKeys        = errors.New("signing keys of the issuer are not available")
	errTyp           = errors.New("not an access token (typ must be at+jwt)")
	errIssuer        = errors.New("wrong issuer")
	errAudience      = errors.New("token not meant for this audience")
	errExpired       = errors.New("token expired")
	errNoExpiry      = errors.New("token has no expiry")
	errNotYetValid   = errors.New("token not yet valid")
	errFutureIssued  = errors.New("token issued in the future")
	errRevoked       = errors.New("token revoked")
	errBadClaims     = errors.New("malformed token claims")
	errInsufficient  = errors.New("insufficient scope")
	errClaimMismatch = errors.New("a required claim is missing or has another value")
)

// bearerToken returns the token of an `Authorization: Bearer` header value.
// The scheme is case-insensitive (RFC 7235); anything else, including no
// header, is errNoToken. The size cap is applied before any parsing.
func bearerToken(values []string) (string, error) {
	switch len(values) {
	case 0:
		return "", errNoToken
	case 1:
	default:
		return "", errDuplicateAuth
	}
	v := values[0]
	if len(v) > MaxAuthorizationSize {
		return "", errTooLarge
	}
	const scheme = "bearer"
	if len(v) < len(scheme) || !strings.EqualFold(v[:len(scheme)], scheme) {
		return "", errNoToken
	}
	rest := v[len(scheme):]
	if rest == "" {
		return "", errMalformed
	}
	if rest[0] != ' ' && rest[0] != '\t' {
		return "", errNoToken // e.g. "Bearerx": another scheme
	}
	tok := strings.Trim(rest, " \t")
	if tok == "" {
		return "", errMalformed
	}
	return tok, nil
}

// splitCompact splits a compact JWS into its three base64url parts. It
// refuses the other JOSE forms: JWE (five parts) and the JSON
// serializations, and any byte outside the base64url alphabet.
func splitCompact(tok string) (header, payload, sig string, err error) {
	if tok[0] == '{' {
		return "", "", "", errNotCompact
	}
	dots := 0
	for i := 0; i < len(tok); i++ {
		c := tok[i]
		switch {
		case c == '.':
			dots++
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '-', c == '_':
		default:
			return "", "", "", errMalformed
		}
	}
	switch dots {
	case 2:
	case 4:
		return "", "", "", errEncrypted
	default:
		return "", "", "", errMalformed
	}
	i := strings.IndexByte(tok, '.')
	j := i + 1 + strings.IndexByte(tok[i+1:], '.')
	header, payload, sig = tok[:i], tok[i+1:j], tok[j+1:]
	if header == "" || payload == "" || sig == "" {
		return "", "", "", errMalformed
	}
	return header, payload, sig, nil
}

// joseHeader is what the validator reads of a protected header. The key
// sources a header may name (jku, x5u, jwk, x5c) are deliberately not read:
// keys come from the configured issuer only.
type joseHeader struct {
	Alg     string
	KID     string
	Typ     string
	HasCrit bool
	HasB64  bool
}

// parseHeader decodes a protected header. It refuses duplicate members (a
// classic source of parser disagreement), non-string alg/kid/typ, crit,
// and more than maxHeaderFields members. Member names match exactly.
func parseHeader(enc string) (joseHeader, error) {
	var h joseHeader
	raw, err := base64.RawURLEncoding.DecodeString(enc)
	if err != nil {
		return h, errMalformed
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return h, errMalformed
	}
	seen := make(map[string]bool, 4)
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return h, errMalformed
		}
		name, ok := t.(string)
		if !ok || seen[name] || len(seen) >= maxHeaderFields {
			return h, errMalformed
		}
		seen[name] = true
		var val json.RawMessage
		if err := dec.Decode(&val); err != nil {
			return h, errMalformed
		}
		switch name {
		case "alg":
			if err := json.Unmarshal(val, &h.Alg); err != nil {
				return h, errMalformed
			}
		case "kid":
			if err := json.Unmarshal(val, &h.KID); err != nil || len(h.KID) > maxKIDLength {
				return h, errMalformed
			}
		case "typ":
			if err := json.Unmarshal(val, &h.Typ); err != nil {
				return h, errMalformed
			}
		case "crit":
			h.HasCrit = true
		case "b64":
			h.HasB64 = true
		}
	}
	if t, err := dec.Token(); err != nil || t != json.Delim('}') {
		return h, errMalformed
	}
	if _, err := dec.Token(); err != io.EOF {
		return h, errMalformed // trailing data after the object
	}
	if h.Alg == "" {
		return h, errMalformed
	}
	return h, nil
}

// isAccessTokenTyp reports whether typ marks an RFC 9068 access token.
func isAccessTokenTyp(typ string) bool {
	return strings.EqualFold(typ, "at+jwt") || strings.EqualFold(typ, "application/at+jwt")
}

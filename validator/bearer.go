package validator

import (
	"errors"
	"strings"

	"github.com/tokengate/tokengate/internal/accesstoken"
)

// MaxAuthorizationSize caps the Authorization header: a longer one is
// refused before anything in it is decoded.
const MaxAuthorizationSize = 8 << 10

// Reasons a request is refused before or after its token is verified; the
// token's own faults are accesstoken's errors. They become the
// error_description of the answer.
var (
	errNoToken       = errors.New("no bearer token")
	errDuplicateAuth = errors.New("more than one authorization header")
	errInsufficient  = errors.New("insufficient scope")
	errClaimMismatch = errors.New("a required claim is missing or has another value")
)

// credential returns the token of an `Authorization: Bearer` or
// `Authorization: DPoP` header value (RFC 6750, RFC 9449 §7.1), and
// whether the scheme is DPoP. The scheme is case-insensitive (RFC 7235);
// anything else, including no header, is errNoToken. The size cap is
// applied before any parsing.
func credential(values []string) (tok string, dpopScheme bool, err error) {
	switch len(values) {
	case 0:
		return "", false, errNoToken
	case 1:
	default:
		return "", false, errDuplicateAuth
	}
	v := values[0]
	if len(v) > MaxAuthorizationSize {
		return "", false, accesstoken.ErrTooLarge
	}
	var rest string
	switch {
	case len(v) >= len("bearer") && strings.EqualFold(v[:len("bearer")], "bearer"):
		rest = v[len("bearer"):]
	case len(v) >= len("dpop") && strings.EqualFold(v[:len("dpop")], "dpop"):
		rest, dpopScheme = v[len("dpop"):], true
	default:
		return "", false, errNoToken
	}
	if rest == "" {
		return "", dpopScheme, accesstoken.ErrMalformed
	}
	if rest[0] != ' ' && rest[0] != '\t' {
		return "", false, errNoToken // e.g. "Bearerx": another scheme
	}
	tok = strings.Trim(rest, " \t")
	if tok == "" {
		return "", dpopScheme, accesstoken.ErrMalformed
	}
	return tok, dpopScheme, nil
}

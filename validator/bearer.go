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
		return "", accesstoken.ErrTooLarge
	}
	const scheme = "bearer"
	if len(v) < len(scheme) || !strings.EqualFold(v[:len(scheme)], scheme) {
		return "", errNoToken
	}
	rest := v[len(scheme):]
	if rest == "" {
		return "", accesstoken.ErrMalformed
	}
	if rest[0] != ' ' && rest[0] != '\t' {
		return "", errNoToken // e.g. "Bearerx": another scheme
	}
	tok := strings.Trim(rest, " \t")
	if tok == "" {
		return "", accesstoken.ErrMalformed
	}
	return tok, nil
}

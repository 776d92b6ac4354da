package validator

import (
	"strconv"
	"strings"

	"github.com/tokengate/tokengate/internal/accesstoken"
)

// placeholderPrefix is the namespace of the identity placeholders, the one
// Caddy's own authentication uses ({http.auth.user.id} is also what the
// access log records as user_id).
const placeholderPrefix = "http.auth.user."

// placeholders provides the identity placeholders of an accepted token. It
// is mapped into the request's replacer, so values are only rendered when a
// placeholder is used.
func placeholders(c *accesstoken.Claims) func(key string) (any, bool) {
	return func(key string) (any, bool) { return placeholder(c, key) }
}

func placeholder(c *accesstoken.Claims, key string) (any, bool) {
	if !strings.HasPrefix(key, placeholderPrefix) {
		return nil, false
	}
	switch name := key[len(placeholderPrefix):]; name {
	case "id":
		return c.Subject, true
	case "client_id":
		return c.ClientID, true
	case "scope":
		return c.Scope, true
	case "iss":
		return c.Issuer, true
	case "aud":
		return strings.Join(c.Audience, ","), true
	case "jti":
		return c.JTI, true
	case "exp":
		return strconv.FormatInt(c.Expiry, 10), true
	default:
		if claim, ok := strings.CutPrefix(name, "claims."); ok {
			return c.Claim(claim)
		}
	}
	return nil, false
}

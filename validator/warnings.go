package validator

import (
	"slices"

	"go.uber.org/zap"

	"github.com/tokengate/tokengate/internal/localissuer"
)

// warnUnreachable logs a warning at load when no client configured in the
// local issuer can pass the route: none may be granted all of its required
// scopes (every call is refused with 403), none gets tokens for any of its
// audiences (401), or those that may get the scopes are not those whose
// tokens carry the audience. Each is a valid config, typically a typo, and
// slow to find from the refusals alone.
func (h *Handler) warnUnreachable(iss localissuer.Issuer) {
	var scoped, aimed, both bool
	for _, g := range iss.Grants {
		s := containsAll(g.Scopes, h.Scopes)
		a := slices.ContainsFunc(g.Audience, func(aud string) bool { return slices.Contains(h.audience, aud) })
		scoped, aimed, both = scoped || s, aimed || a, both || (s && a)
	}
	fields := []zap.Field{zap.String("issuer", iss.Name), zap.Strings("scopes", h.Scopes), zap.Strings("audience", h.audience)}
	switch {
	case !scoped:
		h.logger.Warn("bearer_auth: no client of the issuer may get all the scopes this route requires; every call will be refused (403)", fields...)
	case !aimed:
		h.logger.Warn("bearer_auth: no client of the issuer gets tokens for this route's audience; every call will be refused (401)", fields...)
	case !both:
		h.logger.Warn("bearer_auth: the clients that may get this route's scopes get tokens for another audience; every call will be refused", fields...)
	}
}

// containsAll reports whether have holds every element of want.
func containsAll(have, want []string) bool {
	for _, w := range want {
		if !slices.Contains(have, w) {
			return false
		}
	}
	return true
}

package validator

import "testing"

// BenchmarkVerifyColdAlg is BenchmarkVerifyCold for each signing algorithm
// of the issuer: the cost of a token never seen before, signature check
// included. It is half of what decides the default algorithm (the other
// half is BenchmarkIssue in internal/issuer).
func BenchmarkVerifyColdAlg(b *testing.B) {
	for _, alg := range []string{"ES256", "EdDSA", "RS256", "PS256"} {
		b.Run(alg, func(b *testing.B) {
			iss, _ := newIssuer(b, alg)
			h := newLocal(b, iss, func(h *Handler) { h.Scopes = []string{"reports:read"} })
			h.noCache = true
			benchServe(b, h, mint(b, iss, defaultAudClient, "reports:read"))
		})
	}
}

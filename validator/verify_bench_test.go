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

// BenchmarkParseClaims is the claims decoding of a verified token.
func BenchmarkParseClaims(b *testing.B) {
	payload := []byte(`{"iss":"http://localhost:9080","sub":"plain-client","aud":"http://localhost:9080","exp":1800003600,"nbf":1800000000,"iat":1800000000,"jti":"8kB0mQ2z1Yx7c3VnR4sTqA","client_id":"plain-client","scope":"reports:read"}`)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := parseClaims(payload); err != nil {
			b.Fatal(err)
		}
	}
}

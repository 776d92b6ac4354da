package issuer

import (
	"testing"

	"github.com/caddyserver/certmagic"
	"go.uber.org/zap"

	"github.com/tokengate/tokengate/internal/clients"
	"github.com/tokengate/tokengate/internal/keys"
)

var benchAlgs = []string{keys.ES256, keys.EdDSA, keys.RS256, keys.PS256}

// BenchmarkIssue is Issue as the token endpoint calls it, per algorithm:
// claims, jti, header, payload and signature.
func BenchmarkIssue(b *testing.B) {
	for _, alg := range benchAlgs {
		b.Run(alg, func(b *testing.B) {
			iss, c := benchIssuer(b, alg)
			scopes, aud := c.Scopes, iss.Audience(c)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := iss.Issue(c, scopes, aud); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func benchIssuer(b *testing.B, alg string) (*Issuer, *clients.Config) {
	b.Helper()
	cfg := baseConfig()
	cfg.SigningAlg = alg
	iss, err := New(b.Context(), DefaultName, cfg, &certmagic.FileStorage{Path: b.TempDir()}, zap.NewNop())
	if err != nil {
		b.Fatal(err)
	}
	return iss, iss.Config.Clients[0]
}

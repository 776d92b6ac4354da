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

// BenchmarkIssueJWX is the signing path Issue used before signAccessToken
// (jws.Sign with a header object and the key as a JWK), for comparison.
func BenchmarkIssueJWX(b *testing.B) {
	for _, alg := range benchAlgs {
		b.Run(alg, func(b *testing.B) {
			iss, c := benchIssuer(b, alg)
			key, err := iss.Keys.Current()
			if err != nil {
				b.Fatal(err)
			}
			now := iss.Now()
			cl := Claims{Issuer: testIssuer, Subject: c.ClientID, Audience: iss.Audience(c), Expiry: now.Unix() + 3600,
				NotBefore: now.Unix(), IssuedAt: now.Unix(), JTI: "0123456789abcdefghijkl", ClientID: c.ClientID, Scope: "read write"}
			b.ReportAllocs()
			for b.Loop() {
				signJWX(b, key, &cl)
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
	c, ok := iss.Clients.Get("reports")
	if !ok {
		b.Fatal("no client")
	}
	return iss, c
}

package accesstoken

import (
	"testing"
)

func benchClaims() *Claims {
	return &Claims{Issuer: testIssuer, Subject: "reports", Audience: Audience{testIssuer}, Expiry: 1800003600,
		NotBefore: 1800000000, IssuedAt: 1800000000, JTI: "0123456789abcdefghijkl", ClientID: "reports", Scope: "read write"}
}

// BenchmarkSign is Sign per algorithm: header, payload and signature.
func BenchmarkSign(b *testing.B) {
	for _, alg := range testAlgs {
		b.Run(alg, func(b *testing.B) {
			key, cl := newKey(b, alg), benchClaims()
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Sign(key, cl); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkSignJWX is the generic path Sign replaces (jws.Sign with a
// header object and the key as a JWK), for comparison.
func BenchmarkSignJWX(b *testing.B) {
	for _, alg := range testAlgs {
		b.Run(alg, func(b *testing.B) {
			key, cl := newKey(b, alg), benchClaims()
			priv := privateJWK(b, key)
			b.ReportAllocs()
			for b.Loop() {
				signJWX(b, key, priv, cl)
			}
		})
	}
}

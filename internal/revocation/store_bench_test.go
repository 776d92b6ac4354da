package revocation

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/caddyserver/certmagic"
)

// BenchmarkRevocationCheck is the check bearer_auth makes on every request, with
// 10,000 revoked tokens listed: a token that is not revoked (the usual
// case) and one that is.
func BenchmarkRevocationCheck(b *testing.B) {
	s := New(Config{Storage: &certmagic.FileStorage{Path: b.TempDir()}, Prefix: "bench"})
	now := time.Now()
	exp := now.Add(time.Hour)
	for i := range 10_000 {
		// remember is what Revoke and Sync do in memory, without the
		// 10,000 storage writes.
		s.remember(HashOf("revoked-"+strconv.Itoa(i)), exp, now)
	}
	if err := s.Revoke(context.Background(), "revoked-jti", exp); err != nil {
		b.Fatal(err)
	}
	for _, c := range []struct {
		name, jti string
		want      bool
	}{{"not-revoked", "8kB0mQ2z1Yx7c3VnR4sTqA", false}, {"revoked", "revoked-jti", true}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if s.IsRevoked(c.jti) != c.want {
					b.Fatal("wrong answer")
				}
			}
		})
	}
}

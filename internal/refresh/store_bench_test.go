package refresh

import (
	"context"
	"testing"
	"time"

	"github.com/caddyserver/certmagic"

	"github.com/tokengate/tokengate/internal/testclock"
)

// BenchmarkIssue is what a client_credentials answer adds for a client
// allowed the refresh grant.
func BenchmarkIssue(b *testing.B) {
	s := newStore(b, b.TempDir(), testclock.Fixed())
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Issue(context.Background(), grant, time.Hour); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRedeem is a rotation on Caddy's file storage: each goroutine
// redeems the token its previous redemption gave it.
func BenchmarkRedeem(b *testing.B) {
	s, _ := newStoreOn(b, &certmagic.FileStorage{Path: b.TempDir()}, testclock.Fixed(), 0)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		tok := issue(b, s, grant, time.Hour)
		for pb.Next() {
			_, next, err := s.Redeem(context.Background(), tok, grant.ClientID, time.Hour, nil)
			if err != nil {
				b.Fatal(err)
			}
			tok = next
		}
	})
}

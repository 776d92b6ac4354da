package revocation

import (
	"context"
	"path"
	"testing"
	"time"

	"github.com/caddyserver/certmagic"

	"github.com/tokengate/tokengate/internal/testclock"
)

func newPair(t testing.TB) (a, b *Store, c *testclock.Clock, st certmagic.Storage) {
	t.Helper()
	st = &certmagic.FileStorage{Path: t.TempDir()}
	c = testclock.New(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	a = &Store{Storage: st, Prefix: "tg", Now: c.Now}
	b = &Store{Storage: st, Prefix: "tg", Now: c.Now}
	return a, b, c, st
}

func TestRevokeSeenHereAtOnceAndElsewhereAfterSync(t *testing.T) {
	ctx := context.Background()
	a, b, c, _ := newPair(t)
	exp := c.Now().Add(time.Hour)
	if a.IsRevoked("jti-1") {
		t.Fatal("revoked before Revoke")
	}
	if err := a.Revoke(ctx, "jti-1", exp); err != nil {
		t.Fatal(err)
	}
	if !a.IsRevoked("jti-1") {
		t.Fatal("the revoking instance does not refuse the token at once")
	}
	if a.IsRevoked("jti-2") {
		t.Fatal("an unrelated jti is revoked")
	}
	if b.IsRevoked("jti-1") {
		t.Fatal("the other instance knew before syncing (test is not measuring the sync)")
	}
	if err := b.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if !b.IsRevoked("jti-1") {
		t.Fatal("the other instance does not refuse the token after Sync")
	}
	// A restart (a new Store) finds it in storage.
	r := &Store{Storage: a.Storage, Prefix: "tg", Now: c.Now}
	if err := r.Sync(ctx); err != nil || !r.IsRevoked("jti-1") {
		t.Fatalf("after restart: revoked=%v err=%v", r.IsRevoked("jti-1"), err)
	}
}

func TestSweepDeletesOnlyExpired(t *testing.T) {
	ctx := context.Background()
	a, _, c, st := newPair(t)
	if err := a.Revoke(ctx, "short", c.Now().Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if err := a.Revoke(ctx, "long", c.Now().Add(2*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if n, err := a.Sweep(ctx); err != nil || n != 0 {
		t.Fatalf("sweep before expiry deleted %d (%v)", n, err)
	}
	// Past the short token's exp but within the margin: kept.
	c.Advance(time.Minute + expiryMargin/2)
	if n, _ := a.Sweep(ctx); n != 0 {
		t.Fatalf("swept within the leeway margin: %d", n)
	}
	c.Advance(expiryMargin)
	if n, err := a.Sweep(ctx); err != nil || n != 1 {
		t.Fatalf("sweep after expiry deleted %d (%v), want 1", n, err)
	}
	keys, err := st.List(ctx, "tg/revoked", false)
	if err != nil || len(keys) != 1 || path.Base(keys[0]) != name("long") {
		t.Fatalf("left %v (%v), want only the long one", keys, err)
	}
	if !a.IsRevoked("long") {
		t.Fatal("live revocation forgotten")
	}
}

func TestExpiredRevocationIsForgotten(t *testing.T) {
	ctx := context.Background()
	a, _, c, _ := newPair(t)
	// go-cache expires on the real clock; a revocation whose token is
	// already past exp+margin is not even cached.
	if err := a.Revoke(ctx, "old", c.Now().Add(-2*expiryMargin)); err != nil {
		t.Fatal(err)
	}
	if a.IsRevoked("old") {
		t.Fatal("a revocation of a long-expired token is kept in memory")
	}
}

func TestCorruptRecordStaysRevoked(t *testing.T) {
	ctx := context.Background()
	a, b, c, st := newPair(t)
	if err := a.Revoke(ctx, "x", c.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := st.Store(ctx, path.Join("tg/revoked", name("x")), []byte("{trunc")); err != nil {
		t.Fatal(err)
	}
	if err := b.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if !b.IsRevoked("x") {
		t.Fatal("a corrupt revocation record un-revoked the token")
	}
	if n, err := b.Sweep(ctx); err != nil || n != 0 {
		t.Fatalf("sweep deleted a corrupt record: %d %v", n, err)
	}
}

func TestEmptyStorage(t *testing.T) {
	a, _, _, _ := newPair(t)
	if err := a.Sync(context.Background()); err != nil {
		t.Fatalf("sync of an empty storage: %v", err)
	}
	if n, err := a.Sweep(context.Background()); err != nil || n != 0 {
		t.Fatalf("sweep of an empty storage: %d %v", n, err)
	}
}

func BenchmarkIsRevoked(b *testing.B) {
	s, _, c, _ := newPair(b)
	for i := 0; i < 1000; i++ {
		_ = s.Revoke(context.Background(), string(rune('a'+i%26))+time.Duration(i).String(), c.Now().Add(time.Hour))
	}
	b.ReportAllocs()
	for b.Loop() {
		if s.IsRevoked("not-revoked-jti") {
			b.Fatal("revoked")
		}
	}
}

package caddystorage

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/caddyserver/certmagic"

	"github.com/tokengate/tokengate/internal/state"
	"github.com/tokengate/tokengate/internal/statetest"
	"github.com/tokengate/tokengate/internal/testclock"
)

// TestSeenOnceConformance runs the state backends' suite on Caddy's file
// storage; the store is down while its directory is a file.
func TestSeenOnceConformance(t *testing.T) {
	dir := t.TempDir()
	st := &certmagic.FileStorage{Path: dir}
	open := func(t *testing.T, now func() time.Time) state.SeenOnce { return NewSeenOnce(st, "p", now, nil) }
	down := func(t *testing.T) func() {
		if err := os.Rename(dir, dir+".away"); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dir, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		return func() {
			if err := os.Remove(dir); err != nil {
				t.Fatal(err)
			}
			if err := os.Rename(dir+".away", dir); err != nil {
				t.Fatal(err)
			}
		}
	}
	statetest.SeenOnce(t, open, down)
}

// TestSeenOnceSweep: a sweep deletes whole buckets once no claim can look
// in them, never one that may hold a live claim, and storage then holds
// nothing of expired claims.
func TestSeenOnceSweep(t *testing.T) {
	ctx := context.Background()
	st := &certmagic.FileStorage{Path: t.TempDir()}
	clock := testclock.Fixed() // 03:04:05, in the bucket of 03:00
	s := NewSeenOnce(st, "p", clock.Now, nil)
	claim := func(key string, ttl time.Duration, want bool) {
		t.Helper()
		if first, err := s.Claim(ctx, key, clock.Now().Add(ttl)); err != nil || first != want {
			t.Fatalf("Claim(%s) = %v, %v; want %v", key, first, err, want)
		}
	}
	sweep := func(want int) {
		t.Helper()
		if n, err := s.Sweep(ctx); err != nil || n != want {
			t.Fatalf("Sweep deleted %d buckets (%v), want %d", n, err, want)
		}
	}
	for i := range 50 {
		claim("k"+strconv.Itoa(i), 5*time.Minute, true)
	}
	clock.Advance(state.SeenOnceMaxTTL) // 03:19:05
	claim("live", state.SeenOnceMaxTTL, true)
	clock.Advance(14 * time.Minute) // 03:33:05
	sweep(0)
	claim("live", time.Minute, false)
	clock.Advance(16 * time.Minute) // 03:49:05
	sweep(1)
	clock.Advance(30 * time.Minute) // 04:19:05
	sweep(1)
	if names, err := st.List(ctx, "p/seen", false); err != nil || len(names) != 0 {
		t.Fatalf("storage still holds %v (%v)", names, err)
	}
}

// Instances whose clocks differ see each other's claims across a bucket
// boundary, whichever is ahead (within the claim's lifetime) or behind
// (within a span).
func TestSeenOnceClockSkew(t *testing.T) {
	ctx := context.Background()
	st := &certmagic.FileStorage{Path: t.TempDir()}
	for i, tc := range []struct {
		at   time.Time // a's clock, near the start or the end of a bucket
		skew time.Duration
	}{
		{time.Date(2030, 1, 2, 3, 15, 1, 0, time.UTC), -14 * time.Minute},
		{time.Date(2030, 1, 2, 3, 15, 1, 0, time.UTC), -time.Minute},
		{time.Date(2030, 1, 2, 3, 14, 59, 0, time.UTC), 4 * time.Minute},
		{time.Date(2030, 1, 2, 3, 14, 59, 0, time.UTC), time.Second},
	} {
		clockA, clockB := testclock.New(tc.at), testclock.New(tc.at.Add(tc.skew))
		a, b := NewSeenOnce(st, "p", clockA.Now, nil), NewSeenOnce(st, "p", clockB.Now, nil)
		key := "k" + strconv.Itoa(i)
		if first, err := a.Claim(ctx, key, clockA.Now().Add(5*time.Minute)); err != nil || !first {
			t.Fatalf("claim: %v %v", first, err)
		}
		if first, err := b.Claim(ctx, key, clockB.Now().Add(5*time.Minute)); err != nil || first {
			t.Fatalf("a claim made by a clock %v off was taken again (%v)", -tc.skew, err)
		}
	}
}

// A record that cannot be read counts as a claim: refusing is safe,
// forgetting is not.
func TestSeenOnceCorruptRecordRefuses(t *testing.T) {
	ctx := context.Background()
	st := &certmagic.FileStorage{Path: t.TempDir()}
	clock := testclock.Fixed()
	s := NewSeenOnce(st, "p", clock.Now, nil)
	if first, err := s.Claim(ctx, "k", clock.Now().Add(time.Minute)); err != nil || !first {
		t.Fatalf("claim: %v %v", first, err)
	}
	sum := sha256.Sum256([]byte("k"))
	if err := st.Store(ctx, s.recordKey(bucketOf(clock.Now()), hex.EncodeToString(sum[:16])), []byte("not a time")); err != nil {
		t.Fatal(err)
	}
	clock.Advance(2 * time.Minute)
	if first, err := s.Claim(ctx, "k", clock.Now().Add(time.Minute)); err != nil || first {
		t.Fatalf("a corrupt record let the key be claimed again: %v %v", first, err)
	}
}

// BenchmarkSeenOnceClaim is the first claim of a key on Caddy's file
// storage: a lock file made and removed, three reads that find nothing and
// one atomic write.
func BenchmarkSeenOnceClaim(b *testing.B) {
	statetest.BenchmarkSeenOnce(b, NewSeenOnce(&certmagic.FileStorage{Path: b.TempDir()}, "p", nil, nil))
}

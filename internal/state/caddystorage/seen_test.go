package caddystorage

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/certmagic"

	"github.com/tokengate/tokengate/internal/state"
	"github.com/tokengate/tokengate/internal/statetest"
	"github.com/tokengate/tokengate/internal/testclock"
	"github.com/tokengate/tokengate/internal/testsync"
)

// TestSeenOnceConformance runs the state backends' suite on Caddy's file
// storage, spoken to directly (internal/state/filestorage) and through
// certmagic.Storage (any other storage module); the store is down while
// its directory is a file.
func TestSeenOnceConformance(t *testing.T) {
	for _, direct := range []bool{true, false} {
		t.Run(map[bool]string{true: "file storage, direct", false: "through certmagic.Storage"}[direct], func(t *testing.T) {
			dir := t.TempDir()
			var st certmagic.Storage = &certmagic.FileStorage{Path: dir}
			if !direct {
				st = &statetest.CountingStorage{Storage: st}
			}
			open := func(t *testing.T, now func() time.Time) state.SeenOnce {
				s := NewSeenOnce(st, "p", now, nil)
				if (s.file != nil) != direct {
					t.Fatalf("direct file access: %v, want %v", s.file != nil, direct)
				}
				return s
			}
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
		})
	}
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
// storage: spoken to directly (a lock on a file made and removed, three
// reads that find nothing, one record written and fdatasync'd) and through
// certmagic.Storage (a lock file made and removed, three reads, one atomic
// write, each of the lock and the write with its fsync).
func BenchmarkSeenOnceClaim(b *testing.B) {
	for _, direct := range []bool{true, false} {
		b.Run(map[bool]string{true: "direct", false: "storage-interface"}[direct], func(b *testing.B) {
			var st certmagic.Storage = &certmagic.FileStorage{Path: b.TempDir()}
			if !direct {
				st = &statetest.CountingStorage{Storage: st}
			}
			statetest.BenchmarkSeenOnce(b, NewSeenOnce(st, "p", nil, nil))
		})
	}
}

// Two instances whose clocks put them in different buckets claim the same
// keys at the same moment: exactly one of each pair is first (the lock on
// the key's hash covers the buckets either side, not only the record).
func TestSeenOnceConcurrentAcrossBuckets(t *testing.T) {
	ctx := context.Background()
	st := &certmagic.FileStorage{Path: t.TempDir()}
	at := time.Date(2030, 1, 2, 3, 14, 59, 0, time.UTC)
	handles := []*SeenOnce{
		NewSeenOnce(st, "p", func() time.Time { return at }, nil),
		NewSeenOnce(st, "p", func() time.Time { return at.Add(2 * time.Second) }, nil), // the next bucket
	}
	for i := range 100 {
		key := "k" + strconv.Itoa(i)
		var firsts atomic.Int32
		testsync.AtOnce(2, func(j int) {
			first, err := handles[j].Claim(ctx, key, at.Add(time.Minute))
			if err != nil {
				t.Error(err)
			}
			if first {
				firsts.Add(1)
			}
		})
		if n := firsts.Load(); n != 1 {
			t.Fatalf("key %d: %d of 2 concurrent claims in neighbouring buckets were first", i, n)
		}
	}
}

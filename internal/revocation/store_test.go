package revocation

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"path"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/certmagic"

	"github.com/tokengate/tokengate/internal/statetest"
	"github.com/tokengate/tokengate/internal/testclock"
)

func newPair(t testing.TB) (a, b *Store, c *testclock.Clock, st certmagic.Storage) {
	t.Helper()
	st = &certmagic.FileStorage{Path: t.TempDir()}
	c = testclock.New(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	a = New(Config{Storage: st, Prefix: "tg", Now: c.Now})
	b = New(Config{Storage: st, Prefix: "tg", Now: c.Now})
	return a, b, c, st
}

func sync1(t testing.TB, s *Store) {
	t.Helper()
	if err := s.Sync(context.Background()); err != nil {
		t.Fatalf("Sync: %v", err)
	}
}

// A sync reads what changed, not the list: with 2,000 revocations live, a
// sync with nothing new is one List and one Load per log, and one new
// revocation adds one Load.
func TestSyncReadsOnlyWhatIsNew(t *testing.T) {
	ctx := context.Background()
	a, _, c, st := newPair(t)
	cs := &statetest.CountingStorage{Storage: st}
	b := New(Config{Storage: cs, Prefix: "tg", Now: c.Now})
	const n = 2000
	for i := range n {
		if err := a.Revoke(ctx, fmt.Sprintf("jti-%d", i), c.Now().Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
	sync1(t, b)
	if b.Len() != n {
		t.Fatalf("first sync read %d revocations, want %d", b.Len(), n)
	}
	cs.Loads.Store(0)
	cs.Lists.Store(0)
	sync1(t, b)
	if l, ls := cs.Loads.Load(), cs.Lists.Load(); l != 1 || ls != 1 {
		t.Fatalf("an idle sync made %d loads and %d lists, want 1 and 1", l, ls)
	}
	if err := a.Revoke(ctx, "one-more", c.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	cs.Loads.Store(0)
	sync1(t, b)
	if l := cs.Loads.Load(); l != 2 {
		t.Fatalf("a sync after one revocation made %d loads, want 2 (head and entry)", l)
	}
	if !b.IsRevoked("one-more") || !b.IsRevoked("jti-0") {
		t.Fatal("revocations lost")
	}
}

// Expired revocations leave memory as the clock passes them, and storage
// with their log once its hour is over.
func TestExpiredLeaveMemoryAndStorage(t *testing.T) {
	ctx := context.Background()
	a, b, c, st := newPair(t)
	for i := range 100 {
		if err := a.Revoke(ctx, fmt.Sprintf("short-%d", i), c.Now().Add(time.Minute)); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.Revoke(ctx, "long", c.Now().Add(3*time.Hour)); err != nil {
		t.Fatal(err)
	}
	sync1(t, b)
	if b.Len() != 101 {
		t.Fatalf("b holds %d, want 101", b.Len())
	}
	// Past exp but within the leeway: still refused.
	c.Advance(time.Minute + MaxLeeway/2)
	sync1(t, b)
	if !b.IsRevoked("short-7") || b.Len() != 101 {
		t.Fatalf("forgotten within the leeway: len %d", b.Len())
	}
	c.Advance(MaxLeeway)
	sync1(t, a)
	sync1(t, b)
	if b.IsRevoked("short-7") || a.IsRevoked("short-7") {
		t.Fatal("an expired revocation is still refused")
	}
	if a.Len() != 1 || b.Len() != 1 || !b.IsRevoked("long") {
		t.Fatalf("after expiry a holds %d, b %d, want the long one only", a.Len(), b.Len())
	}
	// A new hour: a writes to a new log; the old one stays while "long" lives.
	c.Advance(time.Hour)
	if err := a.Revoke(ctx, "later", c.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	sync1(t, b)
	logs, _ := st.List(ctx, "tg/revocations/heads", false)
	if len(logs) != 2 {
		t.Fatalf("logs %v, want 2", logs)
	}
	c.Advance(2*time.Hour + MaxLeeway + time.Minute)
	sync1(t, b)
	for _, dir := range []string{"tg/revocations/heads", "tg/revocations/entries"} {
		if left, _ := st.List(ctx, dir, true); len(left) != 0 {
			t.Fatalf("expired logs left in storage: %v", left)
		}
	}
	if b.Len() != 0 {
		t.Fatalf("b still holds %d", b.Len())
	}
}

func TestExpiredRevocationIsForgotten(t *testing.T) {
	ctx := context.Background()
	a, _, c, _ := newPair(t)
	// A revocation whose token is already past exp+leeway is not kept.
	if err := a.Revoke(ctx, "old", c.Now().Add(-2*MaxLeeway)); err != nil {
		t.Fatal(err)
	}
	if a.IsRevoked("old") || a.Len() != 0 {
		t.Fatal("a revocation of a long-expired token is kept in memory")
	}
}

// legacyName is the storage name of a jti in the old format.
func legacyName(jti string) string {
	h := HashOf(jti)
	return hex.EncodeToString(h[:])
}

// storeLegacy writes a revocation record as the old format did.
func storeLegacy(t *testing.T, st certmagic.Storage, jti, content string) {
	t.Helper()
	if err := st.Store(context.Background(), path.Join("tg/revoked", legacyName(jti)), []byte(content)); err != nil {
		t.Fatal(err)
	}
}

// Records of the old format (one file per token under revoked/) are
// honoured after an upgrade and swept when expired.
func TestLegacyRecordsHonouredAndSwept(t *testing.T) {
	ctx := context.Background()
	a, _, c, st := newPair(t)
	rfc := func(d time.Duration) string { return c.Now().Add(d).Format(time.RFC3339Nano) }
	storeLegacy(t, st, "short", `{"expires":"`+rfc(time.Minute)+`"}`)
	storeLegacy(t, st, "long", `{"expires":"`+rfc(2*time.Hour)+`"}`)
	sync1(t, a)
	if !a.IsRevoked("short") || !a.IsRevoked("long") {
		t.Fatal("old-format revocations not honoured")
	}
	if n, err := a.Sweep(ctx); err != nil || n != 0 {
		t.Fatalf("sweep before expiry deleted %d (%v)", n, err)
	}
	// Made by an instance not yet upgraded: picked up by the sweep.
	storeLegacy(t, st, "late", `{"expires":"`+rfc(time.Hour)+`"}`)
	if _, err := a.Sweep(ctx); err != nil || !a.IsRevoked("late") {
		t.Fatalf("sweep did not read a new old-format record (%v)", err)
	}
	c.Advance(time.Minute + MaxLeeway/2)
	if n, _ := a.Sweep(ctx); n != 0 {
		t.Fatalf("swept within the leeway margin: %d", n)
	}
	c.Advance(MaxLeeway)
	if n, err := a.Sweep(ctx); err != nil || n != 1 {
		t.Fatalf("sweep after expiry deleted %d (%v), want 1", n, err)
	}
	keys, err := st.List(ctx, "tg/revoked", false)
	if err != nil || len(keys) != 2 {
		t.Fatalf("left %v (%v), want the two live ones", keys, err)
	}
	if !a.IsRevoked("long") {
		t.Fatal("live revocation forgotten")
	}
}

func TestCorruptLegacyRecordStaysRevoked(t *testing.T) {
	ctx := context.Background()
	_, b, _, st := newPair(t)
	storeLegacy(t, st, "x", "{trunc")
	sync1(t, b)
	if !b.IsRevoked("x") {
		t.Fatal("a corrupt revocation record un-revoked the token")
	}
	if n, err := b.Sweep(ctx); err != nil || n != 0 {
		t.Fatalf("sweep deleted a corrupt record: %d %v", n, err)
	}
}

// A corrupt entry of a log names no token; the entries after it are still
// read.
func TestCorruptEntrySkipped(t *testing.T) {
	ctx := context.Background()
	a, b, c, st := newPair(t)
	for _, j := range []string{"one", "two", "three"} {
		if err := a.Revoke(ctx, j, c.Now().Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.Store(ctx, a.entryKey(a.logName(c.Now()), 1), []byte("{trunc")); err != nil {
		t.Fatal(err)
	}
	sync1(t, b)
	if !b.IsRevoked("one") || !b.IsRevoked("three") {
		t.Fatal("entries around a corrupt one were not read")
	}
}

func TestEmptyStorage(t *testing.T) {
	a, _, _, _ := newPair(t)
	sync1(t, a)
	if n, err := a.Sweep(context.Background()); err != nil || n != 0 {
		t.Fatalf("sweep of an empty storage: %d %v", n, err)
	}
}

// failing fails Store for keys containing part while on is set.
type failing struct {
	certmagic.Storage
	part string
	on   atomic.Bool
}

func (f *failing) Store(ctx context.Context, key string, value []byte) error {
	if f.on.Load() && strings.Contains(key, f.part) {
		return errors.New("disk full")
	}
	return f.Storage.Store(ctx, key, value)
}

// A revocation whose entry or head could not be written is an error, and
// the revocations after it are seen: a reader never stalls on it.
func TestFailedWriteIsAnErrorAndLeavesNoGap(t *testing.T) {
	for _, part := range []string{"/heads/", "/entries/"} {
		t.Run(part, func(t *testing.T) {
			ctx := context.Background()
			_, b, c, st := newPair(t)
			f := &failing{Storage: st, part: part}
			a := New(Config{Storage: f, Prefix: "tg", Now: c.Now})
			f.on.Store(true)
			if err := a.Revoke(ctx, "lost", c.Now().Add(time.Hour)); err == nil {
				t.Fatal("a failed write was not reported")
			}
			f.on.Store(false)
			if err := a.Revoke(ctx, "kept", c.Now().Add(time.Hour)); err != nil {
				t.Fatal(err)
			}
			sync1(t, b)
			if !b.IsRevoked("kept") {
				t.Fatal("the revocation after a failed one was not seen")
			}
		})
	}
}

// Entries of a log that never got a head are deleted by Sweep, a day after
// their hour.
func TestSweepDeletesHeadlessLog(t *testing.T) {
	ctx := context.Background()
	_, _, c, st := newPair(t)
	f := &failing{Storage: st, part: "/heads/"}
	a := New(Config{Storage: f, Prefix: "tg", Now: c.Now})
	f.on.Store(true)
	if err := a.Revoke(ctx, "orphan", c.Now().Add(time.Hour)); err == nil {
		t.Fatal("a failed write was not reported")
	}
	c.Advance(2 * time.Hour)
	if _, err := a.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	if left, _ := st.List(ctx, "tg/revocations/entries", true); len(left) == 0 {
		t.Fatal("swept too early")
	}
	c.Advance(24 * time.Hour)
	if _, err := a.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	if left, _ := st.List(ctx, "tg/revocations/entries", true); len(left) != 0 {
		t.Fatalf("a headless log is left: %v", left)
	}
}

func BenchmarkIsRevoked(b *testing.B) {
	s, _, c, _ := newPair(b)
	for i := 0; i < 1000; i++ {
		_ = s.Revoke(context.Background(), fmt.Sprintf("jti-%d", i), c.Now().Add(time.Hour))
	}
	b.ReportAllocs()
	for b.Loop() {
		if s.IsRevoked("not-revoked-jti") {
			b.Fatal("revoked")
		}
	}
}

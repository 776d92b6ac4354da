package statetest

import (
	"context"
	"errors"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tokengate/tokengate/internal/state"
	"github.com/tokengate/tokengate/internal/testclock"
	"github.com/tokengate/tokengate/internal/testsync"
)

// OpenSeenOnce opens a handle on one shared replay set, with the given
// clock.
type OpenSeenOnce func(t *testing.T, now func() time.Time) state.SeenOnce

// SeenOnce checks a replay set backend (client assertion jtis): a key is
// claimed first once, by one handle, and refused to every other handle and
// to a handle opened later (a restart); of concurrent claims of one key
// through several handles exactly one is first; a claim that has expired
// may be made again; and, when down is given (it makes the store
// unreachable until the function it returns is called), a claim with the
// store down fails with state.ErrUnavailable and records nothing.
//
// Claims expire on the store's clock (Redis') as well as on the handles'
// clocks: the expiry test waits a few hundred milliseconds for real.
func SeenOnce(t *testing.T, open OpenSeenOnce, down func(t *testing.T) (restore func())) {
	ctx := context.Background()
	claim := func(t *testing.T, s state.SeenOnce, key string, until time.Time) bool {
		t.Helper()
		first, err := s.Claim(ctx, key, until)
		if err != nil {
			t.Fatalf("Claim(%s): %v", key, err)
		}
		return first
	}
	// Each subtest claims keys of its own: the store is shared.
	t.Run("first once, across handles and a restart", func(t *testing.T) {
		a, b := open(t, time.Now), open(t, time.Now)
		until := time.Now().Add(5 * time.Minute)
		if !claim(t, a, "s1", until) {
			t.Fatal("the first claim of a key was refused")
		}
		if claim(t, a, "s1", until) {
			t.Fatal("a second claim by the same handle was first")
		}
		if claim(t, b, "s1", until) {
			t.Fatal("a claim by another handle was first")
		}
		if !claim(t, b, "s2", until) {
			t.Fatal("another key was refused")
		}
		if claim(t, open(t, time.Now), "s1", until) {
			t.Fatal("a handle opened later (a restart) took a claimed key")
		}
	})
	t.Run("exactly one first under concurrency", func(t *testing.T) {
		handles := []state.SeenOnce{open(t, time.Now), open(t, time.Now)}
		// Few per key: a contended lock of Caddy's file storage polls
		// once a second.
		const keys, perKey = 4, 6
		var firsts [keys]atomic.Int32
		until := time.Now().Add(5 * time.Minute)
		testsync.AtOnce(keys*perKey, func(i int) {
			first, err := handles[i%len(handles)].Claim(ctx, "c"+strconv.Itoa(i%keys), until)
			if err != nil {
				t.Error(err)
			}
			if first {
				firsts[i%keys].Add(1)
			}
		})
		for k := range firsts {
			if n := firsts[k].Load(); n != 1 {
				t.Errorf("key %d: %d of %d concurrent claims were first; want exactly 1", k, n, perKey)
			}
		}
	})
	t.Run("expired claims may be claimed again", func(t *testing.T) {
		clock := testclock.New(time.Now())
		a, b := open(t, clock.Now), open(t, clock.Now)
		until := clock.Now().Add(300 * time.Millisecond)
		if !claim(t, a, "e1", until) {
			t.Fatal("the first claim was refused")
		}
		if !claim(t, a, "e2", clock.Now().Add(10*time.Minute)) {
			t.Fatal("the first claim of a long-lived key was refused")
		}
		if claim(t, b, "e1", until) {
			t.Fatal("a live claim was taken again")
		}
		clock.Advance(time.Second)
		time.Sleep(time.Until(until) + 50*time.Millisecond) // Redis expires keys on its own clock
		if !claim(t, b, "e1", clock.Now().Add(time.Minute)) {
			t.Fatal("an expired claim could not be made again")
		}
		if claim(t, a, "e1", clock.Now().Add(time.Minute)) {
			t.Fatal("the renewed claim was taken twice")
		}
		if claim(t, b, "e2", clock.Now().Add(10*time.Minute)) {
			t.Fatal("a live claim was forgotten when another expired")
		}
	})
	t.Run("a claim longer than SeenOnceMaxTTL is refused", func(t *testing.T) {
		first, err := open(t, time.Now).Claim(ctx, "l1", time.Now().Add(state.SeenOnceMaxTTL+time.Minute))
		if err == nil || first {
			t.Fatalf("Claim = %v, %v; want an error", first, err)
		}
	})
	if down != nil {
		t.Run("store down: ErrUnavailable, nothing recorded", func(t *testing.T) {
			a := open(t, time.Now)
			until := time.Now().Add(5 * time.Minute)
			restore := down(t)
			first, err := a.Claim(ctx, "d1", until)
			if !errors.Is(err, state.ErrUnavailable) || first {
				restore()
				t.Fatalf("Claim with the store down = %v, %v; want ErrUnavailable", first, err)
			}
			restore()
			if !claim(t, a, "d1", until) {
				t.Fatal("a claim that failed was recorded")
			}
		})
	}
}

// BenchmarkSeenOnce measures the first claim of a key, a new key each time.
func BenchmarkSeenOnce(b *testing.B, s state.SeenOnce) {
	ctx := context.Background()
	until := time.Now().Add(5 * time.Minute)
	i := 0
	b.ReportAllocs()
	for b.Loop() {
		i++
		if first, err := s.Claim(ctx, strconv.Itoa(i), until); err != nil || !first {
			b.Fatal(first, err)
		}
	}
}

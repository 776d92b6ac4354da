// Package statetest is the conformance suite of the issuer's state
// backends (internal/state): every backend runs it against a real store (a
// temporary directory for Caddy's storage, a real redis-server for Redis),
// so that each keeps the promises the issuer relies on.
//
// A backend's test calls Revocations and Families with a function that
// opens a new handle on the same shared state, as another instance (or the
// same one after a restart) would.
package statetest

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/tokengate/tokengate/internal/state"
	"github.com/tokengate/tokengate/internal/testclock"
	"github.com/tokengate/tokengate/internal/testsync"
)

// OpenRevocations opens a handle on one shared revocation list, with the
// given clock.
type OpenRevocations func(t *testing.T, now func() time.Time) state.Revocations

// Revocations checks a revocation list backend: a revocation is refused at
// once by its handle and by every other handle after a Sync, including one
// opened later (a restart); it is forgotten after the token's expiry plus
// the leeway; concurrent revocations through several handles are all seen
// by all.
func Revocations(t *testing.T, leeway time.Duration, open OpenRevocations) {
	ctx := context.Background()
	sync1 := func(t *testing.T, r state.Revocations) {
		t.Helper()
		if err := r.Sync(ctx); err != nil {
			t.Fatalf("Sync: %v", err)
		}
	}
	t.Run("seen by a second handle and after a restart", func(t *testing.T) {
		clock := testclock.New(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC))
		a, b := open(t, clock.Now), open(t, clock.Now)
		sync1(t, a)
		sync1(t, b)
		if a.IsRevoked("jti-1") {
			t.Fatal("revoked before Revoke")
		}
		if err := a.Revoke(ctx, "jti-1", clock.Now().Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		if !a.IsRevoked("jti-1") {
			t.Fatal("the revoking handle does not refuse the token at once")
		}
		if a.IsRevoked("jti-2") {
			t.Fatal("an unrelated jti is revoked")
		}
		sync1(t, b)
		if !b.IsRevoked("jti-1") {
			t.Fatal("a second handle does not refuse the token after Sync")
		}
		r := open(t, clock.Now)
		sync1(t, r)
		if !r.IsRevoked("jti-1") {
			t.Fatal("a handle opened later (a restart) does not refuse the token")
		}
		// The restarted handle's own revocations reach the others too.
		if err := r.Revoke(ctx, "jti-3", clock.Now().Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		sync1(t, a)
		sync1(t, b)
		if !a.IsRevoked("jti-3") || !b.IsRevoked("jti-3") {
			t.Fatal("a revocation of the restarted handle was not seen")
		}
	})
	t.Run("expiry", func(t *testing.T) {
		clock := testclock.New(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC))
		a, b := open(t, clock.Now), open(t, clock.Now)
		if err := a.Revoke(ctx, "short", clock.Now().Add(time.Minute)); err != nil {
			t.Fatal(err)
		}
		if err := a.Revoke(ctx, "long", clock.Now().Add(3*time.Hour)); err != nil {
			t.Fatal(err)
		}
		sync1(t, b)
		clock.Advance(time.Minute + leeway/2)
		sync1(t, b)
		if !b.IsRevoked("short") {
			t.Fatal("forgotten within the leeway")
		}
		clock.Advance(leeway)
		sync1(t, a)
		sync1(t, b)
		if a.IsRevoked("short") || b.IsRevoked("short") {
			t.Fatal("refused after its expiry and the leeway")
		}
		if !a.IsRevoked("long") || !b.IsRevoked("long") {
			t.Fatal("a live revocation was forgotten")
		}
	})
	t.Run("concurrent handles", func(t *testing.T) {
		clock := testclock.New(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC))
		handles := []state.Revocations{open(t, clock.Now), open(t, clock.Now), open(t, clock.Now)}
		const perGoroutine, goroutines = 20, 4
		testsync.AtOnce(len(handles)*goroutines, func(n int) {
			i, g := n/goroutines, n%goroutines
			h := handles[i]
			for k := range perGoroutine {
				if err := h.Revoke(ctx, fmt.Sprintf("%d-%d-%d", i, g, k), clock.Now().Add(time.Hour)); err != nil {
					t.Error(err)
				}
				if k%7 == 0 {
					if err := h.Sync(ctx); err != nil {
						t.Error(err)
					}
				}
			}
		})
		for n, h := range handles {
			sync1(t, h)
			for i := range handles {
				for g := range goroutines {
					for k := range perGoroutine {
						if jti := fmt.Sprintf("%d-%d-%d", i, g, k); !h.IsRevoked(jti) {
							t.Fatalf("handle %d does not refuse %s", n, jti)
						}
					}
				}
			}
		}
	})
}

// OpenFamilies opens a handle on one shared set of refresh token families.
type OpenFamilies func(t *testing.T) state.Families

// Families checks a refresh family backend: Update is a compare-and-set
// (concurrent Updates through several handles lose none), a refused or
// unwritten decision stores nothing, records survive a new handle, and,
// when corrupt is given (it damages the stored record of a family), a
// corrupt record is an error rather than a family without a record.
func Families(t *testing.T, open OpenFamilies, corrupt func(t *testing.T, id string)) {
	ctx := context.Background()
	exp := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	t.Run("absent, written, read by another handle", func(t *testing.T) {
		a, b := open(t), open(t)
		if _, found, err := a.Load(ctx, "f1"); err != nil || found {
			t.Fatalf("a family never written: found %v, %v", found, err)
		}
		err := a.Update(ctx, "f1", func(rec state.Family, found bool) (state.Family, bool, error) {
			if found {
				t.Error("decide saw a record that was never written")
			}
			return state.Family{ClientID: "c", Generation: 1, Expires: exp}, true, nil
		})
		if err != nil {
			t.Fatal(err)
		}
		rec, found, err := b.Load(ctx, "f1")
		if err != nil || !found || rec.ClientID != "c" || rec.Generation != 1 || !rec.Expires.Equal(exp) {
			t.Fatalf("another handle read %+v, %v, %v", rec, found, err)
		}
	})
	t.Run("a refused or unwritten decision stores nothing", func(t *testing.T) {
		a := open(t)
		refused := errors.New("refused")
		if err := a.Update(ctx, "f2", func(state.Family, bool) (state.Family, bool, error) {
			return state.Family{ClientID: "c", Generation: 5}, true, refused
		}); !errors.Is(err, refused) {
			t.Fatalf("Update returned %v, want decide's error", err)
		}
		if err := a.Update(ctx, "f2", func(state.Family, bool) (state.Family, bool, error) {
			return state.Family{ClientID: "c", Generation: 5}, false, nil
		}); err != nil {
			t.Fatal(err)
		}
		if _, found, err := open(t).Load(ctx, "f2"); err != nil || found {
			t.Fatalf("a decision not to write stored a record (found %v, %v)", found, err)
		}
	})
	t.Run("exactly once under concurrency", func(t *testing.T) {
		handles := []state.Families{open(t), open(t)}
		// Few: a contended lock of Caddy's file storage polls once a second.
		const perHandle = 3
		testsync.AtOnce(len(handles)*perHandle, func(i int) {
			err := handles[i%len(handles)].Update(ctx, "f3", func(rec state.Family, found bool) (state.Family, bool, error) {
				rec.ClientID = "c"
				rec.Generation++
				return rec, true, nil
			})
			if err != nil {
				t.Error(err)
			}
		})
		rec, _, err := open(t).Load(ctx, "f3")
		if err != nil || rec.Generation != 2*perHandle {
			t.Fatalf("after %d concurrent increments the generation is %d (%v): updates were lost", 2*perHandle, rec.Generation, err)
		}
	})
	if corrupt != nil {
		t.Run("a corrupt record is refused", func(t *testing.T) {
			a := open(t)
			if err := a.Update(ctx, "f4", func(state.Family, bool) (state.Family, bool, error) {
				return state.Family{ClientID: "c", Generation: 3}, true, nil
			}); err != nil {
				t.Fatal(err)
			}
			corrupt(t, "f4")
			if _, _, err := a.Load(ctx, "f4"); err == nil {
				t.Fatal("Load of a corrupt record did not fail")
			}
			called := false
			if err := a.Update(ctx, "f4", func(state.Family, bool) (state.Family, bool, error) {
				called = true
				return state.Family{ClientID: "c"}, true, nil
			}); err == nil || called {
				t.Fatalf("Update of a corrupt record: %v (decide called: %v)", err, called)
			}
		})
	}
}

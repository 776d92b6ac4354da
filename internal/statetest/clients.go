package statetest

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/tokengate/tokengate/internal/state"
	"github.com/tokengate/tokengate/internal/testsync"
)

// OpenClients opens a handle on one shared set of client records.
type OpenClients func(t *testing.T) state.Clients

// Clients checks a client records backend (the admin API's clients and
// the kill switch): a change is seen at once by its handle and by every
// other handle after a Sync, which names what changed, and by a handle
// opened later (a restart); a refused decision stores nothing; concurrent
// Updates through several handles lose none; and, when corrupt is given
// (it damages the stored record of a client), a corrupt record leaves its
// client refused, not allowed.
func Clients(t *testing.T, open OpenClients, corrupt func(t *testing.T, id string)) {
	ctx := context.Background()
	syncs := func(t *testing.T, c state.Clients) []string {
		t.Helper()
		changed, err := c.Sync(ctx)
		if err != nil {
			t.Fatalf("Sync: %v", err)
		}
		return changed
	}
	set := func(t *testing.T, c state.Clients, id string, change func(*state.Client)) {
		t.Helper()
		if err := c.Update(ctx, id, func(rec state.Client, _ bool) (state.Client, bool, error) {
			change(&rec)
			return rec, true, nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	t.Run("seen by a second handle and after a restart", func(t *testing.T) {
		a, b := open(t), open(t)
		syncs(t, a)
		syncs(t, b)
		set(t, a, "x", func(r *state.Client) { r.Disabled = true })
		if rec, ok := a.Get("x"); !ok || !rec.Disabled {
			t.Fatal("the writing handle does not see its change at once")
		}
		if got := syncs(t, b); !slices.Contains(got, "x") {
			t.Fatalf("Sync named %v, not the changed client", got)
		}
		if rec, ok := b.Get("x"); !ok || !rec.Refuses(1<<40) {
			t.Fatalf("a second handle after Sync: %+v %v", rec, ok)
		}
		if got := syncs(t, b); len(got) != 0 {
			t.Errorf("a Sync with nothing new named %v", got)
		}
		r := open(t)
		syncs(t, r)
		if rec, ok := r.Get("x"); !ok || !rec.Disabled {
			t.Fatalf("a new handle: %+v %v", rec, ok)
		}
	})
	t.Run("a refused decision stores nothing", func(t *testing.T) {
		a := open(t)
		syncs(t, a)
		refused := errors.New("refused")
		if err := a.Update(ctx, "y", func(state.Client, bool) (state.Client, bool, error) {
			return state.Client{Disabled: true}, true, refused
		}); !errors.Is(err, refused) {
			t.Fatalf("Update returned %v, want decide's error", err)
		}
		r := open(t)
		syncs(t, r)
		if _, ok := r.Get("y"); ok {
			t.Fatal("a refused decision stored a record")
		}
	})
	t.Run("no lost updates under concurrency", func(t *testing.T) {
		handles := []state.Clients{open(t), open(t)}
		const perHandle = 3 // a contended file storage lock polls once a second
		testsync.AtOnce(len(handles)*perHandle, func(i int) {
			if err := handles[i%len(handles)].Update(ctx, "z", func(rec state.Client, _ bool) (state.Client, bool, error) {
				rec.NotBefore++
				return rec, true, nil
			}); err != nil {
				t.Error(err)
			}
		})
		r := open(t)
		syncs(t, r)
		if rec, _ := r.Get("z"); rec.NotBefore != 2*perHandle {
			t.Fatalf("after %d concurrent updates NotBefore is %d: updates were lost", 2*perHandle, rec.NotBefore)
		}
	})
	if corrupt != nil {
		t.Run("a corrupt record refuses its client", func(t *testing.T) {
			a, b := open(t), open(t)
			syncs(t, b)
			set(t, a, "w", func(r *state.Client) { r.NotBefore = 5 })
			corrupt(t, "w")
			syncs(t, b)
			if rec, ok := b.Get("w"); !ok || !rec.Refuses(100) {
				t.Errorf("corrupt record: %+v %v, want the client refused", rec, ok)
			}
		})
	}
}

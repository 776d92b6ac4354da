package refresh

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path"
	"testing"
	"time"

	"github.com/caddyserver/certmagic"
	"go.uber.org/zap"

	"github.com/tokengate/tokengate/internal/state"
	"github.com/tokengate/tokengate/internal/testclock"
)

// A store that lost its data (a Redis restarted empty) has lost the family
// records: a token redeemed before the loss must not be redeemed again
// (its family has no record, as a never-redeemed one has none), even by an
// instance that still holds the MAC keys and was not told of the loss. The
// tokens of before are refused, and a new token works.
func TestStoreLostItsDataRefusesEarlierTokens(t *testing.T) {
	for _, reuse := range []time.Duration{0, DefaultReuseInterval} {
		t.Run(fmt.Sprint("reuse interval ", reuse), func(t *testing.T) {
			ctx := context.Background()
			dir := t.TempDir()
			clock := testclock.Fixed()
			a, _ := newStoreOn(t, &certmagic.FileStorage{Path: dir}, clock, reuse)
			b, _ := newStoreOn(t, &certmagic.FileStorage{Path: dir}, clock, reuse)
			t0 := issue(t, a, grant, time.Hour)
			_, t1 := redeem(t, a, t0, grant.ClientID, time.Hour)
			never := issue(t, a, grant, time.Hour)

			// The store loses everything; a and b hold the keys in memory.
			if err := os.RemoveAll(dir); err != nil {
				t.Fatal(err)
			}
			clock.Advance(time.Minute)
			for _, tc := range []struct {
				name  string
				s     *Store
				token string
			}{
				{"the redeemed token, replayed at another instance", b, t0},
				{"the redeemed token, replayed at the instance that redeemed it", a, t0},
				{"its successor", a, t1},
				{"a token never redeemed", b, never},
			} {
				wantErr(t, tc.s, tc.token, grant.ClientID, ErrInvalid)
				if _, err := tc.s.Lookup(ctx, tc.token); !errors.Is(err, ErrInvalid) {
					t.Errorf("%s: introspected as active after the loss: %v", tc.name, err)
				}
			}
			// Both instances, having met a key gone from the store, load the
			// store's current one (made by the first): a new token of one is
			// redeemed at the other.
			fresh := issue(t, a, grant, time.Hour)
			_, next := redeem(t, b, fresh, grant.ClientID, time.Hour)
			redeem(t, a, next, grant.ClientID, time.Hour)
		})
	}
}

// A key of the same kid but another secret in the store (made after a
// loss) does not vouch for a token made before it.
func TestKeyStoredComparesTheSecret(t *testing.T) {
	dir := t.TempDir()
	clock := testclock.Fixed()
	s, _ := newStoreOn(t, &certmagic.FileStorage{Path: dir}, clock, 0)
	tok := issue(t, s, grant, time.Hour)
	r := s.ring.Load()
	kf := keyFile{KID: fmt.Sprintf("%08x", r.current.id), Secret: make([]byte, macKeyBytes), Created: clock.Now()}
	data, _ := json.Marshal(kf)
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	st := &certmagic.FileStorage{Path: dir}
	if err := st.Store(context.Background(), path.Join(s.keyDir(), kf.KID), data); err != nil {
		t.Fatal(err)
	}
	wantErr(t, s, tok, grant.ClientID, ErrInvalid)
}

// A backend that notices the loss itself (state.ResetNotifier) makes the
// store load the current keys before any token is refused, so an instance
// issues with the new key at once.
func TestResetNotifierReloadsKeys(t *testing.T) {
	dir := t.TempDir()
	clock := testclock.Fixed()
	n := &notifyingStorage{FileStorage: &certmagic.FileStorage{Path: dir}}
	a, _ := newStoreOn(t, n, clock, 0)
	before := a.ring.Load().current
	if len(n.hooks) != 1 {
		t.Fatalf("the store registered %d reset hooks; want 1", len(n.hooks))
	}
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	n.hooks[0]()
	tok := issue(t, a, grant, time.Hour)
	if cur := a.ring.Load().current; cur == before || cur.id == before.id {
		t.Fatal("after a reset the store issues with the key of before")
	}
	b, _ := newStoreOn(t, &certmagic.FileStorage{Path: dir}, clock, 0)
	redeem(t, b, tok, grant.ClientID, time.Hour)
}

type notifyingStorage struct {
	*certmagic.FileStorage
	hooks []func()
}

func (n *notifyingStorage) OnReset(f func()) { n.hooks = append(n.hooks, f) }

// A backend may tell the store to forget its keys at any moment (it
// noticed a loss, or met the store for the first time without an epoch):
// a redemption under way finishes with the keys it checked the token with.
func TestForgetKeysDuringRedeem(t *testing.T) {
	dir := t.TempDir()
	st := &certmagic.FileStorage{Path: dir}
	f := &forgettingFamilies{Families: &storageFamilies{storage: st, prefix: prefix, logger: zap.NewNop()}}
	s, err := New(context.Background(), Config{Storage: st, Prefix: prefix, Families: f, Now: testclock.Fixed().Now})
	if err != nil {
		t.Fatal(err)
	}
	f.store = s
	tok := issue(t, s, grant, time.Hour)
	_, next := redeem(t, s, tok, grant.ClientID, time.Hour)
	redeem(t, s, next, grant.ClientID, time.Hour)
}

// forgettingFamilies makes its store forget its keys at each Update.
type forgettingFamilies struct {
	state.Families
	store *Store
}

func (f *forgettingFamilies) Update(ctx context.Context, id string, decide func(state.Family, bool) (state.Family, bool, error)) error {
	f.store.forgetKeys()
	return f.Families.Update(ctx, id, decide)
}

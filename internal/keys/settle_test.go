package keys

import (
	"context"
	"errors"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/certmagic"

	"github.com/tokengate/tokengate/internal/state"
	"github.com/tokengate/tokengate/internal/testclock"
)

// settlingStorage is a storage that is settling (state.Settler) for its
// first settleAsks questions; on the writeBackAt-th it gets the keys of
// from, as a running instance writes them back.
type settlingStorage struct {
	certmagic.Storage
	settleAsks  int32
	writeBackAt int32
	from        certmagic.Storage
	asked       atomic.Int32
}

func (s *settlingStorage) Settling(ctx context.Context) (bool, error) {
	n := s.asked.Add(1)
	if n == s.writeBackAt {
		data, err := s.from.Load(ctx, testPrefix+"/keys.json")
		if err != nil {
			return false, err
		}
		if err := s.Storage.Store(ctx, testPrefix+"/keys.json", data); err != nil {
			return false, err
		}
	}
	return n <= s.settleAsks, nil
}

var _ state.Settler = (*settlingStorage)(nil)

// A manager starting on a settling storage without keys makes none: it
// waits and loads the keys written back meanwhile.
func TestLoadWaitsForKeysWrittenBack(t *testing.T) {
	clock := testclock.New(time.Now())
	running := &certmagic.FileStorage{Path: t.TempDir()}
	a := loadedManager(t, running, clock, ES256, time.Hour, time.Hour)
	st := &settlingStorage{Storage: &certmagic.FileStorage{Path: t.TempDir()}, settleAsks: 100, writeBackAt: 3, from: running}
	b := loadedManager(t, st, clock, ES256, time.Hour, time.Hour)
	if st.asked.Load() != 3 {
		t.Errorf("Settling asked %d times; want 3 (until the keys were written back)", st.asked.Load())
	}
	if got, want := jwksKIDs(t, b), jwksKIDs(t, a); !slices.Equal(got, want) {
		t.Errorf("published %v after the keys were written back; want %v", got, want)
	}
	if ks := storedKeys(t, st); len(ks) != 1 || ks[0].KID != current(t, a).KID {
		t.Errorf("stored keys %v; want only the one written back", ks)
	}
}

// Once the storage settled with no key written back, the first key is
// made; while it is settling, Check makes none and Current answers
// ErrNotLoaded (503 at the token endpoint).
func TestFirstKeyAfterSettling(t *testing.T) {
	clock := testclock.New(time.Now())
	st := &settlingStorage{Storage: &certmagic.FileStorage{Path: t.TempDir()}, settleAsks: 2}
	m := newManager(t, st, clock, ES256, time.Hour, time.Hour)
	m.Check(context.Background())
	if _, err := m.Current(); !errors.Is(err, ErrNotLoaded) || !errors.Is(err, state.ErrUnavailable) {
		t.Fatalf("Current while settling: %v; want ErrNotLoaded", err)
	}
	if _, err := st.Load(context.Background(), testPrefix+"/keys.json"); err == nil {
		t.Fatal("a key was stored while the storage was settling")
	}
	if err := m.Load(context.Background()); err != nil {
		t.Fatalf("Load: %v", err)
	}
	if n := st.asked.Load(); n != 3 {
		t.Errorf("Settling asked %d times; want 3", n)
	}
	if ks := storedKeys(t, st); len(ks) != 1 || ks[0].KID != current(t, m).KID {
		t.Errorf("stored keys %v; want the one made once settled", ks)
	}
	// With a key, the storage is not asked again.
	clock.Advance(31 * time.Minute)
	m.Check(context.Background())
	if n := st.asked.Load(); n != 3 {
		t.Errorf("Settling asked again (%d) by a rotation over existing keys", n)
	}
}

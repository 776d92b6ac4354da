package redis

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/tokengate/tokengate/internal/refresh"
	"github.com/tokengate/tokengate/internal/state"
	"github.com/tokengate/tokengate/internal/testredis"
)

// TestRestartedEmptyRefreshTokens: Redis comes back empty. The refresh
// token MAC keys are not written back with the signing keys (the families'
// records are lost), each instance is told once it notices (the epoch gone,
// or changed by the one that noticed first) and loads the one new key: a
// refresh token made afterwards at one instance is redeemed at the other,
// and every token of before is refused at both, a redeemed one included.
func TestRestartedEmptyRefreshTokens(t *testing.T) {
	srv := testredis.Start(t)
	cfg := Redis{Addresses: []string{srv.Addr()}}
	a, b := open(t, cfg), open(t, cfg)
	ctx := context.Background()
	stores := map[*state.Handles]*refresh.Store{}
	for _, h := range []*state.Handles{a, b} {
		s, err := refresh.New(ctx, refresh.Config{Storage: h.Storage, Prefix: prefix, Families: h.Families})
		if err != nil {
			t.Fatal(err)
		}
		stores[h] = s
	}
	eventually(t, "both subscribed", func() bool { return subscribers(t, srv) == 2 })
	for _, h := range []*state.Handles{a, b} {
		if err := h.Revocations.Sync(ctx); err != nil {
			t.Fatal(err)
		}
	}
	// Both hold the signing keys, as running instances do: whichever
	// notices first writes them back.
	if err := a.Storage.Store(ctx, prefix+"/keys.json", []byte("the keys")); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Storage.Load(ctx, prefix+"/keys.json"); err != nil {
		t.Fatal(err)
	}
	g := refresh.Grant{ClientID: "c"}
	t0, err := stores[a].Issue(ctx, g, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	_, t1, err := stores[a].Redeem(ctx, t0, "c", time.Hour, nil)
	if err != nil {
		t.Fatal(err)
	}
	never, err := stores[b].Issue(ctx, g, time.Hour)
	if err != nil {
		t.Fatal(err)
	}

	srv.Stop()
	srv.Wipe()
	srv.Start()
	back := time.Now()
	files := DefaultKeyPrefix + "{0123456789abcdef}:files"
	eventually(t, "keys written back", func() bool {
		v, err := srv.Do("HEXISTS " + files + " " + prefix + "/keys.json")
		return err == nil && v == "1"
	})
	t.Logf("keys written back %v after redis answered again", time.Since(back).Round(time.Millisecond))
	eventually(t, "both instances caught up", func() bool {
		return a.Revocations.Sync(ctx) == nil && b.Revocations.Sync(ctx) == nil
	})
	refreshKeys := func() int {
		names, err := srv.Do("HKEYS " + files)
		if err != nil {
			t.Fatal(err)
		}
		return strings.Count(names, refresh.StoreBound(prefix)[0])
	}
	if n := refreshKeys(); n != 0 {
		t.Fatalf("%d refresh token keys written back after the loss; want none", n)
	}

	// Before any token of before is refused (which would tell them too):
	// a token made now by b is made with the key a uses.
	fresh, err := stores[b].Issue(ctx, g, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := stores[a].Redeem(ctx, fresh, "c", time.Hour, nil); err != nil {
		t.Fatalf("a refresh token made after the loss at one instance, at the other: %v", err)
	}
	if n := refreshKeys(); n != 1 {
		t.Fatalf("%d refresh token keys after the loss; want the one new", n)
	}
	for _, tc := range []struct {
		name  string
		at    *state.Handles
		token string
	}{
		{"the token redeemed before, replayed", b, t0},
		{"the token redeemed before, replayed where it was", a, t0},
		{"its successor", a, t1},
		{"a token never redeemed", a, never},
	} {
		if _, _, err := stores[tc.at].Redeem(ctx, tc.token, "c", time.Hour, nil); !errors.Is(err, refresh.ErrInvalid) {
			t.Errorf("%s after redis lost its data: %v; want refresh.ErrInvalid", tc.name, err)
		}
	}
}

package redis

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io/fs"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	goredis "github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/tokengate/tokengate/internal/revocation"
	"github.com/tokengate/tokengate/internal/state"
	"github.com/tokengate/tokengate/internal/state/caddystorage"
	"github.com/tokengate/tokengate/internal/statetest"
	"github.com/tokengate/tokengate/internal/testredis"
	"github.com/tokengate/tokengate/internal/testsync"
)

const prefix = "tokengate/issuers/0123456789abcdef"

// open is one instance's handles on Redis at addrs, with a client of its
// own, as a Caddy instance would have.
func open(t *testing.T, cfg Redis) *state.Handles { return openB(t, cfg) }

func openB(t testing.TB, cfg Redis) *state.Handles {
	t.Helper()
	o, err := cfg.Options(caddy.NewReplacer())
	if err != nil {
		t.Fatal(err)
	}
	cfg.client, cfg.logger = goredis.NewUniversalClient(o), zap.NewNop()
	h, err := cfg.Open(context.Background(), prefix)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close(); _ = cfg.Cleanup() })
	return h
}

func eventually(t *testing.T, what string, f func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !f() {
		if time.Now().After(deadline) {
			t.Fatalf("not within 15s: %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestRevocationPushedToOtherInstances(t *testing.T) {
	srv := testredis.Start(t)
	a, b := open(t, Redis{Addresses: []string{srv.Addr()}}), open(t, Redis{Addresses: []string{srv.Addr()}})
	ctx := context.Background()
	eventually(t, "both subscribed", func() bool { return subscribers(t, srv) == 2 })
	if err := a.Revocations.Revoke(ctx, "jti-1", time.Now().Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if !a.Revocations.IsRevoked("jti-1") {
		t.Fatal("the revoking instance does not refuse the token at once")
	}
	eventually(t, "the other instance refuses the revoked token", func() bool { return b.Revocations.IsRevoked("jti-1") })
	if b.Revocations.IsRevoked("jti-2") {
		t.Fatal("an unrevoked jti is refused")
	}
	// The revocation is a key that expires with its token (+MaxLeeway).
	ttl, err := srv.Do("PTTL " + prefixKey("rev:", "jti-1"))
	if err != nil || !strings.HasPrefix(ttl, "3") || len(ttl) != 6 { // 360000 ms ± a little
		t.Fatalf("revocation key TTL = %q, %v; want about 6m", ttl, err)
	}
}

func subscribers(t *testing.T, srv *testredis.Server) int {
	out, err := srv.Do("PUBSUB NUMSUB " + DefaultKeyPrefix + "{0123456789abcdef}:revocations")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(out, "\n")
	if len(lines) != 2 {
		return 0
	}
	n := 0
	for _, c := range lines[1] {
		n = n*10 + int(c-'0')
	}
	return n
}

func prefixKey(kind, jti string) string {
	h := revocation.HashOf(jti)
	const hexdigits = "0123456789abcdef"
	var sb strings.Builder
	for _, c := range h {
		sb.WriteByte(hexdigits[c>>4])
		sb.WriteByte(hexdigits[c&15])
	}
	return DefaultKeyPrefix + "{0123456789abcdef}:" + kind + sb.String()
}

// A revocation published while an instance was not subscribed is read by
// the full read that follows its resubscription.
func TestResyncAfterReconnect(t *testing.T) {
	srv := testredis.Start(t)
	b := open(t, Redis{Addresses: []string{srv.Addr()}})
	revs := b.Revocations.(*revocations)
	eventually(t, "b subscribed and read everything once", func() bool { return subscribers(t, srv) == 1 && revs.reads.Load() >= 1 })
	// Stored but never published: only a full read can find it. The full
	// read that follows the first subscription may still be under way when
	// the subscriber count shows 1 (slow under -race), and then finds it;
	// such a jti proves nothing, so another is stored until one stays
	// unseen.
	until := time.Now().Add(time.Hour).Unix()
	missed := ""
	for i := 0; i < 50 && missed == ""; i++ {
		jti := "missed-" + itoa(int64(i+1))
		if _, err := srv.Do("SET " + prefixKey("rev:", jti) + " " + itoa(until) + " EX 3600"); err != nil {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond)
		if !b.Revocations.IsRevoked(jti) {
			missed = jti
		}
	}
	if missed == "" {
		t.Fatal("every stored revocation was seen without a resync: the test proves nothing")
	}
	if _, err := srv.Do("CLIENT KILL TYPE pubsub"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "a revocation missed while disconnected is read after reconnecting", func() bool { return b.Revocations.IsRevoked(missed) })
}

func itoa(n int64) string {
	if n == 0 {
		return "0"
	}
	var b []byte
	for ; n > 0; n /= 10 {
		b = append([]byte{byte('0' + n%10)}, b...)
	}
	return string(b)
}

// Of 48 concurrent redemptions of one generation on three instances,
// exactly one advances the family.
func TestFamilyUpdateExactlyOnce(t *testing.T) {
	srv := testredis.Start(t)
	testFamilyExactlyOnce(t, []*state.Handles{
		open(t, Redis{Addresses: []string{srv.Addr()}}),
		open(t, Redis{Addresses: []string{srv.Addr()}}),
		open(t, Redis{Addresses: []string{srv.Addr()}}),
	})
}

func testFamilyExactlyOnce(t *testing.T, hs []*state.Handles) {
	ctx := context.Background()
	testsync.AtOnce(48, func(i int) {
		err := hs[i%len(hs)].Families.Update(ctx, "fam1", func(rec state.Family, found bool) (state.Family, bool, error) {
			if found {
				return rec, false, nil
			}
			return state.Family{ClientID: "c", Generation: 1, Expires: time.Now().Add(time.Hour)}, true, nil
		})
		if err != nil {
			t.Error(err)
		}
	})
	rec, found, err := hs[0].Families.Load(ctx, "fam1")
	if err != nil || !found || rec.Generation != 1 {
		t.Fatalf("family = %+v, %v, %v", rec, found, err)
	}
	// A second round: each instance tries to advance 1 -> 2 at once.
	var advanced atomic.Int32
	testsync.AtOnce(48, func(i int) {
		wrote := false
		err := hs[i%len(hs)].Families.Update(ctx, "fam1", func(rec state.Family, found bool) (state.Family, bool, error) {
			wrote = false
			if rec.Generation != 1 {
				return rec, false, nil
			}
			rec.Generation = 2
			wrote = true
			return rec, true, nil
		})
		if err != nil {
			t.Error(err)
		}
		if wrote {
			advanced.Add(1)
		}
	})
	if n := advanced.Load(); n != 1 {
		t.Fatalf("%d updates advanced generation 1 to 2; want exactly 1", n)
	}
	if rec, _, _ := hs[1].Families.Load(ctx, "fam1"); rec.Generation != 2 {
		t.Fatalf("generation = %d", rec.Generation)
	}
}

func TestFamilyCorruptRefused(t *testing.T) {
	srv := testredis.Start(t)
	h := open(t, Redis{Addresses: []string{srv.Addr()}})
	if _, err := srv.Do("SET " + DefaultKeyPrefix + "{0123456789abcdef}:fam:bad {not-json"); err != nil {
		t.Fatal(err)
	}
	err := h.Families.Update(context.Background(), "bad", func(rec state.Family, found bool) (state.Family, bool, error) {
		t.Fatal("decide called on a corrupt record")
		return rec, false, nil
	})
	if !errors.Is(err, state.ErrCorrupt) {
		t.Fatalf("err = %v; want ErrCorrupt", err)
	}
}

func TestStorageAndLocks(t *testing.T) {
	srv := testredis.Start(t)
	a, b := open(t, Redis{Addresses: []string{srv.Addr()}}), open(t, Redis{Addresses: []string{srv.Addr()}})
	ctx := context.Background()
	if _, err := a.Storage.Load(ctx, prefix+"/keys.json"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("missing file: %v", err)
	}
	for _, k := range []string{"/refresh_keys/aa", "/refresh_keys/bb", "/keys.json"} {
		if err := a.Storage.Store(ctx, prefix+k, []byte(k)); err != nil {
			t.Fatal(err)
		}
	}
	if v, err := b.Storage.Load(ctx, prefix+"/refresh_keys/bb"); err != nil || string(v) != "/refresh_keys/bb" {
		t.Fatalf("load = %q, %v", v, err)
	}
	names, err := b.Storage.List(ctx, prefix, false)
	if err != nil || strings.Join(names, ",") != prefix+"/keys.json,"+prefix+"/refresh_keys" {
		t.Fatalf("list = %v, %v", names, err)
	}
	if _, err := b.Storage.List(ctx, prefix+"/none", false); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("list of nothing: %v", err)
	}
	// One holder at a time.
	if err := a.Storage.Lock(ctx, "k"); err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	if err := b.Storage.Lock(short, "k"); err == nil {
		t.Fatal("a second instance took a held lock")
	}
	got := make(chan error, 1)
	go func() { got <- b.Storage.Lock(ctx, "k") }()
	time.Sleep(50 * time.Millisecond)
	if err := a.Storage.Unlock(ctx, "k"); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-got:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("the waiting instance did not get the lock once freed")
	}
	if err := b.Storage.Unlock(ctx, "k"); err != nil {
		t.Fatal(err)
	}
}

// With Redis gone, every write is ErrUnavailable, the gate keeps what it
// knows, and once Redis is back all works again.
func TestUnavailable(t *testing.T) {
	srv := testredis.StartWith(t, testredis.Options{Persist: true})
	h := open(t, Redis{Addresses: []string{srv.Addr()}, Timeout: caddy.Duration(200 * time.Millisecond), DialTimeout: caddy.Duration(200 * time.Millisecond)})
	ctx := context.Background()
	if err := h.Revocations.Revoke(ctx, "before", time.Now().Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	srv.Stop()
	if err := h.Revocations.Revoke(ctx, "during", time.Now().Add(time.Minute)); !errors.Is(err, state.ErrUnavailable) {
		t.Fatalf("revoke with redis down: %v", err)
	}
	if h.Revocations.IsRevoked("during") {
		t.Fatal("a revocation that failed is held as done")
	}
	if !h.Revocations.IsRevoked("before") {
		t.Fatal("the gate forgot a revocation while redis was down")
	}
	err := h.Families.Update(ctx, "f", func(rec state.Family, _ bool) (state.Family, bool, error) { return rec, true, nil })
	if !errors.Is(err, state.ErrUnavailable) {
		t.Fatalf("family update with redis down: %v", err)
	}
	if _, err := h.Storage.Load(ctx, prefix+"/keys.json"); !errors.Is(err, state.ErrUnavailable) {
		t.Fatalf("load with redis down: %v", err)
	}
	if err := h.Revocations.Sync(ctx); !errors.Is(err, state.ErrUnavailable) {
		t.Fatalf("sync with redis down: %v", err)
	}
	srv.Start()
	eventually(t, "revoking works again", func() bool { return h.Revocations.Revoke(ctx, "after", time.Now().Add(time.Minute)) == nil })
}

// Redis restarted empty: the instance writes back the keys and revocations
// it holds, and an instance starting afterwards finds them.
func TestRestartedEmptyWritesBack(t *testing.T) {
	srv := testredis.Start(t)
	a := open(t, Redis{Addresses: []string{srv.Addr()}})
	ctx := context.Background()
	eventually(t, "a subscribed", func() bool { return subscribers(t, srv) == 1 })
	if err := a.Revocations.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if err := a.Storage.Store(ctx, prefix+"/keys.json", []byte("the keys")); err != nil {
		t.Fatal(err)
	}
	if err := a.Revocations.Revoke(ctx, "r1", time.Now().Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	srv.Stop()
	srv.Wipe()
	srv.Start()
	// The subscription comes back and its full read finds the epoch gone.
	eventually(t, "keys written back", func() bool {
		v, err := srv.Do("HEXISTS " + DefaultKeyPrefix + "{0123456789abcdef}:files " + prefix + "/keys.json")
		return err == nil && v == "1"
	})
	eventually(t, "revocation written back", func() bool { v, err := srv.Do("EXISTS " + prefixKey("rev:", "r1")); return err == nil && v == "1" })
	b := open(t, Redis{Addresses: []string{srv.Addr()}})
	if v, err := b.Storage.Load(ctx, prefix+"/keys.json"); err != nil || string(v) != "the keys" {
		t.Fatalf("a new instance loads %q, %v", v, err)
	}
	eventually(t, "a new instance refuses the written-back revocation", func() bool { return b.Revocations.IsRevoked("r1") })
}

func TestCluster(t *testing.T) {
	c := testredis.StartCluster(t)
	cfg := Redis{Addresses: c.Addrs()}
	a, b := open(t, cfg), open(t, Redis{Addresses: c.Addrs()[:1], Cluster: true})
	ctx := context.Background()
	if err := a.Storage.Store(ctx, prefix+"/keys.json", []byte("k")); err != nil {
		t.Fatal(err)
	}
	if v, err := b.Storage.Load(ctx, prefix+"/keys.json"); err != nil || string(v) != "k" {
		t.Fatalf("load = %q, %v", v, err)
	}
	time.Sleep(200 * time.Millisecond) // subscriptions up
	if err := a.Revocations.Revoke(ctx, "c1", time.Now().Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	eventually(t, "revocation pushed across the cluster", func() bool { return b.Revocations.IsRevoked("c1") })
	testFamilyExactlyOnce(t, []*state.Handles{a, b})
}

// TestConformance runs the state backends' suite on a real redis-server.
func TestConformance(t *testing.T) {
	srv := testredis.Start(t)
	openWith := func(t *testing.T, now func() time.Time) *state.Handles {
		cfg := Redis{Addresses: []string{srv.Addr()}}
		o, err := cfg.Options(caddy.NewReplacer())
		if err != nil {
			t.Fatal(err)
		}
		cfg.client, cfg.logger = goredis.NewUniversalClient(o), zap.NewNop()
		h := cfg.open(prefix, now)
		t.Cleanup(func() { h.Close(); _ = cfg.Cleanup() })
		return h
	}
	t.Run("revocations", func(t *testing.T) {
		statetest.Revocations(t, revocation.MaxLeeway, func(t *testing.T, now func() time.Time) state.Revocations {
			return openWith(t, now).Revocations
		})
	})
	t.Run("clients", func(t *testing.T) {
		// Runtime clients on Redis are the storage backend's records and
		// change log (internal/state/caddystorage) on this package's
		// storage: the suite checks they keep its promises there.
		statetest.Clients(t, func(t *testing.T) state.Clients {
			return caddystorage.NewClients(openWith(t, time.Now).Storage, prefix, nil)
		},
			func(t *testing.T, id string) {
				sum := sha256.Sum256([]byte(id))
				key := prefix + "/clients/records/" + hex.EncodeToString(sum[:16])
				if err := openWith(t, time.Now).Storage.Store(context.Background(), key, []byte("{not json")); err != nil {
					t.Fatal(err)
				}
			})
	})
	t.Run("families", func(t *testing.T) {
		statetest.Families(t, func(t *testing.T) state.Families { return openWith(t, time.Now).Families },
			func(t *testing.T, id string) {
				if _, err := srv.Do("SET " + DefaultKeyPrefix + "{0123456789abcdef}:fam:" + id + " {"); err != nil {
					t.Fatal(err)
				}
			})
	})
}

package redis

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tokengate/tokengate/internal/state"
	"github.com/tokengate/tokengate/internal/state/caddystorage"
	"github.com/tokengate/tokengate/internal/statetest"
	"github.com/tokengate/tokengate/internal/testredis"
)

// clientSubscribers counts the connections subscribed to the issuer's
// clients channel.
func clientSubscribers(t *testing.T, srv *testredis.Server) int {
	t.Helper()
	out, err := srv.Do("PUBSUB NUMSUB " + DefaultKeyPrefix + "{0123456789abcdef}:clients")
	if err != nil {
		t.Fatal(err)
	}
	_, n, _ := strings.Cut(out, "\n")
	var v int
	fmt.Sscan(n, &v)
	return v
}

func setDisabled(t *testing.T, c state.Clients, id string, disabled bool) {
	t.Helper()
	err := c.Update(context.Background(), id, func(rec state.Client, _ bool) (state.Client, bool, error) {
		rec.Disabled = disabled
		return rec, true, nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestClientsConformance: the pushed client records keep the promises of
// the state suite (Sync names each change once, no lost updates, a corrupt
// record refuses its client).
func TestClientsConformance(t *testing.T) {
	srv := testredis.Start(t)
	statetest.Clients(t, func(t *testing.T) state.Clients {
		return open(t, Redis{Addresses: []string{srv.Addr()}}).Clients
	}, func(t *testing.T, id string) {
		// A pushing handle may have read the record before it is damaged:
		// the damage is logged as a change, as by the writer that made it,
		// so that the suite's Sync reads the damaged record.
		ctx := context.Background()
		st := open(t, Redis{Addresses: []string{srv.Addr()}}).Storage
		sum := sha256.Sum256([]byte(id))
		key := prefix + "/clients/records/" + hex.EncodeToString(sum[:16])
		if err := st.Store(ctx, key, []byte("{not json")); err != nil {
			t.Fatal(err)
		}
		var head struct {
			Next  int `json:"next"`
			First int `json:"first"`
		}
		raw, err := st.Load(ctx, prefix+"/clients/log/head")
		if err != nil || json.Unmarshal(raw, &head) != nil {
			t.Fatalf("log head %q: %v", raw, err)
		}
		entry, _ := json.Marshal(map[string]string{"client_id": id})
		next := head
		next.Next++
		nextRaw, _ := json.Marshal(next)
		if st.Store(ctx, fmt.Sprintf("%s/clients/log/%d", prefix, head.Next), entry) != nil || st.Store(ctx, prefix+"/clients/log/head", nextRaw) != nil {
			t.Fatal("logging the damage")
		}
	})
}

// TestClientChangesPushed: a change made through one instance reaches the
// other without any Sync there (the push reads it and calls OnChange, whose
// Sync then names it), measured over 50 changes.
func TestClientChangesPushed(t *testing.T) {
	srv := testredis.Start(t)
	a, b := open(t, Redis{Addresses: []string{srv.Addr()}}).Clients, open(t, Redis{Addresses: []string{srv.Addr()}}).Clients
	var named atomic.Int64
	b.(state.ClientsPusher).OnChange(func(ctx context.Context) {
		changed, err := b.Sync(ctx)
		if err != nil {
			t.Error(err)
		}
		if slices.Contains(changed, "app") {
			named.Add(1)
		}
	})
	eventually(t, "both subscribed", func() bool { return clientSubscribers(t, srv) == 2 })
	const n = 50
	lat := make([]time.Duration, 0, n)
	for i := range n {
		disabled := i%2 == 0
		setDisabled(t, a, "app", disabled)
		start := time.Now()
		for {
			if rec, ok := b.Get("app"); ok && rec.Disabled == disabled {
				break
			}
			if time.Since(start) > 5*time.Second {
				t.Fatalf("change %d not pushed within 5s", i)
			}
			time.Sleep(100 * time.Microsecond)
		}
		lat = append(lat, time.Since(start))
	}
	slices.Sort(lat)
	t.Logf("client change seen at the other instance without a Sync, over %d changes: p50 %v, p99 %v, max %v", n, lat[n/2], lat[n*99/100-1], lat[n-1])
	if lat[n*99/100-1] > time.Second {
		t.Errorf("p99 %v > 1s", lat[n*99/100-1])
	}
	eventually(t, "OnChange's Sync named the changes", func() bool { return named.Load() > 0 })
}

// TestClientChangesResyncAfterReconnect: a change stored while an
// instance's subscription was down (here: stored without a publish) is
// read when it resubscribes, without a Sync.
func TestClientChangesResyncAfterReconnect(t *testing.T) {
	srv := testredis.Start(t)
	hb := open(t, Redis{Addresses: []string{srv.Addr()}})
	b := hb.Clients.(*clients)
	eventually(t, "b subscribed and read the log once", func() bool { return clientSubscribers(t, srv) == 1 && b.pulls.Load() >= 1 })
	// The log and records as another instance writes them, minus the
	// publish.
	silent := caddystorage.NewClients(open(t, Redis{Addresses: []string{srv.Addr()}}).Storage, prefix, nil)
	setDisabled(t, silent, "quiet", true)
	time.Sleep(300 * time.Millisecond)
	if _, ok := b.Get("quiet"); ok {
		t.Fatal("a change that was not published was read: the test proves nothing")
	}
	if _, err := srv.Do("CLIENT KILL TYPE pubsub"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the change read after resubscribing", func() bool { rec, ok := b.Get("quiet"); return ok && rec.Disabled })
	changed, err := b.Sync(context.Background())
	if err != nil || !slices.Contains(changed, "quiet") {
		t.Fatalf("Sync after the resync named %v, %v; want the change it read", changed, err)
	}
}

// TestClientCutOffSurvivesEmptyRestart: Redis comes back empty; the
// instances resubscribe, and a client disabled before stays refused all
// along (the log is read only after the instance's state is written
// back), and after.
func TestClientCutOffSurvivesEmptyRestart(t *testing.T) {
	srv := testredis.Start(t)
	cfg := Redis{Addresses: []string{srv.Addr()}}
	a, b := open(t, cfg), open(t, cfg)
	eventually(t, "both subscribed", func() bool { return clientSubscribers(t, srv) == 2 && subscribers(t, srv) == 2 })
	setDisabled(t, a.Clients, "x", true)
	eventually(t, "b sees the cut-off", func() bool { rec, ok := b.Clients.Get("x"); return ok && rec.Disabled })
	pulls := b.Clients.(*clients).pulls.Load()
	srv.Stop()
	srv.Wipe()
	srv.Start()
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		for name, h := range map[string]*state.Handles{"a": a, "b": b} {
			if rec, ok := h.Clients.Get("x"); !ok || !rec.Disabled {
				t.Fatalf("%s forgot the cut-off after redis came back empty: %+v %v", name, rec, ok)
			}
		}
		time.Sleep(200 * time.Microsecond)
	}
	if b.Clients.(*clients).pulls.Load() == pulls {
		t.Fatal("b did not read the log after resubscribing: the test proves nothing")
	}
	c := open(t, cfg)
	if _, err := c.Clients.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	if rec, ok := c.Clients.Get("x"); !ok || !rec.Disabled {
		t.Fatalf("an instance started after the restart: %+v %v; want the cut-off written back", rec, ok)
	}
}

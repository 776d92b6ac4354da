package redis

import (
	"bytes"
	"context"
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/tokengate/tokengate/internal/keys"
	"github.com/tokengate/tokengate/internal/testclock"
	"github.com/tokengate/tokengate/internal/testredis"
)

// Three instances' key managers on one Redis make one first key and, when
// it is due, one rotation: the SET NX lock lets one of them do it.
func TestKeysOneRotation(t *testing.T) {
	srv := testredis.Start(t)
	clock := testclock.New(time.Now())
	ctx := context.Background()
	var ms []*keys.Manager
	for range 3 {
		h := open(t, Redis{Addresses: []string{srv.Addr()}})
		m, err := keys.New(keys.Config{Storage: h.Storage, Prefix: prefix, Alg: "ES256", Rotation: time.Hour, MaxTokenTTL: time.Hour, Now: clock.Now})
		if err != nil {
			t.Fatal(err)
		}
		ms = append(ms, m)
	}
	each := func(f func(m *keys.Manager)) {
		var wg sync.WaitGroup
		for _, m := range ms {
			wg.Add(1)
			go func() { defer wg.Done(); f(m) }()
		}
		wg.Wait()
	}
	each(func(m *keys.Manager) {
		if err := m.Load(ctx); err != nil {
			t.Error(err)
		}
	})
	count := func() int {
		var set struct{ Keys []json.RawMessage }
		if err := json.Unmarshal(ms[0].JWKS(), &set); err != nil {
			t.Fatal(err)
		}
		for _, m := range ms[1:] {
			if !bytes.Equal(m.JWKS(), ms[0].JWKS()) {
				t.Fatalf("instances publish different keys:\n%s\n%s", ms[0].JWKS(), m.JWKS())
			}
		}
		return len(set.Keys)
	}
	if n := count(); n != 1 {
		t.Fatalf("%d keys after three instances started together; want 1", n)
	}
	clock.Advance(31 * time.Minute) // past rotation - lead (1h - 30m)
	each(func(m *keys.Manager) { m.Check(ctx) })
	each(func(m *keys.Manager) { m.Check(ctx) }) // each rereads what the rotating one wrote
	if n := count(); n != 2 {
		t.Fatalf("%d keys after one rotation by three instances; want 2", n)
	}
}

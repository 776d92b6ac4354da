package redis

import (
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/tokengate/tokengate/internal/state"
	"github.com/tokengate/tokengate/internal/statetest"
	"github.com/tokengate/tokengate/internal/testredis"
)

// TestSeenOnceConformance runs the state backends' replay set suite on a
// real redis-server, stopped for the store-down case.
func TestSeenOnceConformance(t *testing.T) {
	srv := testredis.StartWith(t, testredis.Options{Persist: true})
	// Claims expire on Redis' clock: the handles' clock is not needed.
	open := func(t *testing.T, _ func() time.Time) state.SeenOnce {
		return open(t, Redis{Addresses: []string{srv.Addr()}, Timeout: caddy.Duration(200 * time.Millisecond), DialTimeout: caddy.Duration(200 * time.Millisecond)}).SeenOnce
	}
	statetest.SeenOnce(t, open, func(t *testing.T) func() {
		srv.Stop()
		return srv.Start
	})
}

// On a Redis Cluster every claim of an issuer is in its hash tag's slot.
func TestSeenOnceCluster(t *testing.T) {
	c := testredis.StartCluster(t)
	a, b := open(t, Redis{Addresses: c.Addrs()}), open(t, Redis{Addresses: c.Addrs()[:1], Cluster: true})
	ctx := t.Context()
	until := time.Now().Add(time.Minute)
	if first, err := a.SeenOnce.Claim(ctx, "k", until); err != nil || !first {
		t.Fatalf("claim: %v %v", first, err)
	}
	if first, err := b.SeenOnce.Claim(ctx, "k", until); err != nil || first {
		t.Fatalf("a claim was taken again on another node's client: %v %v", first, err)
	}
}

// BenchmarkSeenOnceClaim is the first claim of a key on Redis: one SET NX
// PXAT round trip.
func BenchmarkSeenOnceClaim(b *testing.B) {
	statetest.BenchmarkSeenOnce(b, openB(b, Redis{Addresses: []string{testredis.Start(b).Addr()}}).SeenOnce)
}

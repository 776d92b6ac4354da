package validator

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/tokengate/tokengate/internal/remotekeys"
	"github.com/tokengate/tokengate/internal/testclock"
)

// TestRemoteRotationPickedUpAtOnce: the issuer rotates in a key right after
// the start-up fetch; a token of the new key is accepted at once, since the
// start-up fetch does not count against the unknown-kid rate limit. A second
// rotation half a second later waits for the 1s minimum, no more.
func TestRemoteRotationPickedUpAtOnce(t *testing.T) {
	p := newIDP(t, "oauth")
	clk := newClock()
	h := newRemote(t, p, "", clk, nil)
	p.addKey(t, "k2")
	if res := do(h, "Bearer "+p.token(t, "k2", "JWT", clk, nil)); !res.reached {
		t.Fatalf("token of a key rotated in after the start-up fetch refused: %v", res.err)
	}
	if n := p.jwksHits.Load(); n != 2 {
		t.Fatalf("JWKS fetched %d times, want 2 (start-up, then the unknown kid)", n)
	}
	clk.Advance(500 * time.Millisecond)
	p.addKey(t, "k3")
	tok3 := p.token(t, "k3", "JWT", clk, nil)
	if res := do(h, "Bearer "+tok3); res.reached {
		t.Fatal("a second refetch within 1s of the first: the rate limit is not applied")
	}
	clk.Advance(600 * time.Millisecond)
	if res := do(h, "Bearer "+tok3); !res.reached {
		t.Fatalf("token of the second rotated-in key refused 1.1s after the last refetch: %v", res.err)
	}
}

// TestRemoteUnknownKidBackoff: refetches that find nothing new double the
// wait up to remotekeys.RefetchMaxInterval; one that finds a new key resets it.
func TestRemoteUnknownKidBackoff(t *testing.T) {
	p := newIDP(t, "oauth")
	clk := newClock()
	h := newRemote(t, p, "", clk, nil)
	h.noCache = true
	// One random kid every 100ms for 100s (fake time): refetches at 0, 2,
	// 6, 14, 30, 60 and 90s (each finding nothing new doubles the wait).
	for i := range 1000 {
		if res := do(h, "Bearer "+p.token(t, fmt.Sprintf("random-%d", i), "JWT", clk, nil)); res.reached {
			t.Fatal("random kid accepted")
		}
		clk.Advance(100 * time.Millisecond)
	}
	misses := p.jwksHits.Load() - 1
	t.Logf("1000 random kids over 100s: %d JWKS fetches (after the start-up fetch)", misses)
	if misses != 7 {
		t.Errorf("%d refetches, want 7 (waits 2, 4, 8, 16, 30, 30s)", misses)
	}
	// A rotation during the flood is seen at the next allowed refetch, and
	// resets the wait to 1s.
	p.addKey(t, "k2")
	clk.Advance(remotekeys.RefetchMaxInterval)
	if res := do(h, "Bearer "+p.token(t, "k2", "JWT", clk, nil)); !res.reached {
		t.Fatalf("rotated-in key refused after the longest wait: %v", res.err)
	}
	p.addKey(t, "k3")
	clk.Advance(remotekeys.RefetchMinInterval)
	if res := do(h, "Bearer "+p.token(t, "k3", "JWT", clk, nil)); !res.reached {
		t.Fatalf("wait not reset by a refetch that found a new key: %v", res.err)
	}
}

// TestRemoteRotationRealTime measures, on the real clock with an HTTP
// JWKS server, how long after a rotation a token of the new key is first
// accepted, with the previous refetch made just before the rotation (the
// worst case without a flood). It must be under 2s.
func TestRemoteRotationRealTime(t *testing.T) {
	p := newIDP(t, "oauth")
	h, clk := newRemoteRealTime(t, p)
	// An unknown kid just before the rotation uses up the immediate refetch.
	p.addKey(t, "k2")
	if res := do(h, "Bearer "+p.token(t, "k2", "JWT", clk, nil)); !res.reached {
		t.Fatalf("first rotation refused: %v", res.err)
	}
	p.addKey(t, "k3")
	rotated := time.Now()
	tok := p.token(t, "k3", "JWT", clk, nil)
	waitRotation(t, h, tok, rotated, "refetch 0s before the rotation")
}

// waitRotation sends tok every 50ms until h accepts it, prints how long
// after the rotation that was, and fails when it was 2s or more.
func waitRotation(t *testing.T, h *Handler, tok string, rotated time.Time, what string) {
	t.Helper()
	for {
		if res := do(h, "Bearer "+tok); res.reached {
			break
		}
		if time.Since(rotated) > 5*time.Second {
			t.Fatalf("%s: the token of the rotated-in key still refused after 5s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
	took := time.Since(rotated)
	fmt.Printf("rotation picked up in %v (%s; requests every 50ms)\n", took.Round(time.Millisecond), what)
	if took >= 2*time.Second {
		t.Errorf("%s: rotation picked up in %v, want under 2s", what, took)
	}
}

// TestRemoteKidStormRealTime sends 1,000 tokens with random kids at once,
// on the real clock against an HTTP JWKS server, and counts the fetches.
func TestRemoteKidStormRealTime(t *testing.T) {
	p := newIDP(t, "oauth")
	h, clk := newRemoteRealTime(t, p)
	toks := make([]string, 1000)
	for i := range toks {
		toks[i] = p.token(t, fmt.Sprintf("storm-%d-%d", i, time.Now().UnixNano()), "JWT", clk, nil)
	}
	before := p.jwksHits.Load()
	start := time.Now()
	var wg sync.WaitGroup
	for _, tok := range toks {
		wg.Go(func() {
			if res := do(h, "Bearer "+tok); res.reached || res.status != 401 {
				t.Errorf("random kid: reached=%v status=%d", res.reached, res.status)
			}
		})
	}
	wg.Wait()
	n := p.jwksHits.Load() - before
	fmt.Printf("storm of 1000 random kids in %v: %d JWKS fetches\n", time.Since(start).Round(time.Millisecond), n)
	if n > 3 {
		t.Errorf("%d fetches for a storm of random kids, want at most 3", n)
	}
}

// newRemoteRealTime makes a handler trusting the IdP whose fetcher runs on
// the real clock; the returned clock (for minting tokens and checking
// expiry) stands at the current time.
func newRemoteRealTime(t *testing.T, p *idp) (*Handler, *clock) {
	t.Helper()
	clk := testclock.New(time.Now())
	f := remotekeys.New(remotekeys.Config{Issuer: p.srv.URL})
	f.Start(2 * time.Second)
	t.Cleanup(func() { _ = f.Destruct() })
	h := &Handler{Issuer: p.srv.URL, Audience: []string{"api://reports"}, logger: zap.NewNop(), now: clk.Now}
	h.audience = h.Audience
	if err := h.provisionCommon(); err != nil {
		t.Fatal(err)
	}
	h.useRemote(p.srv.URL, f)
	return h, clk
}

package validator

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
)

// introspectionEndpoint is a fake RFC 7662 endpoint: tokens named
// "active-<seconds>" are active until now+seconds ("foreign-<seconds>"
// too, but for another issuer; "elsewhere-<seconds>" for another
// audience), others inactive.
type introspectionEndpoint struct {
	srv   *httptest.Server
	calls atomic.Int64
}

// want checks how many introspections were made.
func (e *introspectionEndpoint) want(t *testing.T, n int64, when string) {
	t.Helper()
	if got := e.calls.Load(); got != n {
		t.Errorf("%d introspections %s, want %d", got, when, n)
	}
}

func newIntrospected(t *testing.T, p *idp, clk *clock, in *Introspection) (*Handler, *introspectionEndpoint) {
	t.Helper()
	e := &introspectionEndpoint{}
	e.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e.calls.Add(1)
		// RFC 6749 §2.3.1: the credentials are form-encoded first.
		id, secret, _ := r.BasicAuth()
		id, _ = url.QueryUnescape(id)
		secret, _ = url.QueryUnescape(secret)
		if id != "gate" || secret != "gate secret" {
			http.Error(w, `{"error":"invalid_client"}`, http.StatusUnauthorized)
			return
		}
		tok := r.PostFormValue("token")
		kind, rest, _ := strings.Cut(tok, "-")
		var secs int64
		if _, err := fmt.Sscanf(rest, "%d", &secs); err != nil {
			_, _ = w.Write([]byte(`{"active":false}`))
			return
		}
		iss, aud := p.srv.URL, "api://reports"
		switch kind {
		case "foreign":
			iss = "https://other.example.com"
		case "elsewhere":
			aud = "api://other"
		case "active":
		default:
			_, _ = w.Write([]byte(`{"active":false}`))
			return
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"active": true, "iss": iss, "aud": aud,
			"exp": clk.Now().Unix() + secs, "sub": "svc-" + tok, "scope": "reports.read"})
	}))
	t.Cleanup(e.srv.Close)
	in.Endpoint, in.ClientID, in.ClientSecret = e.srv.URL, "gate", "gate secret"
	h := newRemote(t, p, "", clk, func(h *Handler) { h.Introspection = in })
	if err := h.provisionIntrospection(); err != nil {
		t.Fatal(err)
	}
	return h, e
}

// TestIntrospectionCachedUntilExpOrBound: an active answer is reused until
// the token's exp or cache_for, whichever comes first.
func TestIntrospectionCachedUntilExpOrBound(t *testing.T) {
	p := newIDP(t, "oauth")
	clk := newClock()
	h, e := newIntrospected(t, p, clk, &Introspection{CacheFor: caddy.Duration(time.Minute)})
	// exp (30s) before the bound (1m).
	for range 3 {
		if res := do(h, "Bearer active-30"); !res.reached {
			t.Fatalf("active opaque token refused: %v", res.err)
		}
	}
	if n := e.calls.Load(); n != 1 {
		t.Fatalf("%d introspections, want 1", n)
	}
	clk.Advance(31 * time.Second)
	do(h, "Bearer active-30")
	e.want(t, 2, "after the token's exp")
	// The bound (1m) before exp (1h).
	do(h, "Bearer active-3600")
	clk.Advance(59 * time.Second)
	do(h, "Bearer active-3600")
	e.want(t, 3, "within cache_for")
	clk.Advance(2 * time.Second)
	do(h, "Bearer active-3600")
	e.want(t, 4, "past cache_for")
}

// TestIntrospectionNegativeCache: an inactive answer is reused for
// negative_cache_for only, and concurrent requests make one call.
func TestIntrospectionNegativeCache(t *testing.T) {
	p := newIDP(t, "oauth")
	clk := newClock()
	h, e := newIntrospected(t, p, clk, &Introspection{})
	var wg sync.WaitGroup
	for range 50 {
		wg.Go(func() {
			if res := do(h, "Bearer revoked-or-unknown"); res.reached || res.status != 401 || !strings.Contains(res.www, errInactive.Error()) {
				t.Errorf("inactive token: reached=%v status=%d www=%q", res.reached, res.status, res.www)
			}
		})
	}
	wg.Wait()
	e.want(t, 1, "for 50 concurrent requests")
	clk.Advance(defaultIntrospectNegative + time.Second)
	do(h, "Bearer revoked-or-unknown")
	e.want(t, 2, "past the negative cache")
}

// TestIntrospectionCacheBounds: the cache holds at most max_cached_tokens
// entries and max_cached_bytes.
func TestIntrospectionCacheBounds(t *testing.T) {
	p := newIDP(t, "oauth")
	clk := newClock()
	h, _ := newIntrospected(t, p, clk, &Introspection{MaxCachedTokens: 5, MaxCachedBytes: 4 << 10})
	for i := range 100 {
		if res := do(h, fmt.Sprintf("Bearer active-%d", 600+i)); !res.reached {
			t.Fatalf("refused: %v", res.err)
		}
		h.intro.mu.Lock()
		n, b := len(h.intro.entries), h.intro.bytes
		h.intro.mu.Unlock()
		if n > 5 || b > 4<<10 {
			t.Fatalf("after %d tokens: %d entries, %d bytes; bounds 5 and 4096", i+1, n, b)
		}
	}
}

// TestIntrospectionRefusals: an answer for another issuer or audience, or
// a failing endpoint, is refused; a JWT is still verified locally.
func TestIntrospectionRefusals(t *testing.T) {
	p := newIDP(t, "oauth")
	clk := newClock()
	h, e := newIntrospected(t, p, clk, &Introspection{})
	if res := do(h, "Bearer "+p.token(t, "k1", "JWT", clk, nil)); !res.reached {
		t.Fatalf("JWT refused on a route with introspection: %v", res.err)
	}
	if e.calls.Load() != 0 {
		t.Error("a JWT was introspected")
	}
	for _, tok := range []string{"foreign-60", "elsewhere-60"} {
		if res := do(h, "Bearer "+tok); res.reached || res.status != 401 {
			t.Errorf("%s: reached=%v status=%d", tok, res.reached, res.status)
		}
	}
	h3, _ := newIntrospected(t, p, clk, &Introspection{})
	h3.intro.secret = "wrong"
	if res := do(h3, "Bearer active-60"); res.reached || !strings.Contains(res.www, errIntrospectFailed.Error()) {
		t.Errorf("endpoint refusing the gate: reached=%v www=%q", res.reached, res.www)
	}
}

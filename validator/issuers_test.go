package validator

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/tokengate/tokengate/internal/accesstoken"
	"github.com/tokengate/tokengate/internal/testclock"
)

// TestSeveralIssuers: a route trusting two issuers, each with its own
// audience, accepts both issuers' tokens for their audiences, refuses a
// token of one issuer with the other's audience, and verifies each token
// only with the keys of the issuer its iss names.
func TestSeveralIssuers(t *testing.T) {
	a, b := newIDP(t, "oidc"), newIDP(t, "oauth")
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	h := &Handler{Issuers: []TrustedIssuer{
		{Issuer: a.srv.URL, Audience: []string{"api://a"}},
		{Issuer: b.srv.URL, Audience: []string{"api://b"}},
	}}
	if err := h.Provision(ctx); err != nil {
		t.Fatalf("Provision: %v", err)
	}
	t.Cleanup(func() { _ = h.Cleanup() })
	clk := testclock.New(time.Now())
	aud := func(v string) func(map[string]any) { return func(c map[string]any) { c["aud"] = v } }
	tests := []struct {
		name string
		tok  string
		ok   bool
		why  error
	}{
		{"issuer A, audience A", a.token(t, "k1", "JWT", clk, aud("api://a")), true, nil},
		{"issuer B, audience B", b.token(t, "k1", "JWT", clk, aud("api://b")), true, nil},
		{"issuer A, audience B", a.token(t, "k1", "JWT", clk, aud("api://b")), false, accesstoken.ErrAudience},
		{"issuer B, audience A", b.token(t, "k1", "JWT", clk, aud("api://a")), false, accesstoken.ErrAudience},
		// B's key, A's iss: verified with A's keys only, where kid k1 is
		// another key.
		{"signed by B, naming A", b.token(t, "k1", "JWT", clk, func(c map[string]any) { c["iss"], c["aud"] = a.srv.URL, "api://a" }), false, accesstoken.ErrBadSignature},
		{"unknown issuer", a.token(t, "k1", "JWT", clk, func(c map[string]any) { c["iss"] = "https://other.example.com" }), false, accesstoken.ErrIssuer},
		{"not a JWT", "opaque-token-value", false, accesstoken.ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := do(h, "Bearer "+tt.tok)
			if res.reached != tt.ok {
				t.Fatalf("reached=%v, want %v (%v)", res.reached, tt.ok, res.err)
			}
			if tt.why != nil && !strings.Contains(res.www, tt.why.Error()) {
				t.Errorf("challenge %q, want %q", res.www, tt.why)
			}
		})
	}
	// Only the start-up fetches and, for B's key presented as A's, no
	// more: a token is never tried against every key set.
	if na, nb := a.jwksHits.Load(), b.jwksHits.Load(); na != 1 || nb != 1 {
		t.Errorf("JWKS fetches: A %d, B %d; want 1 and 1", na, nb)
	}
	if res := do(h, "Bearer "+a.token(t, "k1", "JWT", clk, aud("api://a"))); res.repl == nil || !res.reached {
		t.Fatal("refused")
	} else if v, _ := res.repl.GetString("http.auth.user.iss"); v != a.srv.URL {
		t.Errorf("{http.auth.user.iss} = %q", v)
	}
}

// TestSeveralIssuersRouteAudience: an issuer block without audience takes
// the route's.
func TestSeveralIssuersRouteAudience(t *testing.T) {
	a, b := newIDP(t, "oidc"), newIDP(t, "oidc")
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	h := &Handler{Audience: []string{"api://shared"}, Issuers: []TrustedIssuer{{Issuer: a.srv.URL}, {Issuer: b.srv.URL, Audience: []string{"api://b"}}}}
	if err := h.Provision(ctx); err != nil {
		t.Fatalf("Provision: %v", err)
	}
	t.Cleanup(func() { _ = h.Cleanup() })
	clk := testclock.New(time.Now())
	if res := do(h, "Bearer "+a.token(t, "k1", "JWT", clk, func(c map[string]any) { c["aud"] = "api://shared" })); !res.reached {
		t.Errorf("A with the route's audience refused: %v", res.err)
	}
	if res := do(h, "Bearer "+b.token(t, "k1", "JWT", clk, func(c map[string]any) { c["aud"] = "api://shared" })); res.reached {
		t.Error("B with the route's audience accepted, though its block names its own")
	}
}

// FuzzIssuerOf: the unverified peek at a token's iss never panics, and
// picks an issuer only when the payload names that issuer (the chosen
// issuer's verifier then requires the same of the verified claims).
func FuzzIssuerOf(f *testing.F) {
	h := &Handler{byIss: map[string]*Handler{"https://a.example.com": {iss: "https://a.example.com"}, "https://b.example.com/": {iss: "https://b.example.com/"}}}
	for _, s := range []string{
		"", "a.b.c", "x." + b64(`{"iss":"https://a.example.com"}`) + ".y",
		"x." + b64(`{"iss":"https://b.example.com/","iss":"https://a.example.com"}`) + ".y",
		"x." + b64(`{"ISS":"https://a.example.com"}`) + ".y",
		"x." + b64(`{"iss":["https://a.example.com"]}`) + ".y",
		"x." + b64(`{"iss":"https://c.example.com"}`) + ".y", "opaque-token",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, tok string) {
		one, err := h.issuerOf(tok)
		if err != nil {
			return
		}
		if one == nil || h.byIss[one.iss] != one {
			t.Fatalf("issuerOf(%q) returned a handler not among the issuers", tok)
		}
		if strings.Count(tok, ".") != 2 {
			t.Fatalf("issuerOf(%q) picked %q for a token that is not a compact JWS", tok, one.iss)
		}
	})
}

package validator

import (
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

// TestRepeatedClaimIsOrRepeatedScopesIsAnd pins what the review asked to
// decide: a repeated `claim` line for one claim adds accepted values (any
// one of them will do), while repeated `scopes` lines add required scopes
// (all of them are needed), and different claims are all required.
func TestRepeatedClaimIsOrRepeatedScopesIsAnd(t *testing.T) {
	var parsed Handler
	d := caddyfile.NewTestDispenser(`bearer_auth {
		claim tenant acme
		claim tenant globex
		claim env prod
		scopes reports:read
		scopes reports:write
	}`)
	if err := parsed.UnmarshalCaddyfile(d); err != nil {
		t.Fatal(err)
	}
	iss, _ := newIssuer(t, "ES256")
	kid, signer := currentKey(t, iss)
	h := newLocal(t, iss, func(h *Handler) { h.Claims, h.Scopes = parsed.Claims, parsed.Scopes })
	for _, tt := range []struct {
		name   string
		claims map[string]any
		ok     bool
	}{
		{"first tenant", map[string]any{"tenant": "acme", "env": "prod", "scope": "reports:read reports:write"}, true},
		{"second tenant", map[string]any{"tenant": "globex", "env": "prod", "scope": "reports:write reports:read"}, true},
		{"other tenant", map[string]any{"tenant": "initech", "env": "prod", "scope": "reports:read reports:write"}, false},
		{"env missing", map[string]any{"tenant": "acme", "scope": "reports:read reports:write"}, false},
		{"one scope of two", map[string]any{"tenant": "acme", "env": "prod", "scope": "reports:read"}, false},
	} {
		c := claimsFor(iss, testIssuerURL)
		for k, v := range tt.claims {
			c[k] = v
		}
		tok := signRaw(t, signer, "ES256", `{"alg":"ES256","typ":"at+jwt","kid":"`+kid+`"}`, mustJSON(t, c))
		if res := do(h, "Bearer "+tok); res.reached != tt.ok {
			t.Errorf("%s: reached=%v, want %v (%v)", tt.name, res.reached, tt.ok, res.err)
		}
	}
}

package validator

import (
	"testing"
)

// keycloakClaims shapes a token as Keycloak does: roles in realm_access and
// resource_access.<client>, scopes in scope.
func keycloakClaims(c map[string]any) {
	c["realm_access"] = map[string]any{"roles": []string{"offline_access", "reports-admin"}}
	c["resource_access"] = map[string]any{
		"reports-api": map[string]any{"roles": []string{"viewer"}},
		"my.app":      map[string]any{"roles": []string{"editor"}},
	}
	c["https://example.com/tenant"] = "acme"
	c["scope"] = "openid profile"
	delete(c, "scp")
}

// TestNestedClaimRules: claim rules, scopes and placeholders reach nested
// claims; a value inside an array matches; a missing or other value is 403.
func TestNestedClaimRules(t *testing.T) {
	p := newIDP(t, "oidc")
	clk := newClock()
	tok := p.token(t, "k1", "JWT", clk, keycloakClaims)
	tests := []struct {
		name string
		mod  func(*Handler)
		ok   bool
	}{
		{"realm role", func(h *Handler) { h.Claims = map[string][]string{"realm_access.roles": {"reports-admin"}} }, true},
		{"realm role missing", func(h *Handler) { h.Claims = map[string][]string{"realm_access.roles": {"root"}} }, false},
		{"client role", func(h *Handler) {
			h.Claims = map[string][]string{"resource_access.reports-api.roles": {"viewer", "editor"}}
		}, true},
		{"client id with a dot, escaped", func(h *Handler) {
			h.Claims = map[string][]string{`resource_access.my\.app.roles`: {"editor"}}
		}, true},
		{"client id with a dot, not escaped", func(h *Handler) {
			h.Claims = map[string][]string{"resource_access.my.app.roles": {"editor"}}
		}, false},
		{"URL-named claim", func(h *Handler) { h.Claims = map[string][]string{"https://example.com/tenant": {"acme"}} }, true},
		{"roles as scopes", func(h *Handler) {
			h.ScopeClaim = "realm_access.roles"
			h.Scopes = []string{"reports-admin", "offline_access"}
		}, true},
		{"roles as scopes, one missing", func(h *Handler) {
			h.ScopeClaim = "realm_access.roles"
			h.Scopes = []string{"reports-admin", "openid"}
		}, false},
		{"scope_claim naming the scope string", func(h *Handler) {
			h.ScopeClaim = "scope"
			h.Scopes = []string{"profile"}
		}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newRemote(t, p, "", clk, tt.mod)
			res := do(h, "Bearer "+tok)
			if res.reached != tt.ok {
				t.Fatalf("reached=%v, want %v (%v)", res.reached, tt.ok, res.err)
			}
			if !tt.ok && res.status != 403 {
				t.Errorf("status %d, want 403", res.status)
			}
		})
	}
	h := newRemote(t, p, "", clk, nil)
	res := do(h, "Bearer "+tok)
	if !res.reached {
		t.Fatalf("refused: %v", res.err)
	}
	for key, want := range map[string]string{
		"http.auth.user.claims.realm_access.roles":                `["offline_access","reports-admin"]`,
		"http.auth.user.claims.resource_access.reports-api.roles": `["viewer"]`,
		`http.auth.user.claims.resource_access.my\.app.roles`:     `["editor"]`,
		"http.auth.user.claims.https://example.com/tenant":        "acme",
		"http.auth.user.claims.realm_access.nothing":              "",
	} {
		if got, _ := res.repl.GetString(key); got != want {
			t.Errorf("{%s} = %q, want %q", key, got, want)
		}
	}
}

package accesstoken

import (
	"reflect"
	"testing"
)

func TestSplitClaimPath(t *testing.T) {
	tests := []struct {
		name string
		want []string
	}{
		{"roles", []string{"roles"}},
		{"realm_access.roles", []string{"realm_access", "roles"}},
		{`resource_access.my\.app.roles`, []string{"resource_access", "my.app", "roles"}},
		{`https://example\.com/roles`, []string{"https://example.com/roles"}},
		{`a\\.b`, []string{`a\`, "b"}},
		{`a\b`, []string{`a\b`}},
		{"a..b", []string{"a", "", "b"}},
	}
	for _, tt := range tests {
		if got := SplitClaimPath(tt.name); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("SplitClaimPath(%q) = %q, want %q", tt.name, got, tt.want)
		}
	}
}

// TestNestedClaims reads claims where identity providers put them.
func TestNestedClaims(t *testing.T) {
	c, err := ParseClaims([]byte(`{"iss":"x","exp":1,
		"realm_access":{"roles":["offline_access","admin"]},
		"resource_access":{"my.app":{"roles":["editor"]},"api":{"roles":"viewer"}},
		"https://example.com/roles":["ops"],
		"a.b":"top","a":{"b":"nested"},
		"tier":{"level":3,"gold":true,"none":null},
		"list":[{"x":"1"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	values := []struct {
		name string
		want []string
	}{
		{"realm_access.roles", []string{"offline_access", "admin"}},
		{`resource_access.my\.app.roles`, []string{"editor"}},
		{"resource_access.api.roles", []string{"viewer"}},
		{"https://example.com/roles", []string{"ops"}},
		{`https://example\.com/roles`, []string{"ops"}},
		{"a.b", []string{"top"}}, // the exact top-level name wins
		{"tier.level", []string{"3"}},
		{"tier.gold", []string{"true"}},
		{"tier.none", []string{}},
		{"tier.missing", nil},
		{"realm_access.roles.x", nil}, // through an array: no
		{"list.x", nil},
		{"resource_access.my.app.roles", nil}, // the dot not escaped
		{"iss.x", nil},
	}
	for _, tt := range values {
		if got := c.Values(tt.name); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("Values(%q) = %q, want %q", tt.name, got, tt.want)
		}
	}
	rendered := []struct {
		name, want string
		ok         bool
	}{
		{"realm_access.roles", `["offline_access","admin"]`, true},
		{"resource_access.api.roles", "viewer", true},
		{"resource_access.api", `{"roles":"viewer"}`, true},
		{"tier.level", "3", true},
		{"tier.missing", "", false},
	}
	for _, tt := range rendered {
		if got, ok := c.Claim(tt.name); got != tt.want || ok != tt.ok {
			t.Errorf("Claim(%q) = %q, %v; want %q, %v", tt.name, got, ok, tt.want, tt.ok)
		}
	}
}

package validator

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

func TestUnmarshalCaddyfile(t *testing.T) {
	tests := []struct {
		name    string
		input   string
		want    Handler
		wantErr string
	}{
		{"no block", `bearer_auth`, Handler{}, ""},
		{"empty block", "bearer_auth {\n}", Handler{}, ""},
		{"full", `bearer_auth {
			issuer    https://idp.example.com/tenant
			jwks_url  https://idp.example.com/keys
			audience  api://reports https://reports.example.com
			audience  api://legacy
			scopes    reports:read
			scopes    reports:write
			claim     tenant acme globex
			claim     env prod
			leeway    10s
			require_typ
			realm     reports
			allow_preflight
			strip_authorization
			refresh_interval 15m
		}`, Handler{
			Issuer:             "https://idp.example.com/tenant",
			JWKSURL:            "https://idp.example.com/keys",
			Audience:           []string{"api://reports", "https://reports.example.com", "api://legacy"},
			Scopes:             []string{"reports:read", "reports:write"},
			Claims:             map[string][]string{"tenant": {"acme", "globex"}, "env": {"prod"}},
			Leeway:             caddy.Duration(10 * time.Second),
			RequireTyp:         true,
			Realm:              "reports",
			AllowPreflight:     true,
			StripAuthorization: true,
			RefreshInterval:    caddy.Duration(15 * time.Minute),
		}, ""},
		{"sender constraint", "bearer_auth {\n require dpop\n dpop_nonce\n}", Handler{Require: "dpop", DPoPNonce: true}, ""},
		{"require twice", "bearer_auth {\n require dpop\n require any\n}", Handler{}, "require: specified more than once"},
		{"local issuer by name", "bearer_auth {\n issuer internal\n scopes a b\n}", Handler{Issuer: "internal", Scopes: []string{"a", "b"}}, ""},
		{"nested claims", "bearer_auth {\n scope_claim realm_access.roles\n scopes admin\n claim resource_access.my\\.app.roles editor\n}",
			Handler{ScopeClaim: "realm_access.roles", Scopes: []string{"admin"}, Claims: map[string][]string{`resource_access.my\.app.roles`: {"editor"}}}, ""},
		{"repeated claim name adds values", "bearer_auth {\n claim tenant acme\n claim tenant globex\n}", Handler{Claims: map[string][]string{"tenant": {"acme", "globex"}}}, ""},
		{"inline argument", `bearer_auth default`, Handler{}, "wrong argument count"},
		{"unknown option", "bearer_auth {\n scope read\n}", Handler{}, `unrecognized bearer_auth option "scope"`},
		{"issuer without value", "bearer_auth {\n issuer\n}", Handler{}, "wrong argument count"},
		{"issuer twice", "bearer_auth {\n issuer a\n issuer b\n}", Handler{}, "issuer: specified more than once"},
		{"issuer with two values", "bearer_auth {\n issuer a b\n}", Handler{}, "wrong argument count"},
		{"audience without value", "bearer_auth {\n audience\n}", Handler{}, "wrong argument count"},
		{"scopes without value", "bearer_auth {\n scopes\n}", Handler{}, "wrong argument count"},
		{"claim without value", "bearer_auth {\n claim tenant\n}", Handler{}, "wrong argument count"},
		{"bad leeway", "bearer_auth {\n leeway soon\n}", Handler{}, "leeway"},
		{"zero leeway", "bearer_auth {\n leeway 0\n}", Handler{}, "too small"},
		{"negative leeway", "bearer_auth {\n leeway -5s\n}", Handler{}, "too small"},
		{"tiny refresh", "bearer_auth {\n refresh_interval 10ms\n}", Handler{}, "too small"},
		{"flag with argument", "bearer_auth {\n strip_authorization yes\n}", Handler{}, "wrong argument count"},
		{"realm twice", "bearer_auth {\n realm a\n realm b\n}", Handler{}, "specified more than once"},
		{"forward auth", "bearer_auth {\n forward_auth\n}", Handler{ForwardAuth: true}, ""},
		{"forward auth with dpop", "bearer_auth {\n forward_auth\n require dpop\n}", Handler{}, "cannot be combined with require"},
		{"introspection", "bearer_auth {\n issuer https://hydra.example.com/\n audience api\n introspection https://hydra.example.com/admin/oauth2/introspect {\n client_id gate\n client_secret {env.SECRET}\n cache 1m\n negative_cache 2s\n }\n}",
			Handler{Issuer: "https://hydra.example.com/", Audience: []string{"api"}, Introspection: &Introspection{
				Endpoint: "https://hydra.example.com/admin/oauth2/introspect", ClientID: "gate", ClientSecret: "{env.SECRET}",
				CacheFor: caddy.Duration(time.Minute), NegativeCacheFor: caddy.Duration(2 * time.Second)}}, ""},
		{"introspection without secret", "bearer_auth {\n introspection https://idp/introspect {\n client_id gate\n }\n}", Handler{}, "client_secret are required"},
		{"several issuers", `bearer_auth {
			issuer https://a.example.com {
				audience api://a
			}
			issuer https://b.example.com/ {
				audience api://b api://b2
				jwks_url https://b.example.com/keys
			}
		}`, Handler{Issuers: []TrustedIssuer{
			{Issuer: "https://a.example.com", Audience: []string{"api://a"}},
			{Issuer: "https://b.example.com/", Audience: []string{"api://b", "api://b2"}, JWKSURL: "https://b.example.com/keys"},
		}}, ""},
		{"issuer line and block", "bearer_auth {\n issuer https://a.example.com\n issuer https://b.example.com {\n audience x\n }\n}", Handler{}, "cannot be mixed"},
		{"issuer block twice", "bearer_auth {\n issuer https://a {\n audience x\n }\n issuer https://a {\n audience y\n }\n}", Handler{}, "listed twice"},
		{"unknown option in issuer block", "bearer_auth {\n issuer https://a {\n scopes x\n }\n}", Handler{}, "unrecognized option"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var h Handler
			err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser(tt.input))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			if !reflect.DeepEqual(h, tt.want) {
				t.Errorf("got  %+v\nwant %+v", h, tt.want)
			}
		})
	}
}

// TestJSONKeys pins the JSON form documented in the Handler's comments.
func TestJSONKeys(t *testing.T) {
	h := Handler{
		Issuer: "https://idp", JWKSURL: "https://idp/keys", Audience: []string{"a"}, Scopes: []string{"s"},
		Claims: map[string][]string{"c": {"v"}}, Leeway: caddy.Duration(time.Second), RequireTyp: true, Realm: "r",
		AllowPreflight: true, StripAuthorization: true, RefreshInterval: caddy.Duration(time.Minute),
	}
	b, err := json.Marshal(h)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"issuer":"https://idp","jwks_url":"https://idp/keys","audience":["a"],"scopes":["s"],"claims":{"c":["v"]},` +
		`"leeway":1000000000,"require_typ":true,"realm":"r","allow_preflight":true,"strip_authorization":true,"refresh_interval":60000000000}`
	if string(b) != want {
		t.Errorf("JSON\n got %s\nwant %s", b, want)
	}
	if b, _ := json.Marshal(Handler{}); string(b) != `{}` {
		t.Errorf("zero handler marshals to %s, want {}", b)
	}
}

// TestUnmarshalCaddyfileCheckedWithLine: values Provision would refuse are
// refused by the parser, at the line of the option.
func TestUnmarshalCaddyfileCheckedWithLine(t *testing.T) {
	for input, want := range map[string]string{
		"bearer_auth {\n audience a\n scopes read \"wr\\\"ite\"\n}": `bearer_auth: scopes: invalid scope "wr\"ite", at Testfile:3`,
		"bearer_auth {\n realm \"a\\\"b\"\n}":                       `bearer_auth: realm: "a\"b" must not contain quotes, backslashes or control characters, at Testfile:2`,
		"bearer_auth {\n scopes a\n audience x \"\"\n}":             "bearer_auth: audience: empty value, at Testfile:3",
	} {
		var h Handler
		err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser(input))
		if err == nil || err.Error() != want {
			t.Errorf("%q: error %v, want %s", input, err, want)
		}
	}
}

func TestRequireValues(t *testing.T) {
	for v, ok := range map[string]bool{"": true, "dpop": true, "any": true, "mtls": true, "tls": false, "DPoP": false} {
		h := Handler{Require: v}
		if err := h.provisionCommon(); (err == nil) != ok {
			t.Errorf("require %q: %v", v, err)
		}
	}
}

package tokengate_test

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"

	"github.com/tokengate/tokengate/internal/testcaddy"
)

// TestClientClaims: a client's own claims are in every access token it
// gets, with their JSON types, and reach the upstream as
// {http.auth.user.claims.NAME}.
func TestClientClaims(t *testing.T) {
	testcaddy.Start(t, fmt.Sprintf(`{
	admin off
	%s
	oauth_issuer {
		issuer http://localhost:9471
		client svc {
			secret svc-secret
			claims {
				tenant acme
				tier 3
				beta true
				roles admin reader
				limits `+"`"+`{"rps":10}`+"`"+`
				code `+"`"+`"007"`+"`"+`
			}
		}
	}
}
:9471 {
	oauth_token
	handle /api/* {
		bearer_auth
		respond "{http.auth.user.claims.tenant}|{http.auth.user.claims.tier}|{http.auth.user.claims.beta}|{http.auth.user.claims.roles}|{http.auth.user.claims.limits}|{http.auth.user.claims.code}"
	}
}`, testcaddy.Storage(t.TempDir())))
	basic := "Basic " + base64.StdEncoding.EncodeToString([]byte("svc:svc-secret"))
	status, body := httpDo(t, http.MethodPost, "http://localhost:9471/oauth/token?grant_type=client_credentials", "", "Authorization", basic)
	var ans struct {
		AccessToken string `json:"access_token"`
	}
	if status != 200 || json.Unmarshal(body, &ans) != nil {
		t.Fatalf("token: %d %s", status, body)
	}
	payload, err := base64.RawURLEncoding.DecodeString(strings.Split(ans.AccessToken, ".")[1])
	if err != nil {
		t.Fatal(err)
	}
	var claims map[string]any
	if err := json.Unmarshal(payload, &claims); err != nil {
		t.Fatalf("payload %s: %v", payload, err)
	}
	want := map[string]any{
		"tenant": "acme", "tier": float64(3), "beta": true,
		"roles": []any{"admin", "reader"}, "limits": map[string]any{"rps": float64(10)}, "code": "007",
		"client_id": "svc", "sub": "svc",
	}
	for name, v := range want {
		if got, _ := json.Marshal(claims[name]); string(got) != mustJSON(t, v) {
			t.Errorf("claim %s = %s, want %s (payload %s)", name, got, mustJSON(t, v), payload)
		}
	}
	status, body = httpDo(t, http.MethodGet, "http://localhost:9471/api/x", "", "Authorization", "Bearer "+ans.AccessToken)
	if w := `acme|3|true|["admin","reader"]|{"rps":10}|007`; status != 200 || string(body) != w {
		t.Errorf("upstream saw %d %q, want %q", status, body, w)
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestClientClaimsReservedAtLoad: a JSON config naming a claim the issuer
// sets itself is refused when it loads (the Caddyfile parser refuses it
// earlier, at its line: caddyfile_test.go).
func TestClientClaimsReservedAtLoad(t *testing.T) {
	for _, name := range []string{"iss", "sub", "aud", "exp", "nbf", "iat", "jti", "client_id", "scope", "cnf", "scp", "azp"} {
		cfg := fmt.Sprintf(`{"admin":{"disabled":true},"storage":{"module":"file_system","root":%q},
"apps":{"tokengate":{"issuers":{"default":{"issuer":"http://localhost:9471","clients":[
{"client_id":"svc","secret":"s","claims":{"tier":1,%q:"x"}}]}}}}}`, t.TempDir(), name)
		err := caddy.Load([]byte(cfg), true)
		if err == nil || !strings.Contains(err.Error(), `client "svc": claims.`+name+`: "`+name+`" is set by the issuer`) {
			t.Errorf("claim %s: %v", name, err)
		}
	}
}

package tokengate_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tokengate/tokengate/internal/testcaddy"
)

// TestLoadErrors checks that bad configs fail when loaded, with a message
// naming the option at fault.
func TestLoadErrors(t *testing.T) {
	t.Setenv("TOKENGATE_TEST_EMPTY", "")
	dir := t.TempDir()
	cfg := func(issuer, client string) string {
		return fmt.Sprintf(`{
	admin off
	%s
	oauth_issuer {
		%s
		client c {
			%s
		}
	}
}
:9291 {
	oauth_token
}`, testcaddy.Storage(dir), issuer, client)
	}
	cases := map[string]struct{ cfg, want string }{
		"unknown alg":        {cfg("issuer http://localhost:9291\n signing_alg HS256", "secret s"), `signing_alg: unsupported algorithm "HS256"`},
		"issuer not a URL":   {cfg("issuer localhost", "secret s"), `issuer: "localhost" must be an absolute http(s) URL`},
		"issuer query":       {cfg("issuer http://localhost:9291/?a=b", "secret s"), "without query"},
		"unset env secret":   {cfg("issuer http://localhost:9291", "secret {env.TOKENGATE_TEST_UNSET_VAR}"), `client "c": secret`},
		"empty env secret":   {cfg("issuer http://localhost:9291", "secret {env.TOKENGATE_TEST_EMPTY}"), `client "c": secret`},
		"malformed hash":     {cfg("issuer http://localhost:9291", "secret_hash $2a$nonsense"), `client "c": secret_hash: malformed bcrypt hash`},
		"not a hash":         {cfg("issuer http://localhost:9291", "secret_hash plaintext"), `client "c": secret_hash: not a bcrypt or argon2id hash`},
		"bad scope":          {cfg("issuer http://localhost:9291", "secret s\n scopes \"a\\\\b\""), `scopes: invalid scope`},
		"bad grant":          {cfg("issuer http://localhost:9291", "secret s\n grant_types password"), `unsupported grant type "password"`},
		"refresh only":       {cfg("issuer http://localhost:9291", "secret s\n grant_types refresh_token"), "refresh_token needs client_credentials"},
		"rotation too short": {cfg("issuer http://localhost:9291\n key_rotation 10s", "secret s"), "key_rotation: must be at least 1m"},
		"missing key file":   {cfg("issuer http://localhost:9291\n signing_key "+filepath.Join(dir, "nope.pem"), "secret s"), "signing_key: loading"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			err := testcaddy.Load(tc.cfg)
			if err == nil {
				t.Fatal("config loaded")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not contain %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "nonsense") && !strings.Contains(tc.want, "bcrypt") {
				t.Errorf("error echoes configured secret material: %v", err)
			}
		})
	}
	// A handler naming an issuer that does not exist.
	err := testcaddy.Load(fmt.Sprintf("{\n admin off\n %s\n}\n:9291 {\n oauth_token nobody\n}", testcaddy.Storage(dir)))
	if err == nil || !strings.Contains(err.Error(), `no oauth_issuer "nobody" is configured`) {
		t.Errorf("unknown issuer name: %v", err)
	}
}

// TestCaddyfileExampleAdapts compares the adapted Caddyfile.example with
// the checked-in JSON (regenerate with UPDATE_GOLDEN=1).
func TestCaddyfileExampleAdapts(t *testing.T) {
	src, err := os.ReadFile("Caddyfile.example")
	if err != nil {
		t.Fatal(err)
	}
	got := testcaddy.Adapt(t, string(src))
	golden := filepath.Join("testdata", "Caddyfile.example.json")
	if os.Getenv("UPDATE_GOLDEN") == "1" {
		if err := os.WriteFile(golden, append(got, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if strings.TrimSpace(string(want)) != strings.TrimSpace(string(got)) {
		t.Errorf("adapted Caddyfile.example differs from %s:\n got: %s\nwant: %s", golden, got, want)
	}
}

// TestClientsThroughConfigAPI backs docs/configuration.md: a secret read
// from a file, clients removed and added through Caddy's /config API, and
// what happens to the tokens of a removed client.
func TestClientsThroughConfigAPI(t *testing.T) {
	const (
		site  = "http://localhost:9491"
		admin = "http://localhost:2995/config/apps/tokengate/issuers/default/clients"
	)
	dir := t.TempDir()
	secretFile := filepath.Join(dir, "svc.secret")
	if err := os.WriteFile(secretFile, []byte("file-secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("TG_NEWCOMER_SECRET", "newcomer-secret") // inherited by the process
	testcaddy.StartProcess(t, fmt.Sprintf(`{
	admin localhost:2995
	%s
	oauth_issuer {
		issuer %s
		client svc {
			secret {file.%s}
			audience api
		}
		client leaving {
			secret leaving-secret
			audience api
			grant_types client_credentials refresh_token
		}
	}
}
:9491 {
	bind 127.0.0.1
	oauth_token
	handle /api/* {
		bearer_auth {
			audience api
		}
		respond "hello {http.auth.user.id}"
	}
}`, testcaddy.Storage(filepath.Join(dir, "storage")), site, secretFile), site+"/.well-known/jwks.json")

	token := func(id, secret string) (status int, access, refresh string) {
		t.Helper()
		status, body := httpDo(t, "POST", site+"/oauth/token", "grant_type=client_credentials&client_id="+id+"&client_secret="+secret)
		var ans struct{ AccessToken, RefreshToken string }
		ans.AccessToken, ans.RefreshToken = jsonString(body, "access_token"), jsonString(body, "refresh_token")
		return status, ans.AccessToken, ans.RefreshToken
	}
	call := func(access string) int {
		t.Helper()
		status, _ := httpDo(t, "GET", site+"/api/x", "", "Authorization", "Bearer "+access)
		return status
	}

	// {file./path}: the file's content, its trailing newline trimmed.
	status, svcToken, _ := token("svc", "file-secret")
	if status != 200 || call(svcToken) != 200 {
		t.Fatalf("secret from a file: %d", status)
	}
	status, leavingAccess, leavingRefresh := token("leaving", "leaving-secret")
	if status != 200 || leavingRefresh == "" {
		t.Fatalf("leaving: %d", status)
	}

	// Remove the second client: Caddy loads the changed config at once.
	if status, body := httpDo(t, "DELETE", admin+"/1", ""); status != 200 {
		t.Fatalf("DELETE client: %d %s", status, body)
	}
	// A reload closes the old server's idle connections; a client reusing
	// one would see it reset.
	http.DefaultClient.CloseIdleConnections()
	if status, _, _ := token("leaving", "leaving-secret"); status != 401 {
		t.Errorf("removed client got a token: %d", status)
	}
	status, body := httpDo(t, "POST", site+"/oauth/token", "grant_type=refresh_token&refresh_token="+leavingRefresh+"&client_id=leaving&client_secret=leaving-secret")
	if status != 401 {
		t.Errorf("removed client redeemed its refresh token: %d %s", status, body)
	}
	// Its access tokens stay valid until they expire: bearer_auth checks
	// the signature, not the client list (revoke them first, or shorten
	// token_ttl, to cut a client off at once).
	if s := call(leavingAccess); s != 200 {
		t.Errorf("removed client's access token: %d, want 200 until it expires", s)
	}
	// The other clients and their tokens are untouched: the keys are kept.
	if s := call(svcToken); s != 200 {
		t.Errorf("svc token after the change: %d", s)
	}

	// Add a client whose secret comes from the environment at load time.
	newcomer := `{"client_id":"newcomer","secret":"{env.TG_NEWCOMER_SECRET}","audience":["api"]}`
	if status, body := httpDo(t, "POST", admin, newcomer, "Content-Type", "application/json"); status != 200 {
		t.Fatalf("POST client: %d %s", status, body)
	}
	http.DefaultClient.CloseIdleConnections()
	if status, access, _ := token("newcomer", "newcomer-secret"); status != 200 || call(access) != 200 {
		t.Errorf("added client: %d", status)
	}

	// Its refresh tokens are refused only while the client is gone: they
	// are not revoked, and work again if the same id comes back.
	back := `{"client_id":"leaving","secret":"leaving-secret","audience":["api"],"grant_types":["client_credentials","refresh_token"]}`
	if status, body := httpDo(t, "POST", admin, back, "Content-Type", "application/json"); status != 200 {
		t.Fatalf("POST client: %d %s", status, body)
	}
	http.DefaultClient.CloseIdleConnections()
	status, body = httpDo(t, "POST", site+"/oauth/token", "grant_type=refresh_token&refresh_token="+leavingRefresh+"&client_id=leaving&client_secret=leaving-secret")
	if status != 200 {
		t.Errorf("re-added client's refresh token: %d %s", status, body)
	}

	// A bad change is refused whole, with the option named; the running
	// config stays.
	bad := `{"client_id":"bad","secret":"x","grant_types":["password"]}`
	status, body = httpDo(t, "POST", admin, bad, "Content-Type", "application/json")
	if status < 400 || !strings.Contains(string(body), `client \"bad\": grant_types: unsupported grant type`) {
		t.Errorf("bad client: %d %s", status, body)
	}
	if status, _, _ := token("svc", "file-secret"); status != 200 {
		t.Errorf("svc after a refused change: %d", status)
	}

	// Neither secret is in the config Caddy keeps.
	_, config := httpDo(t, "GET", "http://localhost:2995/config/", "")
	for _, secret := range []string{"file-secret", "newcomer-secret"} {
		if strings.Contains(string(config), secret) {
			t.Errorf("GET /config/ holds %s", secret)
		}
	}
}

// jsonString reads a string member of a JSON object ("" if absent).
func jsonString(body []byte, name string) string {
	var m map[string]any
	_ = json.Unmarshal(body, &m)
	s, _ := m[name].(string)
	return s
}

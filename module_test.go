package tokengate_test

import (
	"encoding/json"
	"fmt"
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

// TestXcaddyManifest checks that xcaddy.json builds this module, by the
// name go.mod gives it.
func TestXcaddyManifest(t *testing.T) {
	gomod, err := os.ReadFile("go.mod")
	if err != nil {
		t.Fatal(err)
	}
	module := ""
	for _, line := range strings.Split(string(gomod), "\n") {
		if rest, ok := strings.CutPrefix(line, "module "); ok {
			module = strings.TrimSpace(rest)
		}
	}
	raw, err := os.ReadFile("xcaddy.json")
	if err != nil {
		t.Fatal(err)
	}
	var manifest struct {
		Dependencies []struct {
			Module  string `json:"module"`
			Version string `json:"version"`
		} `json:"dependencies"`
	}
	if err := json.Unmarshal(raw, &manifest); err != nil {
		t.Fatalf("xcaddy.json: %v", err)
	}
	if len(manifest.Dependencies) != 1 || manifest.Dependencies[0].Module != module || manifest.Dependencies[0].Version == "" {
		t.Errorf("xcaddy.json names %+v, want the module %q with a version", manifest.Dependencies, module)
	}
}

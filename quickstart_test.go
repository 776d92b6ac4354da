package tokengate_test

import (
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tokengate/tokengate/internal/testcaddy"
)

const demoJWKS = "http://localhost:8381/.well-known/jwks.json"

// startQuickStart runs Caddyfile.example exactly as the README's Quick start
// does (its ports 8381, 8382 and the admin endpoint's 2019 must be free),
// with secret as TOKENGATE_DEMO_SECRET ("" leaves it unset, so the
// example's default applies). It returns Caddy's config directory
// (autosave.json).
func startQuickStart(t *testing.T, secret string) (configDir string) {
	t.Helper()
	t.Setenv("TOKENGATE_DEMO_SECRET", secret) // restored when the test ends
	if secret == "" {
		os.Unsetenv("TOKENGATE_DEMO_SECRET")
	}
	configDir = t.TempDir()
	p := testcaddy.Spawn(t, ".", []string{"XDG_CONFIG_HOME=" + configDir},
		"run", "--config", "Caddyfile.example")
	p.WaitReady(demoJWKS)
	return configDir
}

func demoToken(t *testing.T, id, secret string) (int, []byte) {
	t.Helper()
	basic := "Basic " + base64.StdEncoding.EncodeToString([]byte(id+":"+secret))
	return httpDo(t, "POST", "http://localhost:8381/oauth/token?grant_type=client_credentials", "", "Authorization", basic)
}

// TestQuickStart gets a token with the README's curl request and calls
// the guarded route with it, then checks what else a newcomer may try.
func TestQuickStart(t *testing.T) {
	configDir := startQuickStart(t, "")

	// curl --location --request POST 'http://localhost:8381/oauth/token?grant_type=client_credentials' \
	//   --header "Authorization: Basic $(echo -n 'demo-client:demo-secret' | base64)"
	status, body := demoToken(t, "demo-client", "demo-secret")
	var ans struct {
		AccessToken  string `json:"access_token"`
		TokenType    string `json:"token_type"`
		ExpiresIn    int    `json:"expires_in"`
		RefreshToken string `json:"refresh_token"`
	}
	if status != 200 || json.Unmarshal(body, &ans) != nil {
		t.Fatalf("curl: %d %s", status, body)
	}
	if ans.TokenType != "Bearer" || ans.ExpiresIn != 3600 || ans.AccessToken == "" || ans.RefreshToken == "" {
		t.Fatalf("token answer: %s", body)
	}

	status, body = httpDo(t, "GET", "http://localhost:8381/reports/daily", "", "Authorization", "Bearer "+ans.AccessToken)
	if want := "legacy service: hello demo-client (scopes: reports:read reports:write)"; status != 200 || string(body) != want {
		t.Fatalf("guarded route: %d %q, want 200 %q", status, body, want)
	}

	parts := strings.Split(ans.AccessToken, ".")
	forged := parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte(`{"sub":"admin"}`)) + "." + parts[2]
	for name, tok := range map[string]string{"forged": forged, "garbage": "abc", "refresh token as bearer": ans.RefreshToken} {
		if status, body := httpDo(t, "GET", "http://localhost:8381/reports/daily", "", "Authorization", "Bearer "+tok); status != 401 || strings.Contains(string(body), "legacy service") {
			t.Errorf("%s token: %d %q", name, status, body)
		}
	}
	if status, _ := httpDo(t, "GET", "http://localhost:8381/reports/daily", ""); status != 401 {
		t.Errorf("no token: %d", status)
	}

	// Only the issuer's endpoints and the guarded route are served.
	for _, path := range []string{"/.well-known/openid-configuration", "/unknown", "/", "/reports"} {
		if status, body := httpDo(t, "GET", "http://localhost:8381"+path, ""); status != 404 {
			t.Errorf("GET %s: %d %q, want 404", path, status, body)
		}
	}
	if status, _ := httpDo(t, "GET", "http://localhost:8381/.well-known/oauth-authorization-server", ""); status != 200 {
		t.Errorf("metadata: %d", status)
	}

	// The secret is resolved at run time: the live config and its
	// autosaved copy hold the placeholder (with its published default), not
	// the resolved value; the sites listen on loopback only.
	config := checkSecretNotInConfig(t, configDir, "demo-secret")
	var live struct {
		Apps struct {
			HTTP struct {
				Servers map[string]struct {
					Listen []string `json:"listen"`
				} `json:"servers"`
			} `json:"http"`
		} `json:"apps"`
	}
	if err := json.Unmarshal(config, &live); err != nil || len(live.Apps.HTTP.Servers) != 2 {
		t.Fatalf("config: %v %s", err, config)
	}
	for name, srv := range live.Apps.HTTP.Servers {
		if len(srv.Listen) != 1 || !strings.HasPrefix(srv.Listen[0], "127.0.0.1:") {
			t.Errorf("server %s listens on %q, want loopback only", name, srv.Listen)
		}
	}
}

// checkSecretNotInConfig checks that GET /config/ and autosave.json hold
// the example's secret placeholder and not secret as a JSON string of its
// own (the default is part of the placeholder's text). It returns the live
// config.
func checkSecretNotInConfig(t *testing.T, configDir, secret string) []byte {
	t.Helper()
	const placeholder = `"secret":"{env.TOKENGATE_DEMO_SECRET:demo-secret}"`
	status, config := httpDo(t, "GET", "http://localhost:2019/config/", "")
	if status != 200 {
		t.Fatalf("GET /config/: %d %s", status, config)
	}
	autosave, err := os.ReadFile(filepath.Join(configDir, "caddy", "autosave.json"))
	if err != nil {
		t.Fatal(err)
	}
	for name, cfg := range map[string][]byte{"GET /config/": config, "autosave.json": autosave} {
		if !strings.Contains(string(cfg), placeholder) {
			t.Errorf("%s does not hold %s: %s", name, placeholder, cfg)
		}
		if strings.Contains(string(cfg), `"`+secret+`"`) {
			t.Errorf("%s holds the secret", name)
		}
	}
	return config
}

// TestQuickStartSecretFromEnvironment: a TOKENGATE_DEMO_SECRET already set
// wins over the example's default, and it too stays out of the config.
func TestQuickStartSecretFromEnvironment(t *testing.T) {
	const secret = "env-secret-4e1f"
	configDir := startQuickStart(t, secret)
	if status, body := demoToken(t, "demo-client", "demo-secret"); status != 401 {
		t.Errorf("published default secret: %d %s, want 401", status, body)
	}
	if status, body := demoToken(t, "demo-client", secret); status != 200 {
		t.Errorf("secret from the environment: %d %s", status, body)
	}
	config := checkSecretNotInConfig(t, configDir, secret)
	if strings.Contains(string(config), secret) {
		t.Errorf("GET /config/ holds the secret")
	}
}

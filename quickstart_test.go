package tokengate_test

import (
	"encoding/base64"
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/tokengate/tokengate/internal/testcaddy"
)

// TestQuickStart runs Caddyfile.example as the README tells a newcomer to
// (its ports 8381 and 8382 must be free), gets a token with the product
// spec's request, and calls the guarded route with it.
func TestQuickStart(t *testing.T) {
	cfg, err := os.ReadFile("Caddyfile.example")
	if err != nil {
		t.Fatal(err)
	}
	testcaddy.StartProcess(t, string(cfg), "http://localhost:8381/.well-known/jwks.json")

	// curl --location --request POST 'http://localhost:8381/oauth/token?grant_type=client_credentials' \
	//   --header "Authorization: Basic $(echo -n 'demo-client:demo-secret' | base64)"
	basic := "Basic " + base64.StdEncoding.EncodeToString([]byte("demo-client:demo-secret"))
	status, body := httpDo(t, "POST", "http://localhost:8381/oauth/token?grant_type=client_credentials", "", "Authorization", basic)
	var ans struct {
		AccessToken  string `json:"access_token"`
		TokenType    string `json:"token_type"`
		ExpiresIn    int    `json:"expires_in"`
		RefreshToken string `json:"refresh_token"`
	}
	if status != 200 || json.Unmarshal(body, &ans) != nil {
		t.Fatalf("spec curl: %d %s", status, body)
	}
	if ans.TokenType != "Bearer" || ans.ExpiresIn != 3600 || ans.AccessToken == "" || ans.RefreshToken == "" {
		t.Fatalf("spec answer: %s", body)
	}

	status, body = httpDo(t, "GET", "http://localhost:8381/reports/daily", "", "Authorization", "Bearer "+ans.AccessToken)
	if status != 200 || !strings.Contains(string(body), "hello demo-client") {
		t.Fatalf("guarded route: %d %q", status, body)
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
}

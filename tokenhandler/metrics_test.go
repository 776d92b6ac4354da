package tokenhandler_test

import (
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/tokengate/tokengate/internal/testcaddy"
)

// metricValue reads one sample from Caddy's admin /metrics.
func metricValue(t *testing.T, body, name string) float64 {
	t.Helper()
	re := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + ` ([0-9.e+-]+)$`)
	m := re.FindStringSubmatch(body)
	if m == nil {
		return 0
	}
	v, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func scrape(t *testing.T) string {
	t.Helper()
	resp, err := http.Get("http://localhost:2989/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func TestMetrics(t *testing.T) {
	testcaddy.Start(t, fmt.Sprintf(`{
	admin localhost:2989
	%s
	oauth_issuer {
		issuer %s
		# The immediate second redemption below is a reuse, not a retry.
		refresh_reuse_interval off
		client demo-client {
			secret demo-secret
			audience legacy-api
			grant_types client_credentials refresh_token
		}
	}
}

:9281 {
	oauth_token
	handle /api/* {
		bearer_auth {
			audience legacy-api
		}
		respond "ok"
	}
}
`, testcaddy.Storage(t.TempDir()), base))
	before := scrape(t)
	issued := `tokengate_token_requests_total{grant_type="client_credentials",result="issued"}`
	denied := `tokengate_token_requests_total{grant_type="client_credentials",result="invalid_client"}`
	perClient := `tokengate_tokens_issued_total{client_id="demo-client"}`
	revoked := `tokengate_revocations_total{token_type="access_token"}`
	familiesRevoked := `tokengate_revocations_total{token_type="refresh_token"}`

	at, _ := getToken(t)
	at2, _ := getToken(t)
	for _, tok := range []string{at2, at2, at2 + "x"} {
		callAPI(t, tok)
	}
	if s := do(t, mustReq(t, http.MethodGet, base+"/api/x")); s.status != 401 {
		t.Fatalf("no token: %d", s.status)
	}
	post(t, tokenURL+"?grant_type=client_credentials", "", "Authorization", basic("demo-client", "wrong"))
	post(t, tokenURL+"?grant_type=password", "", demoAuth...)
	revoke(t, at, demoAuth...)
	// A refresh token redeemed twice revokes its family: one revocation.
	_, rt := getToken(t)
	if a := refreshWith(t, rt, ""); a.status != 200 {
		t.Fatalf("refresh: %d %s", a.status, a.raw)
	}
	if a := refreshWith(t, rt, ""); a.status != 400 {
		t.Fatalf("reused refresh token: %d %s", a.status, a.raw)
	}

	after := scrape(t)
	for name, want := range map[string]float64{issued: 3, denied: 1, perClient: 4, revoked: 1, familiesRevoked: 1,
		`tokengate_token_requests_total{grant_type="other",result="unsupported_grant_type"}`: 1,
		`tokengate_validations_total{result="ok"}`:                                           2,
		`tokengate_validations_total{result="invalid"}`:                                      1,
		`tokengate_validations_total{result="missing"}`:                                      1,
		`tokengate_cache_lookups_total{cache="verified_token",result="hit"}`:                 1,
	} {
		if got := metricValue(t, after, name) - metricValue(t, before, name); got != want {
			t.Errorf("%s grew by %v, want %v", name, got, want)
		}
	}
	if metricValue(t, after, `tokengate_duration_seconds_count{component="validator"}`) < 4 {
		t.Errorf("validator duration histogram not observed")
	}
	if metricValue(t, after, `tokengate_duration_seconds_count{component="issuer"}`) < 4 {
		t.Errorf("issuer duration histogram not observed:\n%s", grepLines(after, "tokengate_duration"))
	}
	for _, secret := range []string{"demo-secret", "wrong", at} {
		if strings.Contains(after, secret) {
			t.Errorf("metrics expose a secret or token")
		}
	}
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

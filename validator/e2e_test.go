package validator_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/oauth2/clientcredentials"

	"github.com/tokengate/tokengate/internal/testcaddy"
	"github.com/tokengate/tokengate/validator"
)

// The end-to-end tests run Caddy in process (testcaddy rather than
// caddytest, which skips instead of failing when it cannot start); they
// must not run in parallel with each other.
const (
	e2eBase = "http://localhost:9180"
)

// upstream is the legacy service: it echoes the identity it was given and
// counts the requests that reached it.
type upstream struct {
	srv  *httptest.Server
	hits atomic.Int64
	last atomic.Pointer[http.Header]
}

func newUpstream(t *testing.T) *upstream {
	u := &upstream{}
	u.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.hits.Add(1)
		h := r.Header.Clone()
		u.last.Store(&h)
		fmt.Fprintf(w, "client=%s scope=%s", r.Header.Get("X-Client-Id"), r.Header.Get("X-Scope"))
	}))
	t.Cleanup(u.srv.Close)
	return u
}

// newUpstreamFunc runs f as an upstream and returns its host:port.
func newUpstreamFunc(t *testing.T, f http.HandlerFunc) string {
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return srv.Listener.Addr().String()
}

func e2eCaddyfile(dir, upstreamAddr string) string {
	return fmt.Sprintf(`{
	admin off
	%s
	http_port 9180
	oauth_issuer {
		issuer %s
		client reports-client {
			secret reports-secret
			scopes reports:read reports:write
			audience legacy-api
		}
		client other-client {
			secret other-secret
			scopes misc
			audience legacy-api
		}
	}
}

:9180 {
	oauth_token
	route /reports/* {
		bearer_auth {
			audience legacy-api
			scopes reports:read
			strip_authorization
		}
		reverse_proxy %s {
			header_up X-Client-Id {http.auth.user.id}
			header_up X-Scope {http.auth.user.scope}
		}
	}
	route /remote/* {
		bearer_auth {
			issuer %s
			jwks_url %s/.well-known/jwks.json
			audience legacy-api
			require_typ
		}
		reverse_proxy %s {
			header_up X-Client-Id {http.auth.user.client_id}
		}
	}
	route /byurl/* {
		bearer_auth {
			issuer %s/
			audience legacy-api
		}
		reverse_proxy %s {
			header_up X-Client-Id {http.auth.user.client_id}
		}
	}
	handle_errors {
		respond "refused {err.status_code}"
	}
}
`, testcaddy.Storage(dir), e2eBase, upstreamAddr, e2eBase, e2eBase, upstreamAddr, e2eBase, upstreamAddr)
}

func token(t *testing.T, id, secret string, scopes ...string) string {
	t.Helper()
	cfg := clientcredentials.Config{ClientID: id, ClientSecret: secret, TokenURL: e2eBase + "/oauth/token", Scopes: scopes}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	tok, err := cfg.Token(ctx)
	if err != nil {
		t.Fatalf("getting a token for %s: %v", id, err)
	}
	return tok.AccessToken
}

func get(t *testing.T, path, auth string) (int, string, http.Header) {
	t.Helper()
	var hdr []string
	if auth != "" {
		hdr = []string{"Authorization", auth}
	}
	status, body, h := testcaddy.Send(t, http.MethodGet, e2eBase+path, "", hdr...)
	if status == 0 {
		t.FailNow()
	}
	return status, string(body), h
}

func TestEndToEnd(t *testing.T) {
	up := newUpstream(t)
	testcaddy.Start(t, e2eCaddyfile(t.TempDir(), up.srv.Listener.Addr().String()))

	tok := token(t, "reports-client", "reports-secret")
	status, body, _ := get(t, "/reports/q1", "Bearer "+tok)
	if status != http.StatusOK || body != "client=reports-client scope=reports:read reports:write" {
		t.Fatalf("valid token: %d %q", status, body)
	}
	if h := up.last.Load(); h == nil || h.Get("Authorization") != "" {
		t.Error("the upstream received the Authorization header despite strip_authorization")
	}
	if up.hits.Load() != 1 {
		t.Fatalf("upstream hits %d, want 1", up.hits.Load())
	}

	refusals := []struct {
		name, auth string
		status     int
		www        string
	}{
		{"no token", "", 401, `Bearer realm="restricted"`},
		{"tampered token", "Bearer " + validator.Tamper(tok), 401, `Bearer realm="restricted", error="invalid_token", error_description="bad signature"`},
		{"garbage", "Bearer not-a-jwt", 401, `Bearer realm="restricted", error="invalid_token", error_description="malformed token"`},
		{"missing scope", "Bearer " + token(t, "other-client", "other-secret"), 403, `Bearer realm="restricted", error="insufficient_scope", scope="reports:read", error_description="insufficient scope"`},
	}
	for _, r := range refusals {
		t.Run(r.name, func(t *testing.T) {
			before := up.hits.Load()
			status, body, hdr := get(t, "/reports/q1", r.auth)
			if status != r.status {
				t.Errorf("status %d, want %d", status, r.status)
			}
			if got := hdr.Get("WWW-Authenticate"); got != r.www {
				t.Errorf("WWW-Authenticate = %q, want %q", got, r.www)
			}
			if want := fmt.Sprintf("refused %d", r.status); body != want {
				t.Errorf("body %q, want handle_errors' %q", body, want)
			}
			if up.hits.Load() != before {
				t.Error("a refused request reached the upstream")
			}
		})
	}

	// The instance's own issuer named by its URL is read in process: the
	// very first request passes, with no fetch to wait for.
	t.Run("local issuer named by URL", func(t *testing.T) {
		if status, body, _ := get(t, "/byurl/x", "Bearer "+tok); status != http.StatusOK || body != "client=reports-client scope=" {
			t.Fatalf("by URL: status %d %q", status, body)
		}
	})

	// The same issuer, trusted as a remote one through its jwks_url. Caddy
	// was not listening yet when the route was provisioned, so the first
	// fetch failed and tokens are refused until a background retry succeeds.
	t.Run("remote issuer via jwks_url", func(t *testing.T) {
		deadline := time.Now().Add(10 * time.Second)
		for {
			status, body, _ := get(t, "/remote/x", "Bearer "+tok)
			if status == http.StatusOK {
				if body != "client=reports-client scope=" {
					t.Errorf("body %q", body)
				}
				break
			}
			if status != http.StatusUnauthorized || time.Now().After(deadline) {
				t.Fatalf("remote route: status %d %q", status, body)
			}
			time.Sleep(200 * time.Millisecond)
		}
		before := up.hits.Load()
		if status, _, _ := get(t, "/remote/x", "Bearer "+validator.Tamper(tok)); status != 401 || up.hits.Load() != before {
			t.Errorf("tampered token on the remote route: status %d", status)
		}
	})
}

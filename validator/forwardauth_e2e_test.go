package validator_test

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/tokengate/tokengate/internal/testcaddy"
	"github.com/tokengate/tokengate/internal/testnginx"
	"github.com/tokengate/tokengate/validator"
)

// forwardRoute is a forward-auth endpoint at /auth, with one more identity
// header set by a deferred `header`; it is added to the end-to-end
// Caddyfile (e2e_test.go), whose issuer and clients it uses.
const forwardRoute = `	handle /auth {
		header {
			defer
			X-Auth-Jti {http.auth.user.jti}
		}
		bearer_auth {
			audience legacy-api
			scopes reports:read
			forward_auth
		}
	}
`

// nginxForwardAuth is the nginx recipe of docs/forward-auth.md: nginx's
// auth_request asks tokengate, copies the identity headers onto the
// proxied request (overwriting any the client sent) and returns the
// challenge on refusals.
const nginxForwardAuth = `
		location / {
			auth_request /_tokengate;
			auth_request_set $auth_subject $upstream_http_x_auth_subject;
			auth_request_set $auth_client  $upstream_http_x_auth_client_id;
			auth_request_set $auth_scope   $upstream_http_x_auth_scope;
			auth_request_set $auth_jti     $upstream_http_x_auth_jti;
			auth_request_set $auth_www     $upstream_http_www_authenticate;
			proxy_set_header X-Auth-Subject   $auth_subject;
			proxy_set_header X-Auth-Client-Id $auth_client;
			proxy_set_header X-Auth-Scope     $auth_scope;
			proxy_set_header X-Auth-Jti       $auth_jti;
			proxy_set_header Authorization    "";
			add_header WWW-Authenticate $auth_www always;
			proxy_pass http://%s;
		}
		location = /_tokengate {
			internal;
			proxy_pass http://127.0.0.1:9180/auth;
			proxy_pass_request_body off;
			proxy_set_header Content-Length "";
			proxy_set_header X-Original-URI $request_uri;
			proxy_set_header X-Original-Method $request_method;
		}
`

// TestNginxForwardAuth puts Debian's nginx in front of a stand-in upstream,
// with tokengate's forward_auth endpoint as its auth_request: a good token
// reaches the upstream with the identity headers, a bad one gets the
// challenge and never reaches it.
func TestNginxForwardAuth(t *testing.T) {
	testnginx.Binary(t) // skip (or fail on CI) before starting Caddy
	up := newUpstream(t)
	cf := e2eCaddyfile(t.TempDir(), up.srv.Listener.Addr().String())
	testcaddy.Start(t, strings.Replace(cf, "\thandle_errors {", forwardRoute+"\thandle_errors {", 1))
	ngx := testnginx.Start(t, fmt.Sprintf(nginxForwardAuth, up.srv.Listener.Addr().String()))

	good := token(t, "reports-client", "reports-secret")
	send := func(auth string, extra map[string]string) (int, http.Header) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, ngx.URL+"/reports/q1", nil)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		for k, v := range extra {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		_, _ = io.Copy(io.Discard, resp.Body)
		return resp.StatusCode, resp.Header
	}

	// A good token passes, with the identity headers (a client's own
	// X-Auth-Subject is overwritten) and without the token.
	status, _ := send("Bearer "+good, map[string]string{"X-Auth-Subject": "admin"})
	if status != http.StatusOK {
		t.Fatalf("good token through nginx: %d", status)
	}
	h := up.last.Load()
	if h == nil {
		t.Fatal("upstream not reached")
	}
	for name, want := range map[string]string{
		"X-Auth-Subject": "reports-client", "X-Auth-Client-Id": "reports-client",
		"X-Auth-Scope": "reports:read reports:write", "Authorization": "",
	} {
		if got := h.Get(name); got != want {
			t.Errorf("upstream %s = %q, want %q", name, got, want)
		}
	}
	if h.Get("X-Auth-Jti") == "" {
		t.Error("the identity header set by a deferred `header` did not reach the upstream")
	}
	hits := up.hits.Load()

	refusals := []struct {
		name, auth string
		status     int
		challenge  string
	}{
		{"no token", "", 401, `Bearer realm="restricted"`},
		{"bad signature", "Bearer " + validator.Tamper(good), 401, `error="invalid_token"`},
		{"not a token", "Bearer nonsense", 401, `error="invalid_token"`},
		{"scope missing", "Bearer " + token(t, "other-client", "other-secret"), 403, `error="insufficient_scope"`},
	}
	for _, tt := range refusals {
		status, hd := send(tt.auth, nil)
		if status != tt.status {
			t.Errorf("%s: status %d, want %d", tt.name, status, tt.status)
		}
		if www := hd.Get("WWW-Authenticate"); !strings.Contains(www, tt.challenge) {
			t.Errorf("%s: WWW-Authenticate %q, want it to contain %q", tt.name, www, tt.challenge)
		}
	}
	if up.hits.Load() != hits {
		t.Errorf("refused requests reached the upstream: %d hits, want %d", up.hits.Load(), hits)
	}
}

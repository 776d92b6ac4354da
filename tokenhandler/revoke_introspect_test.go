package tokenhandler_test

import (
	"net/http"
	"net/url"
	"testing"
)

const (
	revokeURL     = base + "/oauth/revoke"
	introspectURL = base + "/oauth/introspect"
)

var demoAuth = []string{"Authorization", basic("demo-client", "demo-secret")}

func getToken(t *testing.T) (access, refreshToken string) {
	t.Helper()
	a := post(t, tokenURL+"?grant_type=client_credentials", "", demoAuth...)
	if a.status != http.StatusOK {
		t.Fatalf("token: %d %s", a.status, a.raw)
	}
	rt, _ := a.body["refresh_token"].(string)
	return a.body["access_token"].(string), rt
}

// callAPI calls the guarded route and returns its status.
func callAPI(t *testing.T, token string) int {
	t.Helper()
	req := mustReq(t, http.MethodGet, base+"/api/x")
	req.Header.Set("Authorization", "Bearer "+token)
	return do(t, req).status
}

func revoke(t *testing.T, token string, auth ...string) answer {
	t.Helper()
	return post(t, revokeURL, "token="+url.QueryEscape(token), auth...)
}

func introspect(t *testing.T, token string, auth ...string) answer {
	t.Helper()
	a := post(t, introspectURL, "token="+url.QueryEscape(token), auth...)
	if a.status == http.StatusOK {
		assertNoStore(t, a)
	}
	return a
}

func TestRevokeAccessToken(t *testing.T) {
	startIssuer(t, t.TempDir())
	at, _ := getToken(t)
	if s := callAPI(t, at); s != http.StatusOK {
		t.Fatalf("fresh token: %d", s)
	}
	// Another client may not revoke it.
	if a := revoke(t, at, "Authorization", basic("weird", weirdSecret)); a.status != 200 || a.raw != "" {
		t.Fatalf("foreign revocation: %d %s, want the 200 of an invalid token", a.status, a.raw)
	}
	if s := callAPI(t, at); s != http.StatusOK {
		t.Fatalf("after a refused revocation: %d", s)
	}
	a := revoke(t, at, demoAuth...)
	if a.status != http.StatusOK || a.raw != "" || a.header.Get("Cache-Control") != "no-store" {
		t.Fatalf("revocation: %d %q %v", a.status, a.raw, a.header)
	}
	// Refused at once on this instance, by the validator and introspection.
	if s := callAPI(t, at); s != http.StatusUnauthorized {
		t.Fatalf("revoked token reached the upstream: %d", s)
	}
	if i := introspect(t, at, demoAuth...); i.status != 200 || i.body["active"] != false {
		t.Fatalf("introspection of a revoked token: %d %s", i.status, i.raw)
	}
	// Revoking it again, or revoking garbage, is fine (RFC 7009 §2.2).
	for _, tok := range []string{at, "garbage", "a.b.c", "abcdefghijklmnopqrstuvwxyzabcdefghijklmnopq"} {
		if a := revoke(t, tok, demoAuth...); a.status != http.StatusOK {
			t.Errorf("revoking %q: %d %s", tok, a.status, a.raw)
		}
	}
	// Other tokens of the same client are untouched.
	other, _ := getToken(t)
	if s := callAPI(t, other); s != http.StatusOK {
		t.Errorf("another token of the client: %d", s)
	}
}

func TestRevokeRefreshTokenFamily(t *testing.T) {
	startIssuer(t, t.TempDir())
	at1, rt1 := getToken(t)
	r := refreshWith(t, rt1, "")
	if r.status != 200 {
		t.Fatalf("refresh: %d %s", r.status, r.raw)
	}
	at2, rt2 := r.body["access_token"].(string), r.body["refresh_token"].(string)
	if a := revoke(t, rt2, "Authorization", basic("weird", weirdSecret)); a.status != 200 || a.raw != "" {
		t.Fatalf("foreign refresh revocation: %d %s, want the 200 of an invalid token", a.status, a.raw)
	}
	if i := introspect(t, rt2, demoAuth...); i.body["active"] != true || i.body["token_type"] != "refresh_token" {
		t.Fatalf("introspecting a live refresh token: %s", i.raw)
	}
	if a := revoke(t, rt2, demoAuth...); a.status != 200 {
		t.Fatalf("revoking a refresh token: %d %s", a.status, a.raw)
	}
	if x := refreshWith(t, rt2, ""); x.status != 400 || x.body["error"] != "invalid_grant" {
		t.Fatalf("revoked refresh token redeemed: %d %s", x.status, x.raw)
	}
	// The access tokens issued with the family die with it (RFC 7009 §2.1).
	for i, at := range []string{at1, at2} {
		if s := callAPI(t, at); s != http.StatusUnauthorized {
			t.Errorf("access token %d of a revoked family: %d", i+1, s)
		}
	}
	if i := introspect(t, rt2, demoAuth...); i.body["active"] != false {
		t.Errorf("revoked refresh token still active: %s", i.raw)
	}
	// Tokens outside the family still work.
	fresh, _ := getToken(t)
	if s := callAPI(t, fresh); s != http.StatusOK {
		t.Errorf("token outside the family: %d", s)
	}
}

func TestIntrospection(t *testing.T) {
	startIssuer(t, t.TempDir())
	at, rt := getToken(t)
	i := introspect(t, at, demoAuth...)
	if i.status != 200 || i.body["active"] != true {
		t.Fatalf("own token: %d %s", i.status, i.raw)
	}
	c := verify(t, at)
	want := map[string]any{
		"client_id": "demo-client", "sub": "demo-client", "iss": base, "jti": c.ID,
		"scope": "reports:read reports:write", "token_type": "Bearer",
		"exp": float64(c.Expiry.Time().Unix()), "iat": float64(c.IssuedAt.Time().Unix()),
	}
	for k, v := range want {
		if i.body[k] != v {
			t.Errorf("introspection %s = %v, want %v", k, i.body[k], v)
		}
	}
	if aud, _ := i.body["aud"].([]any); len(aud) != 2 {
		t.Errorf("aud = %v", i.body["aud"])
	}
	// Another client sees nothing; a resource server with introspect_any does.
	if o := introspect(t, at, "Authorization", basic("weird", weirdSecret)); o.status != 200 || len(o.body) != 1 || o.body["active"] != false {
		t.Errorf("foreign introspection: %d %s", o.status, o.raw)
	}
	if rs := introspect(t, at, "Authorization", basic("resource-server", "rs-secret")); rs.body["active"] != true || rs.body["client_id"] != "demo-client" {
		t.Errorf("introspect_any: %s", rs.raw)
	}
	// client_secret_post works too.
	if p := post(t, introspectURL, "token="+url.QueryEscape(at)+"&client_id=demo-client&client_secret=demo-secret"); p.body["active"] != true {
		t.Errorf("client_secret_post introspection: %d %s", p.status, p.raw)
	}
	for _, bad := range []string{"garbage", at + "x", "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.", rt + "x"} {
		if g := introspect(t, bad, demoAuth...); g.status != 200 || len(g.body) != 1 || g.body["active"] != false {
			t.Errorf("introspecting %q: %d %s", bad, g.status, g.raw)
		}
	}
	// A refresh token is active until redeemed.
	if r := introspect(t, rt, demoAuth...); r.body["active"] != true || r.body["client_id"] != "demo-client" {
		t.Errorf("refresh token: %s", r.raw)
	}
	refreshWith(t, rt, "")
	if r := introspect(t, rt, demoAuth...); r.body["active"] != false {
		t.Errorf("redeemed refresh token still active: %s", r.raw)
	}
}

func TestLifecycleErrors(t *testing.T) {
	startIssuer(t, t.TempDir())
	at, _ := getToken(t)
	for _, endpoint := range []string{revokeURL, introspectURL} {
		cases := []struct {
			name, url, body string
			hdr             []string
			status          int
			code            string
		}{
			{"no token", endpoint, "", demoAuth, 400, "invalid_request"},
			{"token in url", endpoint + "?token=" + at, "", demoAuth, 400, "invalid_request"},
			{"repeated token", endpoint, "token=a&token=b", demoAuth, 400, "invalid_request"},
			{"wrong secret", endpoint, "token=" + at, []string{"Authorization", basic("demo-client", "nope")}, 401, "invalid_client"},
			{"no credentials", endpoint, "token=" + at, nil, 401, "invalid_client"},
			{"two auth methods", endpoint, "token=" + at + "&client_id=demo-client&client_secret=demo-secret", demoAuth, 400, "invalid_request"},
		}
		for _, tc := range cases {
			t.Run(endpoint+" "+tc.name, func(t *testing.T) {
				a := post(t, tc.url, tc.body, tc.hdr...)
				if a.status != tc.status || a.body["error"] != tc.code {
					t.Fatalf("got %d %s, want %d %s", a.status, a.raw, tc.status, tc.code)
				}
				assertNoStore(t, a)
			})
		}
		get := do(t, mustReq(t, http.MethodGet, endpoint))
		if get.status != 405 || get.header.Get("Allow") != "POST" {
			t.Errorf("GET %s: %d Allow %q", endpoint, get.status, get.header.Get("Allow"))
		}
	}
	// The token is untouched by all of the refused requests.
	if s := callAPI(t, at); s != http.StatusOK {
		t.Errorf("token after refused lifecycle requests: %d", s)
	}
}

// TestRevokingAnotherClientsTokenTellsItIsReal: the review found that
// revoking another client's token answered 400 unauthorized_client, while
// an invalid token gets 200: the answer told a caller which tokens are
// real. Both now get the same empty 200, and the token is left alone.
func TestRevokingAnotherClientsTokenTellsItIsReal(t *testing.T) {
	startIssuer(t, t.TempDir())
	at, rt := getToken(t)
	other := []string{"Authorization", basic("weird", weirdSecret)}
	garbageAT, garbageRT := revoke(t, "a.b.c", other...), revoke(t, "abcdefghijklmnopqrstuvwxyzabcdefghijklmnopq", other...)
	for _, c := range []struct {
		name    string
		token   string
		garbage answer
	}{{"access token", at, garbageAT}, {"refresh token", rt, garbageRT}} {
		a := revoke(t, c.token, other...)
		if a.status != c.garbage.status || a.raw != c.garbage.raw || a.status != 200 {
			t.Errorf("another client's %s: %d %q; an invalid one: %d %q", c.name, a.status, a.raw, c.garbage.status, c.garbage.raw)
		}
	}
	if s := callAPI(t, at); s != http.StatusOK {
		t.Errorf("the owner's access token after another client's revocation: %d", s)
	}
	if r := refreshWith(t, rt, ""); r.status != 200 {
		t.Errorf("the owner's refresh token after another client's revocation: %d %s", r.status, r.raw)
	}
}

// TestRevokeLongFamily: a family redeemed 1,000 times, then revoked, refuses
// the access tokens of its first and its last generation, at the gate and
// at introspection: they carry the family's id in sid, and the family's
// one revocation covers them all (issues 13/14).
func TestRevokeLongFamily(t *testing.T) {
	startIssuer(t, t.TempDir())
	first, rt := getToken(t)
	last := first
	for i := 0; i < 1000; i++ {
		r := refreshWith(t, rt, "")
		if r.status != 200 {
			t.Fatalf("refresh %d: %d %s", i+1, r.status, r.raw)
		}
		last, rt = r.body["access_token"].(string), r.body["refresh_token"].(string)
	}
	for _, at := range []string{first, last} {
		if s := callAPI(t, at); s != http.StatusOK {
			t.Fatalf("a live family's token: %d", s)
		}
	}
	if i := introspect(t, last, demoAuth...); i.body["active"] != true || i.body["sid"] == nil || i.body["sid"] == "" {
		t.Fatalf("introspecting the last access token: %s, want it active with a sid", i.raw)
	}
	if a := revoke(t, rt, demoAuth...); a.status != 200 {
		t.Fatalf("revoking the family: %d %s", a.status, a.raw)
	}
	for i, at := range []string{first, last} {
		if s := callAPI(t, at); s != http.StatusUnauthorized {
			t.Errorf("access token %d of the revoked family reached the upstream: %d", i, s)
		}
		if x := introspect(t, at, demoAuth...); x.status != 200 || x.body["active"] != false {
			t.Errorf("access token %d of the revoked family introspected: %d %s", i, x.status, x.raw)
		}
	}
	fresh, _ := getToken(t)
	if s := callAPI(t, fresh); s != http.StatusOK {
		t.Errorf("a token of another family: %d", s)
	}
}

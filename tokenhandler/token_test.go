package tokenhandler_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	josejwt "github.com/go-jose/go-jose/v4/jwt"
	"golang.org/x/crypto/bcrypt"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/tokengate/tokengate/internal/testcaddy"
)

const (
	base     = "http://localhost:9281"
	tokenURL = base + "/oauth/token"
	// weirdSecret holds characters that Basic credentials must survive.
	weirdSecret = "s3:cr/t=~x"
)

// startIssuer runs an issuer on :9281 with storage in dir and returns.
func startIssuer(t *testing.T, dir string) {
	t.Helper()
	testcaddy.Start(t, issuerCaddyfile(t, dir))
}

func issuerCaddyfile(t *testing.T, dir string) string {
	t.Helper()
	hash, err := bcrypt.GenerateFromPassword([]byte("hashed-secret"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf(`{
	admin off
	%s
	oauth_issuer {
		issuer %s
		client demo-client {
			secret demo-secret
			scopes reports:read reports:write
			audience legacy-api other-api
			grant_types client_credentials refresh_token
		}
		client weird {
			secret %s
			scopes a b
		}
		client hashed {
			secret_hash %s
			token_ttl 10m
		}
		client resource-server {
			secret rs-secret
			introspect_any
		}
	}
}

:9281 {
	oauth_token
	handle /api/* {
		bearer_auth {
			audience legacy-api
		}
		respond "hello {http.auth.user.id}"
	}
	respond "next handler" 418
}
`, testcaddy.Storage(dir), base, weirdSecret, hash)
}

type answer struct {
	status int
	header http.Header
	body   map[string]any
	raw    string
}

func do(t *testing.T, req *http.Request) answer {
	t.Helper()
	status, raw, hdr := testcaddy.Do(t, req)
	return answerOf(t, status, raw, hdr)
}

func post(t *testing.T, rawURL, body string, hdr ...string) answer {
	t.Helper()
	status, raw, h := testcaddy.Send(t, http.MethodPost, rawURL, body, hdr...)
	return answerOf(t, status, raw, h)
}

// answerOf is an answer of the token endpoint, its body decoded when JSON;
// no answer at all (status 0, reported by testcaddy) ends the test.
func answerOf(t *testing.T, status int, raw []byte, hdr http.Header) answer {
	t.Helper()
	if status == 0 {
		t.FailNow()
	}
	a := answer{status: status, header: hdr, raw: string(raw)}
	if strings.HasPrefix(hdr.Get("Content-Type"), "application/json") {
		if err := json.Unmarshal(raw, &a.body); err != nil {
			t.Fatalf("answer is not JSON: %v: %q", err, raw)
		}
	}
	return a
}

func basic(id, secret string) string {
	// As made by hand: echo -n "id:secret" | base64
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(id+":"+secret))
}

func assertNoStore(t *testing.T, a answer) {
	t.Helper()
	if got := a.header.Get("Cache-Control"); got != "no-store" {
		t.Errorf("Cache-Control = %q, want no-store", got)
	}
	if got := a.header.Get("Pragma"); got != "no-cache" {
		t.Errorf("Pragma = %q, want no-cache", got)
	}
	if got := a.header.Get("Content-Type"); got != "application/json" {
		t.Errorf("Content-Type = %q, want application/json", got)
	}
}

// fetchJWKS gets the served key set as go-jose parses it.
func fetchJWKS(t *testing.T) jose.JSONWebKeySet {
	t.Helper()
	resp, err := http.Get(base + "/.well-known/jwks.json")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var set jose.JSONWebKeySet
	if err := json.NewDecoder(resp.Body).Decode(&set); err != nil {
		t.Fatal(err)
	}
	return set
}

type atClaims struct {
	josejwt.Claims
	ClientID string `json:"client_id"`
	Scope    string `json:"scope"`
}

// verify checks an access token with go-jose, a JOSE library independent of
// the one that signed it, against the JWKS the server publishes.
func verify(t *testing.T, token string) atClaims {
	t.Helper()
	tok, err := josejwt.ParseSigned(token, []jose.SignatureAlgorithm{jose.ES256})
	if err != nil {
		t.Fatalf("parsing access token: %v", err)
	}
	if len(tok.Headers) != 1 {
		t.Fatalf("want one signature, got %d", len(tok.Headers))
	}
	h := tok.Headers[0]
	if typ := h.ExtraHeaders[jose.HeaderType]; typ != "at+jwt" {
		t.Errorf("typ = %v, want at+jwt", typ)
	}
	set := fetchJWKS(t)
	keys := set.Key(h.KeyID)
	if len(keys) != 1 {
		t.Fatalf("kid %q found %d times in the JWKS", h.KeyID, len(keys))
	}
	var c atClaims
	if err := tok.Claims(keys[0].Key, &c); err != nil {
		t.Fatalf("signature does not verify against the JWKS: %v", err)
	}
	if err := c.ValidateWithLeeway(josejwt.Expected{Issuer: base, Time: time.Now()}, 0); err != nil {
		t.Errorf("claims: %v", err)
	}
	if c.ID == "" || c.IssuedAt == nil || c.NotBefore == nil || c.Expiry == nil {
		t.Errorf("missing jti/iat/nbf/exp: %+v", c)
	}
	if c.Subject != c.ClientID || c.ClientID == "" {
		t.Errorf("sub %q and client_id %q must be the client id", c.Subject, c.ClientID)
	}
	return c
}

func TestSpecCurl(t *testing.T) {
	startIssuer(t, t.TempDir())
	// curl --location --request POST '.../oauth/token?grant_type=client_credentials' --header 'Authorization: Basic ...'
	for _, grant := range []string{"client_credentials", "client_credential"} {
		a := post(t, tokenURL+"?grant_type="+grant, "", "Authorization", basic("demo-client", "demo-secret"))
		if a.status != http.StatusOK {
			t.Fatalf("%s: status %d: %s", grant, a.status, a.raw)
		}
		assertNoStore(t, a)
		if a.body["token_type"] != "Bearer" || a.body["expires_in"] != float64(3600) {
			t.Errorf("%s: answer %s", grant, a.raw)
		}
		if rt, _ := a.body["refresh_token"].(string); rt == "" {
			t.Errorf("%s: no refresh_token for a client allowed the grant: %s", grant, a.raw)
		}
		if _, has := a.body["scope"]; has {
			t.Errorf("%s: scope returned though not narrowed: %s", grant, a.raw)
		}
		c := verify(t, a.body["access_token"].(string))
		if c.Scope != "reports:read reports:write" || c.ClientID != "demo-client" {
			t.Errorf("claims %+v", c)
		}
		if !c.Audience.Contains("legacy-api") || !c.Audience.Contains("other-api") {
			t.Errorf("aud = %v", c.Audience)
		}
	}
}

func TestFormBodyAndPost(t *testing.T) {
	startIssuer(t, t.TempDir())
	a := post(t, tokenURL, "grant_type=client_credentials&client_id=weird&client_secret="+url.QueryEscape(weirdSecret))
	if a.status != http.StatusOK {
		t.Fatalf("client_secret_post: %d %s", a.status, a.raw)
	}
	if _, has := a.body["refresh_token"]; has {
		t.Errorf("refresh_token given to a client without the refresh_token grant: %s", a.raw)
	}
	// The same grant_type in both places is fine.
	a = post(t, tokenURL+"?grant_type=client_credentials", "grant_type=client_credentials", "Authorization", basic("demo-client", "demo-secret"))
	if a.status != http.StatusOK {
		t.Fatalf("grant_type in query and body: %d %s", a.status, a.raw)
	}
	// A secret hashed with bcrypt, and the client's own token_ttl.
	a = post(t, tokenURL+"?grant_type=client_credentials", "", "Authorization", basic("hashed", "hashed-secret"))
	if a.status != http.StatusOK || a.body["expires_in"] != float64(600) {
		t.Fatalf("hashed secret: %d %s", a.status, a.raw)
	}
	c := verify(t, a.body["access_token"].(string))
	if len(c.Audience) != 1 || c.Audience[0] != base {
		t.Errorf("default audience = %v, want the issuer URL", c.Audience)
	}
}

func TestOAuth2ClientAuthStyles(t *testing.T) {
	startIssuer(t, t.TempDir())
	styles := map[string]oauth2.AuthStyle{
		"header":     oauth2.AuthStyleInHeader,
		"params":     oauth2.AuthStyleInParams,
		"autodetect": oauth2.AuthStyleAutoDetect,
	}
	for name, style := range styles {
		t.Run(name, func(t *testing.T) {
			cfg := clientcredentials.Config{
				ClientID:     "weird",
				ClientSecret: weirdSecret,
				TokenURL:     tokenURL,
				Scopes:       []string{"a"},
				AuthStyle:    style,
			}
			tok, err := cfg.Token(context.Background())
			if err != nil {
				t.Fatalf("golang.org/x/oauth2: %v", err)
			}
			if tok.TokenType != "Bearer" || time.Until(tok.Expiry) < 59*time.Minute {
				t.Errorf("token %+v", tok)
			}
			if got := tok.Extra("scope"); got != "a" {
				t.Errorf("narrowed scope in answer = %v, want a", got)
			}
			if c := verify(t, tok.AccessToken); c.Scope != "a" || c.ClientID != "weird" {
				t.Errorf("claims %+v", c)
			}
			cfg.ClientSecret = "wrong"
			if _, err := cfg.Token(context.Background()); err == nil {
				t.Error("wrong secret accepted")
			} else if re, ok := err.(*oauth2.RetrieveError); !ok || re.ErrorCode != "invalid_client" {
				t.Errorf("wrong secret: %v, want invalid_client", err)
			}
		})
	}
}

func TestTokenErrors(t *testing.T) {
	startIssuer(t, t.TempDir())
	demo := basic("demo-client", "demo-secret")
	cases := []struct {
		name   string
		method string
		url    string
		body   string
		hdr    []string
		status int
		code   string
		basic  bool
	}{
		{"get", http.MethodGet, tokenURL + "?grant_type=client_credentials", "", []string{"Authorization", demo}, 405, "invalid_request", false},
		{"no grant_type", "", tokenURL, "", []string{"Authorization", demo}, 400, "invalid_request", false},
		{"unsupported grant", "", tokenURL + "?grant_type=password", "", []string{"Authorization", demo}, 400, "unsupported_grant_type", false},
		{"query and body differ", "", tokenURL + "?grant_type=client_credentials", "grant_type=refresh_token", []string{"Authorization", demo}, 400, "invalid_request", false},
		{"repeated in query", "", tokenURL + "?grant_type=client_credentials&grant_type=client_credentials", "", []string{"Authorization", demo}, 400, "invalid_request", false},
		{"repeated in body", "", tokenURL, "grant_type=client_credentials&scope=a&scope=b", []string{"Authorization", demo}, 400, "invalid_request", false},
		{"two auth methods", "", tokenURL + "?grant_type=client_credentials", "client_id=demo-client&client_secret=demo-secret", []string{"Authorization", demo}, 400, "invalid_request", false},
		{"secret in url", "", tokenURL + "?grant_type=client_credentials&client_id=demo-client&client_secret=demo-secret", "", nil, 400, "invalid_request", false},
		{"wrong secret basic", "", tokenURL + "?grant_type=client_credentials", "", []string{"Authorization", basic("demo-client", "nope")}, 401, "invalid_client", true},
		{"unknown client basic", "", tokenURL + "?grant_type=client_credentials", "", []string{"Authorization", basic("ghost", "nope")}, 401, "invalid_client", true},
		{"wrong secret post", "", tokenURL, "grant_type=client_credentials&client_id=demo-client&client_secret=nope", nil, 401, "invalid_client", false},
		{"no credentials", "", tokenURL + "?grant_type=client_credentials", "", nil, 401, "invalid_client", true},
		{"bearer instead of basic", "", tokenURL + "?grant_type=client_credentials", "", []string{"Authorization", "Bearer abc"}, 401, "invalid_client", true},
		{"malformed basic", "", tokenURL + "?grant_type=client_credentials", "", []string{"Authorization", "Basic !!!"}, 401, "invalid_client", true},
		{"grant not allowed", "", tokenURL + "?grant_type=refresh_token", "refresh_token=x", []string{"Authorization", basic("weird", weirdSecret)}, 400, "unauthorized_client", false},
		{"scope not allowed", "", tokenURL + "?grant_type=client_credentials&scope=admin", "", []string{"Authorization", demo}, 400, "invalid_scope", false},
		{"resource not allowed", "", tokenURL + "?grant_type=client_credentials&resource=https://evil.example", "", []string{"Authorization", demo}, 400, "invalid_target", false},
		{"refresh without token", "", tokenURL + "?grant_type=refresh_token", "", []string{"Authorization", demo}, 400, "invalid_request", false},
		{"unknown refresh token", "", tokenURL + "?grant_type=refresh_token", "refresh_token=abcdefghijklmnopqrstuvwxyzabcdefghijklmnopq", []string{"Authorization", demo}, 400, "invalid_grant", false},
		{"not a form", "", tokenURL + "?grant_type=client_credentials", "{}", []string{"Authorization", demo, "Content-Type", "application/json"}, 400, "invalid_request", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var a answer
			if tc.method == http.MethodGet {
				req, _ := http.NewRequest(tc.method, tc.url, nil)
				for i := 0; i+1 < len(tc.hdr); i += 2 {
					req.Header.Set(tc.hdr[i], tc.hdr[i+1])
				}
				a = do(t, req)
				if got := a.header.Get("Allow"); got != "POST" {
					t.Errorf("Allow = %q, want POST", got)
				}
			} else {
				a = post(t, tc.url, tc.body, tc.hdr...)
			}
			if a.status != tc.status || a.body["error"] != tc.code {
				t.Fatalf("got %d %s, want %d %s", a.status, a.raw, tc.status, tc.code)
			}
			assertNoStore(t, a)
			if got := a.header.Get("WWW-Authenticate"); (got != "") != tc.basic || (tc.basic && !strings.HasPrefix(got, "Basic ")) {
				t.Errorf("WWW-Authenticate = %q, want Basic challenge: %v", got, tc.basic)
			}
			if strings.Contains(a.raw, "demo-secret") || strings.Contains(a.raw, "nope") {
				t.Errorf("answer echoes a secret: %s", a.raw)
			}
		})
	}
}

func TestBodyCap(t *testing.T) {
	startIssuer(t, t.TempDir())
	big := "grant_type=client_credentials&pad=" + strings.Repeat("a", 70<<10)
	a := post(t, tokenURL, big, "Authorization", basic("demo-client", "demo-secret"))
	if a.status != http.StatusRequestEntityTooLarge {
		t.Fatalf("oversized body: %d %s", a.status, a.raw)
	}
	assertNoStore(t, a)
	// The server keeps serving.
	a = post(t, tokenURL+"?grant_type=client_credentials", "", "Authorization", basic("demo-client", "demo-secret"))
	if a.status != http.StatusOK {
		t.Fatalf("after an oversized body: %d %s", a.status, a.raw)
	}
}

func TestScopeAndResourceNarrowing(t *testing.T) {
	startIssuer(t, t.TempDir())
	a := post(t, tokenURL+"?grant_type=client_credentials", "scope=reports:read&resource=legacy-api", "Authorization", basic("demo-client", "demo-secret"))
	if a.status != http.StatusOK {
		t.Fatalf("%d %s", a.status, a.raw)
	}
	if a.body["scope"] != "reports:read" {
		t.Errorf("answer scope = %v, want reports:read", a.body["scope"])
	}
	c := verify(t, a.body["access_token"].(string))
	if c.Scope != "reports:read" || len(c.Audience) != 1 || c.Audience[0] != "legacy-api" {
		t.Errorf("claims scope %q aud %v", c.Scope, c.Audience)
	}
}

func refreshWith(t *testing.T, rt, extra string) answer {
	t.Helper()
	return post(t, tokenURL, "grant_type=refresh_token&refresh_token="+url.QueryEscape(rt)+extra, "Authorization", basic("demo-client", "demo-secret"))
}

func TestRefreshRotationAndReuse(t *testing.T) {
	startIssuer(t, t.TempDir())
	a := post(t, tokenURL+"?grant_type=client_credentials", "", "Authorization", basic("demo-client", "demo-secret"))
	rt1 := a.body["refresh_token"].(string)

	// Widening is refused, and costs the client nothing: rt1 still works.
	if w := refreshWith(t, rt1, "&scope=admin"); w.status != 400 || w.body["error"] != "invalid_scope" {
		t.Fatalf("widened refresh: %d %s", w.status, w.raw)
	}
	b := refreshWith(t, rt1, "&scope=reports:read")
	if b.status != http.StatusOK {
		t.Fatalf("refresh: %d %s", b.status, b.raw)
	}
	assertNoStore(t, b)
	rt2, _ := b.body["refresh_token"].(string)
	if rt2 == "" || rt2 == rt1 {
		t.Fatalf("refresh token not rotated: %q", rt2)
	}
	if c := verify(t, b.body["access_token"].(string)); c.Scope != "reports:read" {
		t.Errorf("narrowed refresh scope = %q", c.Scope)
	}
	// Another client cannot redeem it.
	if o := post(t, tokenURL, "grant_type=refresh_token&refresh_token="+rt2, "Authorization", basic("weird", weirdSecret)); o.status != 400 || o.body["error"] != "unauthorized_client" {
		t.Errorf("other client: %d %s", o.status, o.raw)
	}
	// The narrowed access token did not narrow the refresh grant.
	c := refreshWith(t, rt2, "")
	if c.status != http.StatusOK {
		t.Fatalf("second refresh: %d %s", c.status, c.raw)
	}
	if claims := verify(t, c.body["access_token"].(string)); claims.Scope != "reports:read reports:write" {
		t.Errorf("refresh grant was narrowed: scope %q", claims.Scope)
	}
	rt3 := c.body["refresh_token"].(string)
	// Reusing rt1 is refused and revokes the family: rt3 dies too.
	if r := refreshWith(t, rt1, ""); r.status != 400 || r.body["error"] != "invalid_grant" {
		t.Fatalf("reused refresh token: %d %s", r.status, r.raw)
	}
	if r := refreshWith(t, rt3, ""); r.status != 400 || r.body["error"] != "invalid_grant" {
		t.Fatalf("family not revoked after reuse: %d %s", r.status, r.raw)
	}
}

func TestWellKnown(t *testing.T) {
	startIssuer(t, t.TempDir())
	resp, err := http.Get(base + "/.well-known/jwks.json")
	if err != nil {
		t.Fatal(err)
	}
	var raw struct {
		Keys []map[string]any `json:"keys"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&raw); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if len(raw.Keys) != 1 {
		t.Fatalf("want 1 key, got %d", len(raw.Keys))
	}
	k := raw.Keys[0]
	for _, priv := range []string{"d", "p", "q", "dp", "dq", "qi"} {
		if _, has := k[priv]; has {
			t.Errorf("JWKS exposes private member %q", priv)
		}
	}
	if k["kid"] == "" || k["alg"] != "ES256" || k["use"] != "sig" {
		t.Errorf("key %v lacks kid/alg/use", k)
	}

	a := do(t, mustReq(t, http.MethodGet, base+"/.well-known/oauth-authorization-server"))
	if a.status != 200 {
		t.Fatalf("metadata: %d", a.status)
	}
	want := map[string]any{
		"issuer":                 base,
		"token_endpoint":         tokenURL,
		"jwks_uri":               base + "/.well-known/jwks.json",
		"revocation_endpoint":    base + "/oauth/revoke",
		"introspection_endpoint": base + "/oauth/introspect",
	}
	for k, v := range want {
		if a.body[k] != v {
			t.Errorf("metadata %s = %v, want %v", k, a.body[k], v)
		}
	}
	if fmt.Sprint(a.body["grant_types_supported"]) != "[client_credentials refresh_token]" ||
		fmt.Sprint(a.body["token_endpoint_auth_methods_supported"]) != "[client_secret_basic client_secret_post]" ||
		fmt.Sprint(a.body["scopes_supported"]) != "[reports:read reports:write a b]" {
		t.Errorf("metadata %s", a.raw)
	}
	if p := do(t, mustReq(t, http.MethodPost, base+"/.well-known/jwks.json")); p.status != 405 {
		t.Errorf("POST jwks: %d", p.status)
	}
	// Anything else goes to the next handler.
	if n := do(t, mustReq(t, http.MethodGet, base+"/elsewhere")); n.status != 418 {
		t.Errorf("other path: %d, want the next handler's 418", n.status)
	}
}

func mustReq(t *testing.T, method, u string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(method, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	return req
}

// TestStateSurvivesRestart stops Caddy and starts it again on the same
// storage: the same signing key is served, and a refresh token issued before
// is redeemed after.
func TestStateSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	cfg := issuerCaddyfile(t, dir)
	if err := testcaddy.Load(cfg); err != nil {
		t.Fatal(err)
	}
	a := post(t, tokenURL+"?grant_type=client_credentials", "", "Authorization", basic("demo-client", "demo-secret"))
	if a.status != 200 {
		t.Fatalf("%d %s", a.status, a.raw)
	}
	kid := fetchJWKS(t).Keys[0].KeyID
	at := a.body["access_token"].(string)
	testcaddy.StopNow(t)

	startIssuer(t, dir)
	if got := fetchJWKS(t).Keys; len(got) != 1 || got[0].KeyID != kid {
		t.Fatalf("after restart the JWKS is %v, want kid %s", got, kid)
	}
	verify(t, at)
	if r := refreshWith(t, a.body["refresh_token"].(string), ""); r.status != 200 {
		t.Fatalf("refresh after restart: %d %s", r.status, r.raw)
	}
}

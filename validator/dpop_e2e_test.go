package validator_test

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/tokengate/tokengate/internal/dpoptest"
	"github.com/tokengate/tokengate/internal/testcaddy"
)

// The DPoP tests run one Caddy with an issuer and gates on :9616.
const (
	dpopBase     = "http://localhost:9616"
	dpopTokenURL = dpopBase + "/oauth/token"
)

func startDPoP(t *testing.T) {
	t.Helper()
	testcaddy.Start(t, fmt.Sprintf(`{
	admin off
	%s
	oauth_issuer {
		issuer %s
		client plain {
			secret plain-secret
			scopes reports:read
			grant_types client_credentials refresh_token
		}
		client bound {
			secret bound-secret
			scopes reports:read
			require_binding dpop
		}
		client resource-server {
			secret rs-secret
			introspect_any
		}
	}
}

:9616 {
	oauth_token
	handle /api/* {
		bearer_auth {
			scopes reports:read
		}
		respond "hello {http.auth.user.client_id}"
	}
	handle /dpop-only/* {
		bearer_auth {
			require dpop
		}
		respond "bound"
	}
	handle /nonce/* {
		bearer_auth {
			dpop_nonce
		}
		respond "nonce ok"
	}
	respond "next" 418
}
`, testcaddy.Storage(t.TempDir()), dpopBase))
}

type dpopAnswer struct {
	status int
	header http.Header
	body   string
	json   map[string]any
}

func dpopDo(t *testing.T, method, rawURL, body string, hdr map[string]string) dpopAnswer {
	t.Helper()
	return doWith(t, http.DefaultClient, method, rawURL, body, hdr)
}

// dpopToken asks the token endpoint for a token of client, with a proof
// of key when key is not nil.
func dpopToken(t *testing.T, client, secret string, key *dpoptest.Key, form url.Values) dpopAnswer {
	t.Helper()
	if form == nil {
		form = url.Values{"grant_type": {"client_credentials"}}
	}
	form.Set("client_id", client)
	form.Set("client_secret", secret)
	hdr := map[string]string{}
	if key != nil {
		hdr["DPoP"] = key.Proof("POST", dpopTokenURL, "", time.Now())
	}
	return dpopDo(t, "POST", dpopTokenURL, form.Encode(), hdr)
}

func newDPoPKey(t *testing.T) *dpoptest.Key {
	t.Helper()
	k, err := dpoptest.NewKey("ES256")
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestDPoPEndToEnd(t *testing.T) {
	startDPoP(t)
	key := newDPoPKey(t)

	// Token endpoint: a proof gives a DPoP token bound to the key.
	a := dpopToken(t, "plain", "plain-secret", key, nil)
	if a.status != 200 || a.json["token_type"] != "DPoP" {
		t.Fatalf("token with proof: %d %s", a.status, a.body)
	}
	tok := a.json["access_token"].(string)
	refresh, _ := a.json["refresh_token"].(string)
	payload := decodeSegment(t, strings.Split(tok, ".")[1])
	if cnf, _ := payload["cnf"].(map[string]any); cnf["jkt"] != key.JKT() {
		t.Fatalf("cnf %v, want jkt %s", payload["cnf"], key.JKT())
	}

	// Introspection returns cnf and the DPoP token type.
	in := dpopDo(t, "POST", dpopBase+"/oauth/introspect", url.Values{"token": {tok}, "client_id": {"resource-server"}, "client_secret": {"rs-secret"}}.Encode(), nil)
	if cnf, _ := in.json["cnf"].(map[string]any); in.json["active"] != true || cnf["jkt"] != key.JKT() || in.json["token_type"] != "DPoP" {
		t.Fatalf("introspection: %s", in.body)
	}

	api := dpopBase + "/api/reports"
	ok := dpopDo(t, "GET", api, "", map[string]string{"Authorization": "DPoP " + tok, "DPoP": key.Proof("GET", api, tok, time.Now())})
	if ok.status != 200 || ok.body != "hello plain" {
		t.Fatalf("DPoP request: %d %s %v", ok.status, ok.body, ok.header)
	}
	// A fresh proof for each request, the same token: accepted again.
	ok = dpopDo(t, "GET", api, "", map[string]string{"Authorization": "DPoP " + tok, "DPoP": key.Proof("GET", api, tok, time.Now())})
	if ok.status != 200 {
		t.Fatalf("second DPoP request: %d %s", ok.status, ok.body)
	}

	// Refresh with a proof: the new token is bound too.
	if refresh == "" {
		t.Fatal("no refresh token")
	}
	ra := dpopToken(t, "plain", "plain-secret", key, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refresh}})
	if ra.status != 200 || ra.json["token_type"] != "DPoP" {
		t.Fatalf("refresh with proof: %d %s", ra.status, ra.body)
	}

	// Without a proof the token endpoint issues a bearer token; the
	// route requiring DPoP refuses it.
	b := dpopToken(t, "plain", "plain-secret", nil, nil)
	if b.status != 200 || b.json["token_type"] != "Bearer" {
		t.Fatalf("token without proof: %d %s", b.status, b.body)
	}
	bearer := b.json["access_token"].(string)
	if _, has := decodeSegment(t, strings.Split(bearer, ".")[1])["cnf"]; has {
		t.Fatal("bearer token carries cnf")
	}
	if r := dpopDo(t, "GET", api, "", map[string]string{"Authorization": "Bearer " + bearer}); r.status != 200 {
		t.Fatalf("bearer token at an open route: %d", r.status)
	}
	only := dpopBase + "/dpop-only/x"
	r := dpopDo(t, "GET", only, "", map[string]string{"Authorization": "Bearer " + bearer})
	wantChallenge(t, r, 401, `DPoP realm="restricted", algs="ES256 ES384 ES512 EdDSA RS256 PS256", error="invalid_token"`)
	if r := dpopDo(t, "GET", only, "", map[string]string{"Authorization": "DPoP " + tok, "DPoP": key.Proof("GET", only, tok, time.Now())}); r.status != 200 || r.body != "bound" {
		t.Fatalf("DPoP token at the DPoP-only route: %d %s", r.status, r.body)
	}

	// Metadata advertises the algorithms.
	md := dpopDo(t, "GET", dpopBase+"/.well-known/oauth-authorization-server", "", nil)
	if algs, _ := md.json["dpop_signing_alg_values_supported"].([]any); len(algs) == 0 || algs[0] != "ES256" {
		t.Fatalf("metadata: %s", md.body)
	}
}

// TestDPoPRefusals runs every refusal of issue 16's list that concerns
// DPoP against the running instance, checking the status, the error code
// and the challenge's scheme.
func TestDPoPRefusals(t *testing.T) {
	startDPoP(t)
	key := newDPoPKey(t)
	other := newDPoPKey(t)
	a := dpopToken(t, "plain", "plain-secret", key, nil)
	if a.status != 200 {
		t.Fatalf("token: %d %s", a.status, a.body)
	}
	tok := a.json["access_token"].(string)
	api := dpopBase + "/api/reports"
	now := time.Now()
	claims := func(f func(*dpoptest.Claims)) string {
		c := dpoptest.Claims{HTM: "GET", HTU: api, IAT: now.Unix(), ATH: dpoptest.ATH(tok)}
		f(&c)
		return key.Sign(c, nil)
	}
	replayed := key.Proof("GET", api, tok, now)
	if r := dpopDo(t, "GET", api, "", map[string]string{"Authorization": "DPoP " + tok, "DPoP": replayed}); r.status != 200 {
		t.Fatalf("first use of the proof: %d %s", r.status, r.body)
	}
	for _, tc := range []struct {
		name  string
		hdr   map[string]string
		code  string
		extra string // further text the challenge must hold
	}{
		{"replayed proof", map[string]string{"Authorization": "DPoP " + tok, "DPoP": replayed}, "invalid_dpop_proof", "replayed"},
		{"wrong htm", map[string]string{"Authorization": "DPoP " + tok, "DPoP": claims(func(c *dpoptest.Claims) { c.HTM = "POST" })}, "invalid_dpop_proof", "htm"},
		{"wrong htu", map[string]string{"Authorization": "DPoP " + tok, "DPoP": claims(func(c *dpoptest.Claims) { c.HTU = dpopBase + "/api/other" })}, "invalid_dpop_proof", "htu"},
		{"stale iat", map[string]string{"Authorization": "DPoP " + tok, "DPoP": claims(func(c *dpoptest.Claims) { c.IAT = now.Add(-10 * time.Minute).Unix() })}, "invalid_dpop_proof", "iat"},
		{"missing ath", map[string]string{"Authorization": "DPoP " + tok, "DPoP": claims(func(c *dpoptest.Claims) { c.ATH = "" })}, "invalid_dpop_proof", "ath"},
		{"wrong ath", map[string]string{"Authorization": "DPoP " + tok, "DPoP": claims(func(c *dpoptest.Claims) { c.ATH = dpoptest.ATH("x") })}, "invalid_dpop_proof", "ath"},
		{"signed by another key", map[string]string{"Authorization": "DPoP " + tok, "DPoP": other.Proof("GET", api, tok, now)}, "invalid_dpop_proof", "another key"},
		{"no proof", map[string]string{"Authorization": "DPoP " + tok}, "invalid_dpop_proof", "required"},
		{"DPoP-bound token as Bearer", map[string]string{"Authorization": "Bearer " + tok}, "invalid_token", "bearer"},
		{"DPoP-bound token as Bearer with a proof", map[string]string{"Authorization": "Bearer " + tok, "DPoP": key.Proof("GET", api, tok, now)}, "invalid_token", "bearer"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := dpopDo(t, "GET", api, "", tc.hdr)
			wantChallenge(t, r, 401, `DPoP realm="restricted", algs="ES256 ES384 ES512 EdDSA RS256 PS256", error="`+tc.code+`"`)
			if !strings.Contains(r.header.Get("WWW-Authenticate"), tc.extra) {
				t.Fatalf("challenge %q does not say %q", r.header.Get("WWW-Authenticate"), tc.extra)
			}
		})
	}

	// The token endpoint: a bad proof is refused, and a client whose
	// tokens must be bound gets none without one.
	bad := dpopDo(t, "POST", dpopTokenURL, url.Values{"grant_type": {"client_credentials"}, "client_id": {"plain"}, "client_secret": {"plain-secret"}}.Encode(),
		map[string]string{"DPoP": key.Proof("POST", dpopBase+"/elsewhere", "", now)})
	if bad.status != 400 || bad.json["error"] != "invalid_dpop_proof" {
		t.Fatalf("token endpoint, proof for another URL: %d %s", bad.status, bad.body)
	}
	if r := dpopToken(t, "bound", "bound-secret", nil, nil); r.status != 400 || r.json["error"] != "invalid_dpop_proof" {
		t.Fatalf("bound client without proof: %d %s", r.status, r.body)
	}
	if r := dpopToken(t, "bound", "bound-secret", key, nil); r.status != 200 || r.json["token_type"] != "DPoP" {
		t.Fatalf("bound client with proof: %d %s", r.status, r.body)
	}
}

// TestDPoPNonce: a route with dpop_nonce answers use_dpop_nonce and a
// nonce, and accepts the retry that carries it.
func TestDPoPNonce(t *testing.T) {
	startDPoP(t)
	key := newDPoPKey(t)
	tok := dpopToken(t, "plain", "plain-secret", key, nil).json["access_token"].(string)
	u := dpopBase + "/nonce/x"
	r := dpopDo(t, "GET", u, "", map[string]string{"Authorization": "DPoP " + tok, "DPoP": key.Proof("GET", u, tok, time.Now())})
	wantChallenge(t, r, 401, `DPoP realm="restricted", algs="ES256 ES384 ES512 EdDSA RS256 PS256", error="use_dpop_nonce"`)
	nonce := r.header.Get("DPoP-Nonce")
	if nonce == "" {
		t.Fatal("no DPoP-Nonce header")
	}
	proof := key.Sign(dpoptest.Claims{HTM: "GET", HTU: u, IAT: time.Now().Unix(), ATH: dpoptest.ATH(tok), Nonce: nonce}, nil)
	if r := dpopDo(t, "GET", u, "", map[string]string{"Authorization": "DPoP " + tok, "DPoP": proof}); r.status != 200 || r.body != "nonce ok" {
		t.Fatalf("retry with the nonce: %d %s", r.status, r.body)
	}
}

func wantChallenge(t *testing.T, r dpopAnswer, status int, prefix string) {
	t.Helper()
	if r.status != status || !strings.HasPrefix(r.header.Get("WWW-Authenticate"), prefix) {
		t.Fatalf("answer %d, WWW-Authenticate %q; want %d and %q", r.status, r.header.Get("WWW-Authenticate"), status, prefix)
	}
}

func decodeSegment(t *testing.T, seg string) map[string]any {
	t.Helper()
	raw, err := base64.RawURLEncoding.DecodeString(seg)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

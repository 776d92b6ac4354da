package validator

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/tokengate/tokengate/internal/accesstoken"
	"github.com/tokengate/tokengate/internal/remotekeys"
	"github.com/tokengate/tokengate/internal/testclock"
)

// idp is a fake remote identity provider.
type idp struct {
	srv *httptest.Server

	mu        sync.Mutex
	keys      []idpKey
	discovery string // "oauth", "oidc" or "" (none)
	mdIssuer  string // issuer named in the metadata; default: the server URL
	jwksBody  []byte // served instead of the keys when set
	// redirects answers a path with a 302 to another URL.
	redirects map[string]string

	jwksHits atomic.Int64
	mdHits   atomic.Int64
	down     atomic.Bool
}

type idpKey struct {
	kid  string
	priv *ecdsa.PrivateKey
	jwk  map[string]any
}

func newIDP(t *testing.T, discovery string) *idp {
	t.Helper()
	p := &idp{discovery: discovery}
	p.srv = httptest.NewServer(http.HandlerFunc(p.serve))
	t.Cleanup(p.srv.Close)
	p.addKey(t, "k1")
	return p
}

func (p *idp) serve(w http.ResponseWriter, r *http.Request) {
	if p.down.Load() {
		http.Error(w, "down", http.StatusBadGateway)
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if to, ok := p.redirects[r.URL.Path]; ok {
		http.Redirect(w, r, to, http.StatusFound)
		return
	}
	issuer := p.mdIssuer
	if issuer == "" {
		issuer = p.srv.URL
	}
	switch {
	case r.URL.Path == "/.well-known/oauth-authorization-server" && p.discovery == "oauth",
		r.URL.Path == "/.well-known/openid-configuration" && p.discovery == "oidc":
		p.mdHits.Add(1)
		_ = json.NewEncoder(w).Encode(map[string]string{"issuer": issuer, "jwks_uri": p.srv.URL + "/keys"})
	case r.URL.Path == "/keys":
		p.jwksHits.Add(1)
		if p.jwksBody != nil {
			_, _ = w.Write(p.jwksBody)
			return
		}
		var set []map[string]any
		for _, k := range p.keys {
			set = append(set, k.jwk)
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"keys": set})
	default:
		http.NotFound(w, r)
	}
}

func (p *idp) addKey(t *testing.T, kid string) idpKey {
	t.Helper()
	priv, k := newECKey(t)
	var m map[string]any
	if err := json.Unmarshal([]byte(mustJSON(t, k)), &m); err != nil {
		t.Fatal(err)
	}
	m["kid"], m["alg"], m["use"] = kid, "ES256", "sig"
	ik := idpKey{kid: kid, priv: priv, jwk: m}
	p.mu.Lock()
	p.keys = append(p.keys, ik)
	p.mu.Unlock()
	return ik
}

func (p *idp) removeKey(kid string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i, k := range p.keys {
		if k.kid == kid {
			p.keys = append(p.keys[:i], p.keys[i+1:]...)
			return
		}
	}
}

func (p *idp) key(kid string) idpKey {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, k := range p.keys {
		if k.kid == kid {
			return k
		}
	}
	return idpKey{}
}

// token signs a token of the IdP with key kid.
func (p *idp) token(t *testing.T, kid, typ string, clk *clock, mod func(map[string]any)) string {
	t.Helper()
	now := clk.Now().Unix()
	c := map[string]any{"iss": p.srv.URL, "sub": "svc-a", "azp": "svc-a", "aud": []string{"api://reports"}, "exp": now + 300, "iat": now, "scp": []string{"reports.read"}}
	if mod != nil {
		mod(c)
	}
	h := map[string]any{"alg": "ES256", "kid": kid}
	if typ != "" {
		h["typ"] = typ
	}
	k := p.key(kid)
	if k.priv == nil {
		var err error
		if k.priv, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
			t.Fatal(err)
		}
	}
	return signRaw(t, k.priv, "ES256", mustJSON(t, h), mustJSON(t, c))
}

// newRemote makes a handler trusting the IdP, with its own fetcher on clk.
func newRemote(t *testing.T, p *idp, jwksURL string, clk *clock, mod func(*Handler)) *Handler {
	t.Helper()
	f := remotekeys.New(remotekeys.Config{Issuer: p.srv.URL, JWKSURL: jwksURL, Now: clk.Now})
	f.Start(2 * time.Second)
	t.Cleanup(func() { _ = f.Destruct() })
	h := &Handler{Issuer: p.srv.URL, Audience: []string{"api://reports"}, logger: zap.NewNop(), now: clk.Now}
	if mod != nil {
		mod(h)
	}
	h.audience = h.Audience
	if err := h.provisionCommon(); err != nil {
		t.Fatal(err)
	}
	h.useRemote(p.srv.URL, f)
	return h
}

func TestRemoteDiscovery(t *testing.T) {
	for _, disc := range []string{"oauth", "oidc"} {
		t.Run(disc, func(t *testing.T) {
			p := newIDP(t, disc)
			clk := newClock()
			h := newRemote(t, p, "", clk, func(h *Handler) { h.Scopes = []string{"reports.read"} })
			res := do(h, "Bearer "+p.token(t, "k1", "JWT", clk, nil))
			if !res.reached {
				t.Fatalf("refused: %v", res.err)
			}
			if v, _ := res.repl.GetString("http.auth.user.client_id"); v != "svc-a" {
				t.Errorf("client_id from azp = %q", v)
			}
			if v, _ := res.repl.GetString("http.auth.user.scope"); v != "reports.read" {
				t.Errorf("scope from scp = %q", v)
			}
			if p.mdHits.Load() != 1 || p.jwksHits.Load() != 1 {
				t.Errorf("metadata fetched %d times, JWKS %d times; want 1 and 1", p.mdHits.Load(), p.jwksHits.Load())
			}
		})
	}
}

func TestRemoteJWKSURLWithoutDiscovery(t *testing.T) {
	p := newIDP(t, "")
	clk := newClock()
	h := newRemote(t, p, p.srv.URL+"/keys", clk, nil)
	if res := do(h, "Bearer "+p.token(t, "k1", "", clk, nil)); !res.reached {
		t.Fatalf("refused: %v", res.err)
	}
	if p.mdHits.Load() != 0 {
		t.Error("metadata fetched although jwks_url is set")
	}
}

func TestRemoteDiscoveryIssuerMismatch(t *testing.T) {
	p := newIDP(t, "oauth")
	p.mdIssuer = "https://evil.example.com"
	clk := newClock()
	h := newRemote(t, p, "", clk, nil)
	res := do(h, "Bearer "+p.token(t, "k1", "JWT", clk, nil))
	if res.reached || !strings.Contains(res.www, accesstoken.ErrNoKeys.Error()) {
		t.Errorf("metadata of another issuer trusted: reached=%v www=%q", res.reached, res.www)
	}
	if p.jwksHits.Load() != 0 {
		t.Error("the jwks_uri of metadata naming another issuer was fetched")
	}
}

func TestRemoteIdPDownKeepsLastKeys(t *testing.T) {
	p := newIDP(t, "oauth")
	clk := newClock()
	h := newRemote(t, p, "", clk, nil)
	tok := p.token(t, "k1", "JWT", clk, nil)
	h.noCache = true // each request needs the keys
	p.down.Store(true)
	if err := h.remote.Fetch(t.Context()); err == nil {
		t.Fatal("fetch from a failing IdP reported no error")
	}
	if res := do(h, "Bearer "+tok); !res.reached {
		t.Fatalf("last good keys dropped when the IdP failed: %v", res.err)
	}
	// A bad answer (not JSON, or no usable key) keeps them too.
	p.down.Store(false)
	for _, body := range []string{"<html>", `{"keys":[{"kty":"oct","k":"c2VjcmV0","alg":"HS256","kid":"k1"}]}`} {
		p.mu.Lock()
		p.jwksBody = []byte(body)
		p.mu.Unlock()
		if err := h.remote.Fetch(t.Context()); err == nil {
			t.Errorf("JWKS %q accepted", body)
		}
		if res := do(h, "Bearer "+tok); !res.reached {
			t.Fatalf("last good keys dropped after JWKS %q: %v", body, res.err)
		}
	}
}

func TestRemoteWithdrawnKeyRefusedEvenIfCached(t *testing.T) {
	p := newIDP(t, "oauth")
	clk := newClock()
	h := newRemote(t, p, "", clk, nil)
	p.addKey(t, "k2")
	if err := h.remote.Fetch(t.Context()); err != nil {
		t.Fatal(err)
	}
	tok := p.token(t, "k1", "JWT", clk, nil)
	if res := do(h, "Bearer "+tok); !res.reached {
		t.Fatalf("refused: %v", res.err)
	}
	p.removeKey("k1")
	if err := h.remote.Fetch(t.Context()); err != nil {
		t.Fatal(err)
	}
	if res := do(h, "Bearer "+tok); res.reached {
		t.Fatal("cached token of a withdrawn key accepted")
	}
}

func TestRemoteNoKid(t *testing.T) {
	p := newIDP(t, "oauth")
	clk := newClock()
	h := newRemote(t, p, "", clk, nil)
	noKid := func() string {
		c := map[string]any{"iss": p.srv.URL, "aud": "api://reports", "exp": clk.Now().Unix() + 60}
		return signRaw(t, p.key("k1").priv, "ES256", `{"alg":"ES256"}`, mustJSON(t, c))
	}
	if res := do(h, "Bearer "+noKid()); !res.reached {
		t.Fatalf("token without kid refused with a one-key set: %v", res.err)
	}
	p.addKey(t, "k2")
	if err := h.remote.Fetch(t.Context()); err != nil {
		t.Fatal(err)
	}
	if res := do(h, "Bearer "+noKid()); res.reached {
		t.Fatal("token without kid accepted with a two-key set")
	}
}

func TestRemoteTypAndIssuer(t *testing.T) {
	p := newIDP(t, "oauth")
	clk := newClock()
	lax := newRemote(t, p, "", clk, nil)
	strict := newRemote(t, p, "", clk, func(h *Handler) { h.RequireTyp = true })
	tests := []struct {
		name     string
		typ      string
		mod      func(map[string]any)
		lax, str bool
	}{
		{"typ JWT", "JWT", nil, true, false},
		{"no typ", "", nil, true, false},
		{"typ at+jwt", "at+jwt", nil, true, true},
		{"wrong iss", "at+jwt", func(c map[string]any) { c["iss"] = "https://other" }, false, false},
		{"wrong aud", "at+jwt", func(c map[string]any) { c["aud"] = "api://other" }, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tok := p.token(t, "k1", tt.typ, clk, tt.mod)
			if res := do(lax, "Bearer "+tok); res.reached != tt.lax {
				t.Errorf("without require_typ: reached=%v, want %v (%v)", res.reached, tt.lax, res.err)
			}
			if res := do(strict, "Bearer "+tok); res.reached != tt.str {
				t.Errorf("with require_typ: reached=%v, want %v (%v)", res.reached, tt.str, res.err)
			}
		})
	}
}

// TestRemoteProvisionSharesFetcher goes through Provision: routes trusting
// the same remote issuer share one fetcher, released with the last one.
func TestRemoteProvisionSharesFetcher(t *testing.T) {
	p := newIDP(t, "oauth")
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	a := &Handler{Issuer: p.srv.URL, Audience: []string{"api://reports"}}
	b := &Handler{Issuer: p.srv.URL, Audience: []string{"api://reports"}, Scopes: []string{"reports.read"}}
	for _, h := range []*Handler{a, b} {
		if err := h.Provision(ctx); err != nil {
			t.Fatalf("Provision: %v", err)
		}
	}
	if a.remote != b.remote {
		t.Error("two routes trusting one issuer got two fetchers")
	}
	if p.jwksHits.Load() != 1 {
		t.Errorf("JWKS fetched %d times, want 1", p.jwksHits.Load())
	}
	if res := do(b, "Bearer "+p.token(t, "k1", "JWT", testclock.New(time.Now()), nil)); !res.reached {
		t.Errorf("refused: %v", res.err)
	}
	key := *a.poolKey
	if err := a.Cleanup(); err != nil {
		t.Fatal(err)
	}
	if n, ok := remotePool.References(key); !ok || n != 1 {
		t.Errorf("after one cleanup: %d references (%v)", n, ok)
	}
	if err := b.Cleanup(); err != nil {
		t.Fatal(err)
	}
	if _, ok := remotePool.References(key); ok {
		t.Error("fetcher still pooled after the last route was cleaned up")
	}
}

func TestProvisionErrors(t *testing.T) {
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	tests := []struct {
		name string
		h    Handler
		want string
	}{
		{"remote without audience", Handler{Issuer: "https://idp.example.com"}, "audience: required"},
		{"remote ftp", Handler{Issuer: "ftp://idp.example.com", Audience: []string{"a"}}, "not an absolute http(s) URL"},
		{"bad jwks_url", Handler{Issuer: "https://idp.example.com", JWKSURL: "keys.json", Audience: []string{"a"}}, "jwks_url"},
		{"unknown env in issuer", Handler{Issuer: "{env.TOKENGATE_TEST_UNSET_VAR}"}, "issuer"},
		{"bad realm", Handler{Issuer: "https://idp.example.com", Audience: []string{"a"}, Realm: `a"b`, JWKSURL: "http://127.0.0.1:1/keys"}, "realm"},
		{"bad scope", Handler{Issuer: "https://idp.example.com", Audience: []string{"a"}, Scopes: []string{`a"`}, JWKSURL: "http://127.0.0.1:1/keys"}, "scopes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := tt.h
			err := h.Provision(ctx)
			defer h.Cleanup()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Provision error %v, want one containing %q", err, tt.want)
			}
		})
	}
}

// TestRemoteJWKSRedirectToAnotherHostsKey: the review's issuer served its
// jwks_uri as a 302 to another host, and tokens signed by that host's key
// were accepted. Redirects are not followed.
func TestRemoteJWKSRedirectToAnotherHostsKey(t *testing.T) {
	evil := newIDP(t, "")
	evil.addKey(t, "evil")
	p := newIDP(t, "oauth")
	p.redirects = map[string]string{"/keys": evil.srv.URL + "/keys"}
	clk := newClock()
	h := newRemote(t, p, "", clk, nil)
	forged := evil.token(t, "evil", "JWT", clk, func(c map[string]any) { c["iss"] = p.srv.URL })
	if res := do(h, "Bearer "+forged); res.reached {
		t.Fatal("a token signed by the key of the host the JWKS redirected to was accepted")
	}
	if evil.jwksHits.Load() != 0 {
		t.Error("the redirect was followed")
	}
}

// TestRemoteMetadataRedirectToAnotherHost: metadata redirected to another
// host, which names the right issuer and its own keys, is not trusted.
func TestRemoteMetadataRedirectToAnotherHost(t *testing.T) {
	p := newIDP(t, "oauth")
	evil := newIDP(t, "oauth")
	evil.addKey(t, "evil")
	evil.mdIssuer = p.srv.URL
	p.redirects = map[string]string{"/.well-known/oauth-authorization-server": evil.srv.URL + "/.well-known/oauth-authorization-server"}
	clk := newClock()
	h := newRemote(t, p, "", clk, nil)
	forged := evil.token(t, "evil", "JWT", clk, func(c map[string]any) { c["iss"] = p.srv.URL })
	if res := do(h, "Bearer "+forged); res.reached {
		t.Fatal("a token signed by the key named in redirected metadata was accepted")
	}
	if evil.mdHits.Load() != 0 || evil.jwksHits.Load() != 0 {
		t.Error("the redirect was followed")
	}
}

// TestRemoteHTTPSIssuerWithPlainHTTPKeys: a configured jwks_url in the
// clear for an https issuer is refused (anyone on the path could swap the
// keys); discovered ones are refused by internal/remotekeys.
func TestRemoteHTTPSIssuerWithPlainHTTPKeys(t *testing.T) {
	plain := newIDP(t, "")
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	h := &Handler{Issuer: "https://idp.example.com", JWKSURL: plain.srv.URL + "/keys", Audience: []string{"a"}}
	err := h.Provision(ctx)
	defer h.Cleanup()
	if err == nil || !strings.Contains(err.Error(), "jwks_url") || !strings.Contains(err.Error(), "not https") {
		t.Errorf("an https issuer with an http jwks_url: %v, want a jwks_url error", err)
	}
	if plain.jwksHits.Load() != 0 {
		t.Error("the plain http key set was fetched")
	}
}

// TestRemotePlainHTTPIssuerWarns: a remote issuer reached over plain http
// on another host is logged at load as a warning; one on loopback is not.
func TestRemotePlainHTTPIssuerWarns(t *testing.T) {
	for iss, warns := range map[string]bool{"http://idp.invalid": true, "http://127.0.0.1:1": false} {
		core, logs := observer.New(zap.WarnLevel)
		h := &Handler{logger: zap.New(core), audience: []string{"a"}}
		if err := h.provisionRemote(iss, iss+"/keys"); err != nil {
			t.Fatal(err)
		}
		_ = h.Cleanup()
		got := logs.FilterMessageSnippet("plain http").Len() > 0
		if got != warns {
			t.Errorf("%s: warned %v, want %v", iss, got, warns)
		}
	}
}

package validator

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/tokengate/tokengate/internal/testidp"
)

// TestZitadelProvider runs bearer_auth against a real OpenID provider
// nobody here wrote (zitadel/oidc's op, internal/testidp): its discovery
// document, its JWT access tokens with nested roles, a key rotation at the
// provider (picked up in under 2s, printed), and a storm of 1,000 random
// kids (a handful of JWKS fetches, printed).
func TestZitadelProvider(t *testing.T) {
	p := testidp.Start(t)
	var md struct {
		Issuer        string `json:"issuer"`
		TokenEndpoint string `json:"token_endpoint"`
		JWKSURI       string `json:"jwks_uri"`
	}
	resp, err := http.Get(p.URL + "/.well-known/openid-configuration")
	if err != nil {
		t.Fatal(err)
	}
	err = json.NewDecoder(resp.Body).Decode(&md)
	resp.Body.Close()
	if err != nil || md.Issuer != p.URL || md.TokenEndpoint == "" {
		t.Fatalf("discovery: %+v, %v", md, err)
	}
	token := func() string {
		t.Helper()
		cfg := clientcredentials.Config{ClientID: testidp.ClientID, ClientSecret: testidp.ClientSecret, TokenURL: md.TokenEndpoint, Scopes: []string{"openid"}}
		tok, err := cfg.Token(context.Background())
		if err != nil {
			t.Fatalf("client_credentials at the provider: %v", err)
		}
		return tok.AccessToken
	}

	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	provision := func(h *Handler) *Handler {
		if err := h.Provision(ctx); err != nil {
			t.Fatalf("Provision: %v", err)
		}
		t.Cleanup(func() { _ = h.Cleanup() })
		return h
	}
	// The keys are found by discovery (no jwks_url).
	h := provision(&Handler{Issuer: p.URL, Audience: []string{testidp.Audience}, Claims: map[string][]string{"realm_access.roles": {testidp.Role}}})
	wrongRole := provision(&Handler{Issuer: p.URL, Audience: []string{testidp.Audience}, Claims: map[string][]string{"realm_access.roles": {"root"}}})
	wrongAud := provision(&Handler{Issuer: p.URL, Audience: []string{"another-api"}})

	tok := token()
	res := do(h, "Bearer "+tok)
	if !res.reached {
		t.Fatalf("the provider's JWT access token refused: %v", res.err)
	}
	if v, _ := res.repl.GetString("http.auth.user.claims.realm_access.roles"); !strings.Contains(v, testidp.Role) {
		t.Errorf("{http.auth.user.claims.realm_access.roles} = %q", v)
	}
	if v, _ := res.repl.GetString("http.auth.user.client_id"); v != testidp.ClientID {
		t.Errorf("{http.auth.user.client_id} = %q", v)
	}
	if res := do(wrongRole, "Bearer "+tok); res.reached || res.status != 403 {
		t.Errorf("a nested role the token lacks: reached=%v status=%d", res.reached, res.status)
	}
	if res := do(wrongAud, "Bearer "+tok); res.reached || res.status != 401 {
		t.Errorf("another audience: reached=%v status=%d", res.reached, res.status)
	}

	// The provider rotates its key: its next token is accepted within 2s.
	// The second rotation comes right after the first was picked up, so its
	// refetch waits for the 1s minimum: the worst case without a storm.
	for _, which := range []string{"first", "second (just after the first)"} {
		p.Rotate()
		rotated := time.Now()
		waitRotation(t, h, token(), rotated, "zitadel, "+which+" rotation")
	}

	// A storm of 1,000 tokens with random kids.
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	claims := fmt.Sprintf(`{"iss":%q,"aud":%q,"exp":%d}`, p.URL, testidp.Audience, time.Now().Unix()+300)
	storm := make([]string, 1000)
	for i := range storm {
		storm[i] = signRaw(t, priv, "ES256", fmt.Sprintf(`{"alg":"ES256","kid":"storm-%d"}`, i), claims)
	}
	time.Sleep(1100 * time.Millisecond) // past the 1s minimum: the storm may refetch
	before := p.JWKSHits.Load()
	var wg sync.WaitGroup
	for _, s := range storm {
		wg.Go(func() {
			if res := do(h, "Bearer "+s); res.reached {
				t.Error("a token with a random kid accepted")
			}
		})
	}
	wg.Wait()
	n := p.JWKSHits.Load() - before
	fmt.Printf("zitadel: storm of 1000 random kids: %d JWKS fetches\n", n)
	if n > 3 {
		t.Errorf("%d JWKS fetches for the storm, want at most 3", n)
	}
	// The provider's tokens still pass after the storm.
	if res := do(h, "Bearer "+token()); !res.reached {
		t.Errorf("refused after the storm: %v", res.err)
	}
}

// TestZitadelOpaqueTokens: the provider's opaque client_credentials tokens
// (its example service user sid1) are accepted through its introspection
// endpoint, with the gate's secret read from {env.*}; answers are cached,
// an unknown token is refused and its inactive answer cached briefly.
func TestZitadelOpaqueTokens(t *testing.T) {
	p := testidp.Start(t)
	var introspections atomic.Int64
	p.OnIntrospect = func() { introspections.Add(1) }
	t.Setenv("TOKENGATE_TEST_INTROSPECTION_SECRET", testidp.GateSecret)
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	h := &Handler{Issuer: p.URL, Audience: []string{testidp.Audience}, Scopes: []string{"openid"},
		Introspection: &Introspection{Endpoint: p.URL + "/oauth/introspect", ClientID: testidp.Audience, ClientSecret: "{env.TOKENGATE_TEST_INTROSPECTION_SECRET}"}}
	if err := h.Provision(ctx); err != nil {
		t.Fatalf("Provision: %v", err)
	}
	t.Cleanup(func() { _ = h.Cleanup() })
	cfg := clientcredentials.Config{ClientID: testidp.OpaqueClientID, ClientSecret: testidp.OpaqueSecret, TokenURL: p.URL + "/oauth/token", Scopes: []string{"openid"}}
	tok, err := cfg.Token(context.Background())
	if err != nil {
		t.Fatalf("client_credentials for the opaque client: %v", err)
	}
	if strings.Count(tok.AccessToken, ".") == 2 {
		t.Fatal("the example's service user got a JWT, not an opaque token")
	}
	for range 3 {
		res := do(h, "Bearer "+tok.AccessToken)
		if !res.reached {
			t.Fatalf("opaque token refused: %v", res.err)
		}
		if v, _ := res.repl.GetString("http.auth.user.scope"); v != "openid" {
			t.Errorf("{http.auth.user.scope} = %q", v)
		}
		if v, _ := res.repl.GetString("http.auth.user.id"); v != testidp.OpaqueSubject {
			t.Errorf("{http.auth.user.id} = %q", v)
		}
	}
	if n := introspections.Load(); n != 1 {
		t.Errorf("%d introspections for 3 requests with one token, want 1 (cached)", n)
	}
	for range 3 {
		if res := do(h, "Bearer not-a-token-of-the-provider"); res.reached || res.status != 401 {
			t.Errorf("unknown opaque token: reached=%v status=%d", res.reached, res.status)
		}
	}
	if n := introspections.Load(); n != 2 {
		t.Errorf("%d introspections after 3 requests with an unknown token, want 2 (negative answer cached)", n)
	}
	// A wrong gate secret: the provider refuses to answer, the token is
	// refused, and nothing is cached.
	bad := &Handler{Issuer: p.URL, Audience: []string{testidp.Audience},
		Introspection: &Introspection{Endpoint: p.URL + "/oauth/introspect", ClientID: testidp.Audience, ClientSecret: "wrong"}}
	if err := bad.Provision(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = bad.Cleanup() })
	if res := do(bad, "Bearer "+tok.AccessToken); res.reached {
		t.Error("opaque token accepted although the provider refused the gate")
	}
}

package remotekeys

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwk"

	"github.com/tokengate/tokengate/internal/accesstoken"
)

// server serves a JWK set at /keys (and anything at other paths through
// routes); validator's tests drive the Fetcher through bearer_auth with a
// fuller identity provider.
type server struct {
	srv *httptest.Server

	mu     sync.Mutex
	body   []byte            // the JWK set served at /keys
	routes map[string]string // other paths: a 302 to the URL given
	hits   atomic.Int64      // requests for /keys
}

func newServer(t *testing.T) *server {
	t.Helper()
	s := &server{routes: map[string]string{}}
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		defer s.mu.Unlock()
		if to, ok := s.routes[r.URL.Path]; ok {
			http.Redirect(w, r, to, http.StatusFound)
			return
		}
		if r.URL.Path != "/keys" {
			http.NotFound(w, r)
			return
		}
		s.hits.Add(1)
		_, _ = w.Write(s.body)
	}))
	t.Cleanup(s.srv.Close)
	s.body = []byte(mustJSON(t, map[string]any{"keys": []any{ecJWK(t, "k1")}}))
	return s
}

func (s *server) serve(body []byte) {
	s.mu.Lock()
	s.body = body
	s.mu.Unlock()
}

// ecJWK is the public JWK of a new P-256 key named kid.
func ecJWK(t *testing.T, kid string) map[string]any {
	t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	m := jwkMap(t, priv.Public())
	m["kid"] = kid
	return m
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestFetchAndKey(t *testing.T) {
	s := newServer(t)
	f := New(Config{JWKSURL: s.srv.URL + "/keys"})
	if f.Published("k1") {
		t.Fatal("a key published before any fetch")
	}
	k, err := f.Key(t.Context(), "k1")
	if err != nil || k.Alg.String() != "ES256" {
		t.Fatalf("first Key: %v %v", k, err)
	}
	if n := s.hits.Load(); n != 1 {
		t.Errorf("%d fetches, want 1", n)
	}
	if k, err := f.Key(t.Context(), ""); err != nil || k.KID != "k1" {
		t.Errorf("no kid with a one-key set: %v %v", k, err)
	}
}

// TestStartInBackground: Start(0) does not wait for the first fetch, and
// makes it at once.
func TestStartInBackground(t *testing.T) {
	release := make(chan struct{})
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		<-release
		_, _ = w.Write([]byte(mustJSON(t, map[string]any{"keys": []any{ecJWK(t, "k1")}})))
	}))
	defer srv.Close()
	f := New(Config{JWKSURL: srv.URL})
	start := time.Now()
	f.Start(0)
	defer f.Destruct()
	if d := time.Since(start); d > time.Second {
		t.Errorf("Start(0) took %v", d)
	}
	close(release)
	for deadline := time.Now().Add(5 * time.Second); !f.Published("k1"); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the background first fetch never brought the key")
		}
	}
	if n := hits.Load(); n != 1 {
		t.Errorf("%d fetches, want 1", n)
	}
}

// TestRedirectRefused: a JWK set answered by a redirect to another host is
// not followed, and its keys are never used.
func TestRedirectRefused(t *testing.T) {
	evil := newServer(t)
	s := newServer(t)
	s.routes["/moved"] = evil.srv.URL + "/keys"
	f := New(Config{JWKSURL: s.srv.URL + "/moved"})
	err := f.Fetch(t.Context())
	if err == nil || !strings.Contains(err.Error(), "redirects are not followed") {
		t.Errorf("redirected JWKS: %v", err)
	}
	if evil.hits.Load() != 0 {
		t.Error("the redirect was followed")
	}
	if _, err := f.Key(t.Context(), "k1"); err != accesstoken.ErrNoKeys {
		t.Errorf("key after a redirect: %v, want %v", err, accesstoken.ErrNoKeys)
	}
}

// TestHTTPSIssuerWithPlainHTTPKeys: metadata of an https issuer naming an
// http jwks_uri is refused: anyone on the path could swap the keys.
func TestHTTPSIssuerWithPlainHTTPKeys(t *testing.T) {
	plain := newServer(t)
	var tlsURL string
	tlsSrv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode(map[string]string{"issuer": tlsURL, "jwks_uri": plain.srv.URL + "/keys"})
	}))
	t.Cleanup(tlsSrv.Close)
	tlsURL = tlsSrv.URL
	f := New(Config{Issuer: tlsURL})
	f.client.Transport = tlsSrv.Client().Transport
	err := f.Fetch(context.Background())
	if err == nil || !strings.Contains(err.Error(), "not https") {
		t.Errorf("an https issuer's http jwks_uri: %v, want refused as not https", err)
	}
	if plain.hits.Load() != 0 {
		t.Error("the plain http key set was fetched")
	}
}

func TestCheckClientJWKSURL(t *testing.T) {
	for u, ok := range map[string]bool{
		"https://client.example.com/jwks.json": true,
		"http://127.0.0.1:8080/jwks":           true,
		"http://localhost/jwks":                true,
		"http://[::1]:9/jwks":                  true,
		"http://example.com/jwks":              false,
		"http://10.0.0.1/jwks":                 false,
		"ftp://example.com/jwks":               false,
		"/jwks.json":                           false,
		"https://user:pw@example.com/jwks":     false,
		"https://example.com/jwks#frag":        false,
	} {
		if err := CheckClientJWKSURL(u); (err == nil) != ok {
			t.Errorf("%s: %v, want ok=%v", u, err, ok)
		}
	}
}

// TestRemoteStartsWhenIdPHangs: Caddy's start is not held up longer than
// the provision timeout, and tokens are refused until keys arrive.
func TestRemoteStartsWhenIdPHangs(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(release)
	f := New(Config{Issuer: srv.URL, Refresh: time.Hour})
	// The unknown-kid refetch below also hangs: bound it.
	f.client.Timeout = 300 * time.Millisecond
	start := time.Now()
	f.Start(300 * time.Millisecond)
	defer f.Destruct()
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("start took %v", d)
	}
	if _, err := f.Key(t.Context(), "k1"); err != accesstoken.ErrNoKeys {
		t.Errorf("key before any fetch: %v, want %v", err, accesstoken.ErrNoKeys)
	}
}

func TestRemoteOversizedJWKS(t *testing.T) {
	p := newServer(t)
	p.body = []byte(`{"keys":[],"pad":"` + strings.Repeat("x", MaxFetchSize) + `"}`)
	f := New(Config{JWKSURL: p.srv.URL + "/keys"})
	err := f.Fetch(t.Context())
	if err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("fetch of an oversized JWKS: %v", err)
	}
}

func TestParseJWKS(t *testing.T) {
	ecKey := func(curve elliptic.Curve) map[string]any {
		priv, err := ecdsa.GenerateKey(curve, rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return jwkMap(t, priv.Public())
	}
	rsaKey := func(bits int) map[string]any {
		priv, err := rsa.GenerateKey(rand.Reader, bits)
		if err != nil {
			t.Fatal(err)
		}
		// Built by hand: jwk.Import itself refuses small moduli.
		return map[string]any{
			"kty": "RSA",
			"n":   base64.RawURLEncoding.EncodeToString(priv.N.Bytes()),
			"e":   base64.RawURLEncoding.EncodeToString(big.NewInt(int64(priv.E)).Bytes()),
		}
	}
	edPub, edPriv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	rsa2048 := rsaKey(2048)
	with := func(m map[string]any, kv ...any) map[string]any {
		out := map[string]any{}
		for k, v := range m {
			out[k] = v
		}
		for i := 0; i < len(kv); i += 2 {
			out[kv[i].(string)] = kv[i+1]
		}
		return out
	}
	tests := []struct {
		name    string
		key     map[string]any
		wantAlg string // "" when the key must be skipped
	}{
		{"EC P-256 without alg", ecKey(elliptic.P256()), "ES256"},
		{"EC P-384 without alg", ecKey(elliptic.P384()), "ES384"},
		{"EC P-521 without alg", ecKey(elliptic.P521()), "ES512"},
		{"Ed25519 without alg", jwkMap(t, edPub), "EdDSA"},
		{"Ed25519 private key: public half used", jwkMap(t, edPriv), "EdDSA"},
		{"RSA without alg", rsa2048, "RS256"},
		{"RSA PS256", with(rsa2048, "alg", "PS256"), "PS256"},
		{"RSA 1024 bits", rsaKey(1024), ""},
		{"oct key", map[string]any{"kty": "oct", "k": "c2VjcmV0", "alg": "HS256"}, ""},
		{"oct key without alg", map[string]any{"kty": "oct", "k": "c2VjcmV0"}, ""},
		{"HS256 on an RSA key", with(rsa2048, "alg", "HS256"), ""},
		{"alg none", with(ecKey(elliptic.P256()), "alg", "none"), ""},
		{"ES256 on P-384", with(ecKey(elliptic.P384()), "alg", "ES256"), ""},
		{"RS256 on an EC key", with(ecKey(elliptic.P256()), "alg", "RS256"), ""},
		{"encryption key", with(ecKey(elliptic.P256()), "use", "enc"), ""},
		{"encryption alg", with(rsa2048, "alg", "RSA-OAEP"), ""},
		{"garbage", map[string]any{"kty": "EC", "crv": "P-256", "x": "AA", "y": "AA"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k := with(tt.key, "kid", "k")
			set, skipped, err := parseJWKS([]byte(mustJSON(t, map[string]any{"keys": []any{k}})))
			if tt.wantAlg == "" {
				if err == nil {
					t.Fatalf("key kept with alg %s", set.byKID["k"].Alg.String())
				}
				if len(skipped) != 1 {
					t.Errorf("skipped reasons %v", skipped)
				}
				return
			}
			if err != nil {
				t.Fatalf("refused: %v (%v)", err, skipped)
			}
			if got := set.byKID["k"].Alg.String(); got != tt.wantAlg {
				t.Errorf("alg %s, want %s", got, tt.wantAlg)
			}
		})
	}
	t.Run("too many keys", func(t *testing.T) {
		one := with(ecKey(elliptic.P256()), "kid", "k")
		keys := make([]any, MaxKeys+1)
		for i := range keys {
			keys[i] = with(one, "kid", fmt.Sprint(i))
		}
		if _, _, err := parseJWKS([]byte(mustJSON(t, map[string]any{"keys": keys}))); err == nil {
			t.Error("JWKS with too many keys accepted")
		}
	})
	t.Run("duplicate kid keeps the first", func(t *testing.T) {
		a, b := with(ecKey(elliptic.P256()), "kid", "k"), with(ecKey(elliptic.P384()), "kid", "k")
		set, skipped, err := parseJWKS([]byte(mustJSON(t, map[string]any{"keys": []any{a, b}})))
		if err != nil || len(skipped) != 1 || set.byKID["k"].Alg.String() != "ES256" {
			t.Errorf("err=%v skipped=%v", err, skipped)
		}
	})
}

func jwkMap(t *testing.T, raw any) map[string]any {
	t.Helper()
	k, err := jwk.Import(raw)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(mustJSON(t, k)), &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestDiscoveryURLs(t *testing.T) {
	tests := []struct{ issuer, oauth, oidc string }{
		{"https://idp.example.com", "https://idp.example.com/.well-known/oauth-authorization-server", "https://idp.example.com/.well-known/openid-configuration"},
		{"https://idp.example.com/", "https://idp.example.com/.well-known/oauth-authorization-server", "https://idp.example.com/.well-known/openid-configuration"},
		{"https://idp.example.com/tenant/v2", "https://idp.example.com/.well-known/oauth-authorization-server/tenant/v2", "https://idp.example.com/tenant/v2/.well-known/openid-configuration"},
	}
	for _, tt := range tests {
		got := discoveryURLs(tt.issuer)
		if len(got) != 2 || got[0] != tt.oauth || got[1] != tt.oidc {
			t.Errorf("discoveryURLs(%q) = %q", tt.issuer, got)
		}
	}
}

// TestUnknownKidRefetch: a kid rotated in is fetched at once; unknown kids
// after it cost no fetch until the rate limit's wait has passed.
func TestUnknownKidRefetch(t *testing.T) {
	s := newServer(t)
	clk := time.Unix(1_800_000_000, 0)
	f := New(Config{JWKSURL: s.srv.URL + "/keys", Now: func() time.Time { return clk }})
	if err := f.Fetch(t.Context()); err != nil {
		t.Fatal(err)
	}
	s.serve([]byte(mustJSON(t, map[string]any{"keys": []any{ecJWK(t, "k1"), ecJWK(t, "k2")}})))
	if _, err := f.Key(t.Context(), "k2"); err != nil {
		t.Fatalf("rotated-in key: %v", err)
	}
	for i := range 10 {
		if _, err := f.Key(t.Context(), fmt.Sprint("random-", i)); err != accesstoken.ErrUnknownKey {
			t.Fatalf("random kid: %v", err)
		}
	}
	if n := s.hits.Load(); n != 2 {
		t.Errorf("%d fetches after a rotation and 10 random kids within a second, want 2", n)
	}
	clk = clk.Add(RefetchMinInterval)
	if _, err := f.Key(t.Context(), "random-x"); err != accesstoken.ErrUnknownKey {
		t.Fatalf("random kid: %v", err)
	}
	if n := s.hits.Load(); n != 3 {
		t.Errorf("%d fetches once the wait passed, want 3", n)
	}
}

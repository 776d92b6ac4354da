package issuer

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/certmagic"

	"github.com/go-jose/go-jose/v4"
	"github.com/tokengate/tokengate/internal/testclock"
	"go.uber.org/zap"

	"github.com/tokengate/tokengate/internal/clients"
	"github.com/tokengate/tokengate/internal/keys"
	"github.com/tokengate/tokengate/internal/refresh"
)

// fakeClock is the injectable clock of these tests; it moves only when told.
type fakeClock = testclock.Clock

// newClock starts after the real time at which New made the first key, so
// that key is active on the fake clock.
func newClock() *fakeClock {
	return testclock.New(time.Now().Add(time.Minute).Truncate(time.Second))
}

const testIssuer = "https://auth.example.com"

func baseConfig() *Config {
	return &Config{
		Issuer: testIssuer,
		Clients: []*clients.Config{
			{ClientID: "reports", Secret: "s3cret", Scopes: []string{"read", "write"}},
		},
	}
}

func newIssuer(t *testing.T, cfg *Config, st certmagic.Storage) (*Issuer, *fakeClock) {
	t.Helper()
	iss, err := New(context.Background(), DefaultName, cfg, st, zap.NewNop())
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	clock := newClock()
	iss.Now = clock.Now
	return iss, clock
}

func client(t *testing.T, iss *Issuer, id string) *clients.Config {
	t.Helper()
	i := slices.IndexFunc(iss.Config.Clients, func(c *clients.Config) bool { return c.ClientID == id })
	if i < 0 {
		t.Fatalf("no client %q", id)
	}
	return iss.Config.Clients[i]
}

var allAlgs = []jose.SignatureAlgorithm{jose.ES256, jose.EdDSA, jose.RS256, jose.PS256}

// verify checks a token with go-jose, independently of the JOSE library
// that signed it, against a JWKS document, and returns its protected header
// and claims.
func verify(t *testing.T, token string, jwks []byte) (jose.Header, map[string]any) {
	t.Helper()
	h, claims, err := verifyErr(token, jwks)
	if err != nil {
		t.Fatal(err)
	}
	return h, claims
}

func verifyErr(token string, jwks []byte) (jose.Header, map[string]any, error) {
	sig, err := jose.ParseSignedCompact(token, allAlgs)
	if err != nil {
		return jose.Header{}, nil, err
	}
	if len(sig.Signatures) != 1 {
		return jose.Header{}, nil, fmt.Errorf("%d signatures", len(sig.Signatures))
	}
	h := sig.Signatures[0].Protected
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(jwks, &set); err != nil {
		return h, nil, err
	}
	found := set.Key(h.KeyID)
	if len(found) != 1 {
		return h, nil, fmt.Errorf("JWKS has %d keys with kid %q", len(found), h.KeyID)
	}
	if found[0].Algorithm != h.Algorithm {
		return h, nil, fmt.Errorf("token alg %s, key alg %s", h.Algorithm, found[0].Algorithm)
	}
	payload, err := sig.Verify(found[0])
	if err != nil {
		return h, nil, err
	}
	var claims map[string]any
	if err := json.Unmarshal(payload, &claims); err != nil {
		return h, nil, err
	}
	return h, claims, nil
}

func TestIssueVerifiesWithGoJose(t *testing.T) {
	for _, alg := range []string{keys.ES256, keys.EdDSA, keys.RS256, keys.PS256} {
		t.Run(alg, func(t *testing.T) {
			cfg := baseConfig()
			cfg.SigningAlg = alg
			iss, clock := newIssuer(t, cfg, &certmagic.FileStorage{Path: t.TempDir()})
			c := client(t, iss, "reports")
			at, err := iss.Issue(c, []string{"read", "write"}, []string{"https://api.example.com"})
			if err != nil {
				t.Fatalf("Issue: %v", err)
			}
			cur, err := iss.Keys.Current()
			if err != nil {
				t.Fatal(err)
			}

			h, claims := verify(t, at.Token, iss.Keys.JWKS())
			if h.Algorithm != alg {
				t.Errorf("header alg %q, want %q", h.Algorithm, alg)
			}
			if h.KeyID != cur.KID {
				t.Errorf("header kid %q, want the current key %q", h.KeyID, cur.KID)
			}
			if typ := h.ExtraHeaders[jose.HeaderType]; typ != "at+jwt" {
				t.Errorf("header typ %v, want at+jwt", typ)
			}

			now := clock.Now().Unix()
			want := map[string]any{
				"iss":       testIssuer,
				"sub":       "reports",
				"aud":       "https://api.example.com",
				"exp":       float64(now + 3600),
				"nbf":       float64(now),
				"iat":       float64(now),
				"client_id": "reports",
				"scope":     "read write",
			}
			jti, _ := claims["jti"].(string)
			if len(jti) < 16 {
				t.Errorf("jti %q is too short to be unique", jti)
			}
			delete(claims, "jti")
			if !reflect.DeepEqual(claims, want) {
				t.Errorf("claims\n got %v\nwant %v", claims, want)
			}
			if at.TTL != time.Hour || at.Claims.JTI != jti || at.Claims.Expiry != now+3600 {
				t.Errorf("AccessToken TTL %v, claims %+v disagree with the token", at.TTL, &at.Claims)
			}

			// The same check fails on a tampered token: verify asserts something.
			parts := strings.Split(at.Token, ".")
			forged := parts[0] + "." + flipChar(parts[1]) + "." + parts[2]
			if _, _, err := verifyErr(forged, iss.Keys.JWKS()); err == nil {
				t.Fatal("a tampered token verified")
			}
		})
	}
}

func flipChar(s string) string {
	b := []byte(s)
	if b[len(b)/2] == 'A' {
		b[len(b)/2] = 'B'
	} else {
		b[len(b)/2] = 'A'
	}
	return string(b)
}

func TestTokenOfAnotherIssuerFails(t *testing.T) {
	a, _ := newIssuer(t, baseConfig(), &certmagic.FileStorage{Path: t.TempDir()})
	b, _ := newIssuer(t, baseConfig(), &certmagic.FileStorage{Path: t.TempDir()})
	at, err := a.Issue(client(t, a, "reports"), nil, a.DefaultAudience())
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := verifyErr(at.Token, b.Keys.JWKS()); err == nil {
		t.Fatal("a token verified against another issuer's keys")
	}
}

func TestClaimForms(t *testing.T) {
	cfg := baseConfig()
	cfg.Clients = append(cfg.Clients, &clients.Config{ClientID: "short", Secret: "x", TokenTTL: caddy.Duration(5 * time.Minute)})
	iss, clock := newIssuer(t, cfg, &certmagic.FileStorage{Path: t.TempDir()})
	now := clock.Now().Unix()
	tests := []struct {
		name      string
		client    string
		scopes    []string
		aud       []string
		wantAud   any
		wantScope any // nil: no scope claim
		wantTTL   time.Duration
	}{
		{"one audience is a string", "reports", []string{"read"}, []string{"https://a"}, "https://a", "read", time.Hour},
		{"two audiences are an array", "reports", []string{"read"}, []string{"https://a", "https://b"}, []any{"https://a", "https://b"}, "read", time.Hour},
		{"default audience", "reports", nil, iss.Audience(client(t, iss, "reports")), testIssuer, nil, time.Hour},
		{"no scope, no claim", "reports", []string{}, []string{"https://a"}, "https://a", nil, time.Hour},
		{"client token_ttl", "short", nil, []string{"https://a"}, "https://a", nil, 5 * time.Minute},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			at, err := iss.Issue(client(t, iss, tt.client), tt.scopes, tt.aud)
			if err != nil {
				t.Fatal(err)
			}
			_, claims := verify(t, at.Token, iss.Keys.JWKS())
			if !reflect.DeepEqual(claims["aud"], tt.wantAud) {
				t.Errorf("aud = %#v, want %#v", claims["aud"], tt.wantAud)
			}
			scope, has := claims["scope"]
			if (tt.wantScope == nil) == has || (has && scope != tt.wantScope) {
				t.Errorf("scope = %#v (present %v), want %#v", scope, has, tt.wantScope)
			}
			if exp := claims["exp"].(float64); int64(exp) != now+int64(tt.wantTTL/time.Second) || at.TTL != tt.wantTTL {
				t.Errorf("exp %v (TTL %v), want iat+%v", exp, at.TTL, tt.wantTTL)
			}
			if claims["sub"] != tt.client || claims["client_id"] != tt.client {
				t.Errorf("sub %v client_id %v, want %s", claims["sub"], claims["client_id"], tt.client)
			}
		})
	}
}

func TestJTIUnique(t *testing.T) {
	iss, _ := newIssuer(t, baseConfig(), &certmagic.FileStorage{Path: t.TempDir()})
	c := client(t, iss, "reports")
	seen := make(map[string]bool, 1000)
	for i := range 1000 {
		at, err := iss.Issue(c, nil, iss.DefaultAudience())
		if err != nil {
			t.Fatal(err)
		}
		if at.Claims.JTI == "" || seen[at.Claims.JTI] {
			t.Fatalf("token %d repeats jti %q", i, at.Claims.JTI)
		}
		seen[at.Claims.JTI] = true
	}
}

func TestIssueWithoutActiveKey(t *testing.T) {
	iss, _ := newIssuer(t, baseConfig(), &certmagic.FileStorage{Path: t.TempDir()})
	iss.Now = func() time.Time { return time.Now().Add(-time.Hour) } // before the first key activates
	if _, err := iss.Issue(client(t, iss, "reports"), nil, iss.DefaultAudience()); err == nil {
		t.Fatal("Issue signed a token with no active key")
	}
}

func TestConfigValidation(t *testing.T) {
	t.Setenv("TOKENGATE_TEST_SET", "from-env")
	keyFile := writeECKey(t)
	withClients := func(cs ...*clients.Config) []*clients.Config { return cs }
	ok := &clients.Config{ClientID: "a", Secret: "x"}
	tests := []struct {
		name   string
		mutate func(c *Config)
		want   string // "" means valid
	}{
		{"valid", func(c *Config) {}, ""},
		{"issuer with path and trailing slash", func(c *Config) { c.Issuer = "https://auth.example.com/tenant/" }, ""},
		{"http issuer", func(c *Config) { c.Issuer = "http://localhost:9080" }, ""},
		{"issuer from env", func(c *Config) { c.Issuer = "https://{env.TOKENGATE_TEST_SET}.example.com" }, ""},
		{"secret from env", func(c *Config) { c.Clients[0].Secret = "{env.TOKENGATE_TEST_SET}" }, ""},
		{"signing_key", func(c *Config) { c.SigningKey = keyFile }, ""},
		{"missing issuer", func(c *Config) { c.Issuer = "" }, "issuer URL is required"},
		{"issuer not a URL", func(c *Config) { c.Issuer = "auth.example.com" }, "absolute http(s) URL"},
		{"issuer relative", func(c *Config) { c.Issuer = "/auth" }, "absolute http(s) URL"},
		{"issuer ftp", func(c *Config) { c.Issuer = "ftp://auth.example.com" }, "absolute http(s) URL"},
		{"issuer no host", func(c *Config) { c.Issuer = "https://" }, "absolute http(s) URL"},
		{"issuer with query", func(c *Config) { c.Issuer = "https://auth.example.com?tenant=1" }, "without query"},
		{"issuer with fragment", func(c *Config) { c.Issuer = "https://auth.example.com#x" }, "without query"},
		{"issuer with user info", func(c *Config) { c.Issuer = "https://u:p@auth.example.com" }, "without query"},
		{"issuer bad escape", func(c *Config) { c.Issuer = "https://auth.example.com/%zz" }, "absolute http(s) URL"},
		{"issuer from unset env", func(c *Config) { c.Issuer = "{env.TOKENGATE_TEST_UNSET}" }, "issuer:"},
		{"unknown alg", func(c *Config) { c.SigningAlg = "HS256" }, "signing_alg"},
		{"alg none", func(c *Config) { c.SigningAlg = "none" }, "signing_alg"},
		{"key_rotation under 1m", func(c *Config) { c.KeyRotation = caddy.Duration(59 * time.Second) }, "key_rotation"},
		{"negative token_ttl", func(c *Config) { c.TokenTTL = -1 }, "token_ttl"},
		{"negative refresh_ttl", func(c *Config) { c.RefreshTTL = -1 }, "refresh_ttl"},
		{"no clients", func(c *Config) { c.Clients = nil }, "at least one client"},
		{"duplicate client ids", func(c *Config) { c.Clients = withClients(ok, &clients.Config{ClientID: "a", Secret: "y"}) }, `"a": defined more than once`},
		{"null client", func(c *Config) { c.Clients = withClients(ok, nil) }, "clients[1]: empty client"},
		{"invalid client", func(c *Config) { c.Clients = withClients(&clients.Config{ClientID: "a:b", Secret: "y"}) }, "client_id: must not contain"},
		{"secret from unset env", func(c *Config) { c.Clients[0].Secret = "{env.TOKENGATE_TEST_UNSET}" }, `client "reports": secret`},
		{"secret from empty env", func(c *Config) {
			c.Clients[0].Secret = "{env.TOKENGATE_TEST_EMPTY}"
		}, `client "reports": secret`},
		{"secret_hash from unset env", func(c *Config) {
			c.Clients[0].Secret = ""
			c.Clients[0].SecretHash = "{env.TOKENGATE_TEST_UNSET}"
		}, `client "reports": secret_hash`},
		{"unknown placeholder in secret", func(c *Config) { c.Clients[0].Secret = "{nope.x}" }, `client "reports": secret`},
		{"signing_key missing file", func(c *Config) { c.SigningKey = filepath.Join(t.TempDir(), "missing.pem") }, "signing_key"},
		{"signing_key of the wrong alg", func(c *Config) { c.SigningKey, c.SigningAlg = keyFile, keys.RS256 }, "signing_key"},
		{"signing_key from unset env", func(c *Config) { c.SigningKey = "{env.TOKENGATE_TEST_UNSET}" }, "signing_key"},
	}
	t.Setenv("TOKENGATE_TEST_EMPTY", "")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := baseConfig()
			tt.mutate(cfg)
			_, err := New(context.Background(), DefaultName, cfg, &certmagic.FileStorage{Path: t.TempDir()}, zap.NewNop())
			if tt.want == "" {
				if err != nil {
					t.Fatalf("New = %v, want success", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("New = %v, want an error containing %q", err, tt.want)
			}
			if strings.Contains(err.Error(), "s3cret") {
				t.Fatalf("error leaks a secret: %v", err)
			}
		})
	}
}

func TestEnvPlaceholdersReplaced(t *testing.T) {
	const secret = "p:a/s=s~w{o}rd"
	t.Setenv("TOKENGATE_TEST_SECRET", secret)
	t.Setenv("TOKENGATE_TEST_HOST", "auth.example.org")
	cfg := baseConfig()
	cfg.Issuer = "https://{env.TOKENGATE_TEST_HOST}"
	cfg.Clients[0].Secret = "{env.TOKENGATE_TEST_SECRET}"
	st := &certmagic.FileStorage{Path: t.TempDir()}
	iss, _ := newIssuer(t, cfg, st)

	if iss.Config.Issuer != "https://auth.example.org" {
		t.Fatalf("issuer = %q, want the placeholder replaced", iss.Config.Issuer)
	}
	if got := iss.Config.Clients[0].Secret; got != secret {
		t.Fatalf("resolved secret = %q, want the env value", got)
	}
	// The JSON config is untouched.
	if cfg.Clients[0].Secret != "{env.TOKENGATE_TEST_SECRET}" || cfg.Issuer != "https://{env.TOKENGATE_TEST_HOST}" {
		t.Fatalf("New modified the given config: %+v", cfg)
	}
	if _, err := iss.Clients.Authenticate("reports", secret, nil); err != nil {
		t.Fatalf("the env secret does not authenticate: %v", err)
	}
	if _, err := iss.Clients.Authenticate("reports", "{env.TOKENGATE_TEST_SECRET}", nil); err == nil {
		t.Fatal("the placeholder text authenticates")
	}
	// The refresh token key lives under the resolved issuer's prefix.
	if keys, err := st.List(context.Background(), StoragePrefix(iss.Config.Issuer)+"/refresh_keys", false); err != nil || len(keys) != 1 {
		t.Fatalf("refresh token keys under the resolved issuer's prefix: %v (%v)", keys, err)
	}
}

func TestDefaults(t *testing.T) {
	iss, _ := newIssuer(t, baseConfig(), &certmagic.FileStorage{Path: t.TempDir()})
	c := iss.Config
	if c.SigningAlg != keys.ES256 || time.Duration(c.TokenTTL) != time.Hour ||
		time.Duration(c.RefreshTTL) != 24*time.Hour || time.Duration(c.KeyRotation) != 30*24*time.Hour {
		t.Fatalf("defaults: alg %s token_ttl %v refresh_ttl %v key_rotation %v",
			c.SigningAlg, time.Duration(c.TokenTTL), time.Duration(c.RefreshTTL), time.Duration(c.KeyRotation))
	}
	if iss.Name != DefaultName || iss.Logger() == nil {
		t.Fatalf("name %q, logger %v", iss.Name, iss.Logger())
	}
	rc := client(t, iss, "reports")
	if iss.TokenTTL(rc) != time.Hour {
		t.Fatalf("client TokenTTL = %v, want the issuer's 1h", iss.TokenTTL(rc))
	}
	if aud := iss.Audience(rc); !reflect.DeepEqual(aud, []string{testIssuer}) {
		t.Fatalf("default audience %v", aud)
	}
	withAud := &clients.Config{ClientID: "x", Audience: []string{"https://api"}}
	if aud := iss.Audience(withAud); !reflect.DeepEqual(aud, []string{"https://api"}) {
		t.Fatalf("client audience %v", aud)
	}
}

func TestMetadata(t *testing.T) {
	tests := []struct {
		name       string
		issuer     string
		clients    []*clients.Config
		wantGrants []string
		wantScopes []string
	}{
		{
			name:       "client credentials only",
			issuer:     "https://auth.example.com/",
			clients:    []*clients.Config{{ClientID: "a", Secret: "x"}},
			wantGrants: []string{"client_credentials"},
			wantScopes: []string{},
		},
		{
			name:   "refresh and scopes",
			issuer: "https://auth.example.com/tenant",
			clients: []*clients.Config{
				{ClientID: "a", Secret: "x", Scopes: []string{"read", "write"}},
				{ClientID: "b", Secret: "x", Scopes: []string{"write", "admin"}, GrantTypes: []string{"client_credentials", "refresh_token"}},
			},
			wantGrants: []string{"client_credentials", "refresh_token"},
			wantScopes: []string{"read", "write", "admin"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			iss, _ := newIssuer(t, &Config{Issuer: tt.issuer, Clients: tt.clients}, &certmagic.FileStorage{Path: t.TempDir()})
			data, err := json.Marshal(iss.Metadata())
			if err != nil {
				t.Fatal(err)
			}
			var md map[string]any
			if err := json.Unmarshal(data, &md); err != nil {
				t.Fatal(err)
			}
			base := strings.TrimSuffix(tt.issuer, "/")
			want := map[string]any{
				"issuer":                                        tt.issuer,
				"token_endpoint":                                base + "/oauth/token",
				"jwks_uri":                                      base + "/.well-known/jwks.json",
				"grant_types_supported":                         toAny(tt.wantGrants),
				"response_types_supported":                      []any{},
				"token_endpoint_auth_methods_supported":         []any{"client_secret_basic", "client_secret_post"},
				"scopes_supported":                              toAny(tt.wantScopes),
				"revocation_endpoint":                           base + "/oauth/revoke",
				"introspection_endpoint":                        base + "/oauth/introspect",
				"revocation_endpoint_auth_methods_supported":    []any{"client_secret_basic", "client_secret_post"},
				"introspection_endpoint_auth_methods_supported": []any{"client_secret_basic", "client_secret_post"},
				"dpop_signing_alg_values_supported":             []any{"ES256", "ES384", "ES512", "EdDSA", "RS256", "PS256"},
			}
			if !reflect.DeepEqual(md, want) {
				t.Fatalf("metadata\n got %s\nwant %v", data, want)
			}
		})
	}
}

func toAny(s []string) []any {
	out := make([]any, len(s))
	for i, v := range s {
		out[i] = v
	}
	return out
}

func TestStoragePrefix(t *testing.T) {
	a := StoragePrefix("https://auth.example.com")
	if !strings.HasPrefix(a, "tokengate/issuers/") || len(a) != len("tokengate/issuers/")+16 {
		t.Fatalf("StoragePrefix = %q, want tokengate/issuers/ and 16 hex digits", a)
	}
	if b := StoragePrefix("https://auth.example.com/"); b != a {
		t.Fatalf("a trailing slash changes the prefix: %q vs %q", b, a)
	}
	for _, other := range []string{"https://auth.example.org", "http://auth.example.com", "https://auth.example.com/t"} {
		if StoragePrefix(other) == a {
			t.Fatalf("issuers %q and %q share a storage prefix", other, "https://auth.example.com")
		}
	}
}

func TestKeysSurviveRestart(t *testing.T) {
	dir := t.TempDir()
	first, _ := newIssuer(t, baseConfig(), &certmagic.FileStorage{Path: dir})
	at, err := first.Issue(client(t, first, "reports"), nil, first.DefaultAudience())
	if err != nil {
		t.Fatal(err)
	}
	second, _ := newIssuer(t, baseConfig(), &certmagic.FileStorage{Path: dir})
	k1, _ := first.Keys.Current()
	k2, _ := second.Keys.Current()
	if k1 == nil || k2 == nil || k1.KID != k2.KID {
		t.Fatalf("after a restart the key is %v, want %v", k2, k1)
	}
	h, claims := verify(t, at.Token, second.Keys.JWKS())
	if h.KeyID != k1.KID || claims["jti"] != at.Claims.JTI {
		t.Fatalf("verified header kid %q claims %v", h.KeyID, claims)
	}
	// A second issuer URL on the same storage has keys of its own.
	cfg := baseConfig()
	cfg.Issuer = "https://other.example.com"
	other, _ := newIssuer(t, cfg, &certmagic.FileStorage{Path: dir})
	if k3, _ := other.Keys.Current(); k3 == nil || k3.KID == k1.KID {
		t.Fatal("two issuers on one storage share a signing key")
	}
	if _, _, err := verifyErr(at.Token, other.Keys.JWKS()); err == nil {
		t.Fatal("a token verified against another issuer's keys on the same storage")
	}
}

func writeECKey(t *testing.T) string {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return writePEM(t, "EC PRIVATE KEY", der)
}

// writePEM writes one PEM block to a key file of its own and returns its
// path.
func writePEM(t *testing.T, typ string, der []byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "key.pem")
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestSigningKeyFile(t *testing.T) {
	_, edKey, _ := ed25519.GenerateKey(rand.Reader)
	der, err := x509.MarshalPKCS8PrivateKey(edKey)
	if err != nil {
		t.Fatal(err)
	}
	path := writePEM(t, "PRIVATE KEY", der)
	t.Setenv("TOKENGATE_TEST_KEYFILE", path)
	st := &certmagic.FileStorage{Path: t.TempDir()}
	cfg := baseConfig()
	cfg.SigningKey = "{env.TOKENGATE_TEST_KEYFILE}"
	iss, _ := newIssuer(t, cfg, st)
	at, err := iss.Issue(client(t, iss, "reports"), nil, iss.DefaultAudience())
	if err != nil {
		t.Fatal(err)
	}
	h, _ := verify(t, at.Token, iss.Keys.JWKS())
	if h.Algorithm != keys.EdDSA {
		t.Fatalf("an Ed25519 signing_key signed with %s", h.Algorithm)
	}
	// The kid is derived from the key: stable across restarts.
	again, _ := newIssuer(t, cfg, st)
	k, _ := again.Keys.Current()
	if k == nil || k.KID != h.KeyID {
		t.Fatalf("kid %v after a restart, want %q", k, h.KeyID)
	}
	if st.Exists(context.Background(), StoragePrefix(testIssuer)+"/keys.json") {
		t.Fatal("a signing_key issuer stored generated keys")
	}
}

func TestRefreshStoreWiredToIssuerClock(t *testing.T) {
	iss, clock := newIssuer(t, baseConfig(), &certmagic.FileStorage{Path: t.TempDir()})
	ctx := context.Background()
	tok, err := iss.Refresh.Issue(ctx, refresh.Grant{ClientID: "reports"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	clock.Advance(time.Hour)
	if _, _, err := iss.Refresh.Redeem(ctx, tok, "reports", time.Hour, nil); err == nil {
		t.Fatal("a refresh token outlived its TTL on the issuer's clock")
	}
}

func TestStartStop(t *testing.T) {
	iss, _ := newIssuer(t, baseConfig(), &certmagic.FileStorage{Path: t.TempDir()})
	iss.Stop() // before Start: nothing to stop
	iss.Start()
	done := make(chan struct{})
	go func() { iss.Stop(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Stop did not return")
	}
}

// A JSON config is where a null client comes from.
func TestNullClientInJSON(t *testing.T) {
	var cfg Config
	if err := json.Unmarshal([]byte(`{"issuer":"https://auth.example.com","clients":[null]}`), &cfg); err != nil {
		t.Fatal(err)
	}
	_, err := New(context.Background(), DefaultName, &cfg, &certmagic.FileStorage{Path: t.TempDir()}, zap.NewNop())
	if err == nil || !strings.Contains(err.Error(), "empty client") {
		t.Fatalf("New = %v, want an empty client error", err)
	}
}

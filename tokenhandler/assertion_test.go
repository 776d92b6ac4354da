package tokenhandler_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jwt"

	"github.com/tokengate/tokengate/internal/testcaddy"
)

const (
	pkjBase     = "http://localhost:9617"
	pkjTokenURL = pkjBase + "/oauth/token"
	jwtBearer   = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
)

// startAssertionIssuer runs an issuer with a client registering an EC key
// inline (jwks) and one registering an RSA key as a PEM file; it returns
// the issuer's storage directory.
func startAssertionIssuer(t *testing.T, ec *ecdsa.PrivateKey, rsaKey *rsa.PrivateKey) string {
	t.Helper()
	storage := t.TempDir()
	pub, err := jwk.Import(ec.Public())
	if err != nil {
		t.Fatal(err)
	}
	_ = pub.Set(jwk.KeyIDKey, "ec-1")
	set := jwk.NewSet()
	_ = set.AddKey(pub)
	jwks, _ := json.Marshal(set)
	der, _ := x509.MarshalPKIXPublicKey(rsaKey.Public())
	pemFile := filepath.Join(t.TempDir(), "client.pem")
	if err := os.WriteFile(pemFile, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	testcaddy.Start(t, fmt.Sprintf(`{
	admin off
	%s
	oauth_issuer {
		issuer %s
		client ec-client {
			jwks `+"`%s`"+`
			scopes reports:read
		}
		client rsa-client {
			public_key %s
		}
		client secret-client {
			secret s3cret
		}
		client keys-only-by-choice {
			secret both-s3cret
			jwks `+"`%s`"+`
			token_endpoint_auth_methods private_key_jwt
		}
	}
}

:9617 {
	oauth_token
}
`, testcaddy.Storage(storage), pkjBase, jwks, pemFile, jwks))
	return storage
}

// assertion signs a client assertion; edit changes its claims.
func assertion(t *testing.T, key any, alg jwa.SignatureAlgorithm, client string, edit func(jwt.Token)) string {
	t.Helper()
	now := time.Now()
	tok, err := jwt.NewBuilder().Issuer(client).Subject(client).Audience([]string{pkjTokenURL}).
		IssuedAt(now).Expiration(now.Add(time.Minute)).JwtID(randomJTI()).Build()
	if err != nil {
		t.Fatal(err)
	}
	if edit != nil {
		edit(tok)
	}
	signed, err := jwt.Sign(tok, jwt.WithKey(alg, key))
	if err != nil {
		t.Fatal(err)
	}
	return string(signed)
}

func randomJTI() string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

func assertionRequest(t *testing.T, a string, extra url.Values) answer {
	t.Helper()
	form := url.Values{"grant_type": {"client_credentials"}, "client_assertion_type": {jwtBearer}, "client_assertion": {a}}
	for k, v := range extra {
		form[k] = v
	}
	return post(t, pkjTokenURL, form.Encode())
}

func TestPrivateKeyJWT(t *testing.T) {
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	startAssertionIssuer(t, ec, rsaKey)

	good := assertion(t, ec, jwa.ES256(), "ec-client", nil)
	if a := assertionRequest(t, good, nil); a.status != 200 || a.body["token_type"] != "Bearer" {
		t.Fatalf("EC assertion: %d %s", a.status, a.raw)
	}
	if a := assertionRequest(t, assertion(t, rsaKey, jwa.RS256(), "rsa-client", nil), url.Values{"client_id": {"rsa-client"}}); a.status != 200 {
		t.Fatalf("RSA assertion from a PEM key: %d %s", a.status, a.raw)
	}
	// aud may be the issuer URL too.
	if a := assertionRequest(t, assertion(t, ec, jwa.ES256(), "ec-client", func(tok jwt.Token) { _ = tok.Set("aud", pkjBase) }), nil); a.status != 200 {
		t.Fatalf("aud the issuer: %d %s", a.status, a.raw)
	}

	none := func() string {
		h := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none"}`))
		p, _ := json.Marshal(map[string]any{"iss": "ec-client", "sub": "ec-client", "aud": pkjTokenURL, "exp": time.Now().Add(time.Minute).Unix(), "jti": randomJTI()})
		return h + "." + base64.RawURLEncoding.EncodeToString(p) + "."
	}()
	for _, tc := range []struct {
		name string
		a    string
		form url.Values
	}{
		{"replayed", good, nil},
		{"expired", assertion(t, ec, jwa.ES256(), "ec-client", func(tok jwt.Token) {
			_ = tok.Set("iat", time.Now().Add(-5*time.Minute))
			_ = tok.Set("exp", time.Now().Add(-2*time.Minute))
		}), nil},
		{"wrong aud", assertion(t, ec, jwa.ES256(), "ec-client", func(tok jwt.Token) { _ = tok.Set("aud", "https://elsewhere.example") }), nil},
		{"alg none", none, nil},
		{"no exp", assertion(t, ec, jwa.ES256(), "ec-client", func(tok jwt.Token) { _ = tok.Remove("exp") }), nil},
		{"lifetime too long", assertion(t, ec, jwa.ES256(), "ec-client", func(tok jwt.Token) { _ = tok.Set("exp", time.Now().Add(time.Hour)) }), nil},
		{"no jti", assertion(t, ec, jwa.ES256(), "ec-client", func(tok jwt.Token) { _ = tok.Remove("jti") }), nil},
		{"signed by another key", assertion(t, other, jwa.ES256(), "ec-client", nil), nil},
		{"iss is not sub", assertion(t, ec, jwa.ES256(), "ec-client", func(tok jwt.Token) { _ = tok.Set("iss", "rsa-client") }), nil},
		{"client_id differs", assertion(t, ec, jwa.ES256(), "ec-client", nil), url.Values{"client_id": {"rsa-client"}}},
		{"RSA key named with ES256 header", assertion(t, ec, jwa.ES256(), "rsa-client", nil), nil},
		{"client with a secret only", assertion(t, ec, jwa.ES256(), "secret-client", nil), nil},
		{"unknown client", assertion(t, ec, jwa.ES256(), "nobody", nil), nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := assertionRequest(t, tc.a, tc.form)
			if a.status != 401 || a.body["error"] != "invalid_client" {
				t.Fatalf("%d %s, want 401 invalid_client", a.status, a.raw)
			}
		})
	}

	// A client allowed private_key_jwt only: its assertion passes, its
	// (right) secret does not.
	if a := assertionRequest(t, assertion(t, ec, jwa.ES256(), "keys-only-by-choice", nil), nil); a.status != 200 {
		t.Fatalf("assertion of a client limited to private_key_jwt: %d %s", a.status, a.raw)
	}
	if a := post(t, pkjTokenURL, url.Values{"grant_type": {"client_credentials"}, "client_id": {"keys-only-by-choice"}, "client_secret": {"both-s3cret"}}.Encode()); a.status != 401 || a.body["error"] != "invalid_client" {
		t.Fatalf("secret of a client limited to private_key_jwt: %d %s", a.status, a.raw)
	}
	// A client with keys only has no secret: an empty one is refused.
	if a := post(t, pkjTokenURL, url.Values{"grant_type": {"client_credentials"}, "client_id": {"ec-client"}, "client_secret": {""}}.Encode()); a.status != 401 {
		t.Fatalf("empty secret of a key-only client: %d %s", a.status, a.raw)
	}
	// Two methods at once, or another assertion type, are malformed requests.
	if a := assertionRequest(t, assertion(t, ec, jwa.ES256(), "ec-client", nil), url.Values{"client_secret": {"x"}}); a.status != 400 || a.body["error"] != "invalid_request" {
		t.Fatalf("assertion and secret: %d %s", a.status, a.raw)
	}
	if a := post(t, pkjTokenURL, url.Values{"grant_type": {"client_credentials"}, "client_assertion_type": {"urn:other"}, "client_assertion": {good}}.Encode()); a.status != 400 {
		t.Fatalf("other assertion type: %d %s", a.status, a.raw)
	}

	req, err := http.NewRequest("GET", pkjBase+"/.well-known/oauth-authorization-server", nil)
	if err != nil {
		t.Fatal(err)
	}
	md := do(t, req)
	methods, _ := md.body["token_endpoint_auth_methods_supported"].([]any)
	algs, _ := md.body["token_endpoint_auth_signing_alg_values_supported"].([]any)
	if !strings.Contains(fmt.Sprint(methods), "private_key_jwt") || len(algs) == 0 {
		t.Fatalf("metadata: %s", md.raw)
	}
}

// TestAssertionStateDown: with the issuer's storage unreachable an
// assertion is answered 503 temporarily_unavailable with Retry-After,
// never 200 (its jti could not be claimed), and nothing is recorded: the
// same assertion is accepted once the storage is back, and then only once.
func TestAssertionStateDown(t *testing.T) {
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	dir := startAssertionIssuer(t, ec, rsaKey)
	a := assertion(t, ec, jwa.ES256(), "ec-client", nil)
	// The storage directory becomes a file: every read and write fails.
	if err := os.Rename(dir, dir+".away"); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dir, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	ans := assertionRequest(t, a, nil)
	if err := os.Remove(dir); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(dir+".away", dir); err != nil {
		t.Fatal(err)
	}
	if ans.status != 503 || ans.body["error"] != "temporarily_unavailable" || ans.header.Get("Retry-After") == "" {
		t.Fatalf("storage down: %d %v %s; want 503 temporarily_unavailable with Retry-After", ans.status, ans.header, ans.raw)
	}
	if ans := assertionRequest(t, a, nil); ans.status != 200 {
		t.Fatalf("the assertion once the storage is back: %d %s", ans.status, ans.raw)
	}
	if ans := assertionRequest(t, a, nil); ans.status != 401 || ans.body["error"] != "invalid_client" {
		t.Fatalf("the assertion replayed: %d %s", ans.status, ans.raw)
	}
}

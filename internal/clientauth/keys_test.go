package clientauth

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lestrrat-go/jwx/v3/jwk"

	"github.com/tokengate/tokengate/internal/clients"
)

func TestLoadKeysRefuses(t *testing.T) {
	priv, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	privJWK, _ := jwk.Import(priv)
	pubJWK, _ := jwk.Import(priv.Public())
	set := func(k jwk.Key) json.RawMessage {
		s := jwk.NewSet()
		_ = s.AddKey(k)
		b, _ := json.Marshal(s)
		return b
	}
	wrongAlg, _ := jwk.Import(priv.Public())
	_ = wrongAlg.Set(jwk.AlgorithmKey, "RS256")
	der, _ := x509.MarshalECPrivateKey(priv)
	privPEM := filepath.Join(t.TempDir(), "private.pem")
	_ = os.WriteFile(privPEM, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}), 0o600)

	for name, tc := range map[string]struct {
		cfg  clients.Config
		want string
	}{
		"private JWK":       {clients.Config{JWKS: set(privJWK)}, "public asymmetric"},
		"symmetric JWK":     {clients.Config{JWKS: json.RawMessage(`{"keys":[{"kty":"oct","k":"c2VjcmV0"}]}`)}, "public asymmetric"},
		"alg of other kind": {clients.Config{JWKS: set(wrongAlg)}, "does not fit"},
		"private PEM":       {clients.Config{PublicKey: privPEM}, "never a private key"},
		"missing PEM file":  {clients.Config{PublicKey: filepath.Join(t.TempDir(), "none.pem")}, "public_key"},
	} {
		_, err := LoadKeys(&tc.cfg)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error containing %q", name, err, tc.want)
		}
	}
	ks, err := LoadKeys(&clients.Config{JWKS: set(pubJWK)})
	if err != nil || len(ks) != 1 || ks[0].Alg.String() != "ES256" {
		t.Fatalf("public EC JWK: %v %v", ks, err)
	}
}

func TestAuthMethodsNeedTheirCredential(t *testing.T) {
	jwks := json.RawMessage(`{"keys":[]}`)
	for name, tc := range map[string]struct {
		cfg  clients.Config
		want string
	}{
		"unknown method":              {clients.Config{ClientID: "a", Secret: "s", AuthMethods: []string{"client_secret_jwt"}}, "unknown method"},
		"private_key_jwt, no keys":    {clients.Config{ClientID: "a", Secret: "s", AuthMethods: []string{"private_key_jwt"}}, "needs its credential"},
		"client_secret_post, no key":  {clients.Config{ClientID: "a", JWKS: jwks, AuthMethods: []string{"client_secret_post"}}, "needs its credential"},
		"tls_client_auth, no subject": {clients.Config{ClientID: "a", Secret: "s", AuthMethods: []string{"tls_client_auth"}}, "needs its credential"},
	} {
		err := tc.cfg.Validate(true)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error containing %q", name, err, tc.want)
		}
	}
	ok := clients.Config{ClientID: "a", Secret: "s", JWKS: jwks, AuthMethods: []string{"private_key_jwt", "client_secret_basic"}}
	if err := ok.Validate(true); err != nil {
		t.Fatal(err)
	}
	if ok.MayAuthenticate("client_secret_post") || !ok.MayAuthenticate("private_key_jwt") {
		t.Fatal("MayAuthenticate does not follow the list")
	}
}

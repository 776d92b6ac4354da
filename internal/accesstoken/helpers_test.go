package accesstoken

import (
	"encoding/base64"
	"testing"
	"time"

	"github.com/caddyserver/certmagic"
	"github.com/lestrrat-go/jwx/v3/jwk"

	"github.com/tokengate/tokengate/internal/keys"
)

const testIssuer = "https://auth.example.com"

var testAlgs = []string{keys.ES256, keys.EdDSA, keys.RS256, keys.PS256}

// newKey makes a signing key of alg, as keys.Manager serves it.
func newKey(t testing.TB, alg string) *keys.Key {
	t.Helper()
	m, err := keys.New(keys.Config{Storage: &certmagic.FileStorage{Path: t.TempDir()}, Alg: alg, Rotation: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Load(t.Context()); err != nil {
		t.Fatal(err)
	}
	k, err := m.Current()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// privateJWK is the key as jws.Sign takes it.
func privateJWK(t testing.TB, k *keys.Key) jwk.Key {
	t.Helper()
	priv, err := jwk.Import(k.Signer)
	if err != nil {
		t.Fatal(err)
	}
	if err := priv.Set(jwk.KeyIDKey, k.KID); err != nil {
		t.Fatal(err)
	}
	return priv
}

func decode(t testing.TB, s string) []byte {
	t.Helper()
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

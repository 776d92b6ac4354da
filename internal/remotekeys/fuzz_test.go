package remotekeys

import (
	"testing"

	"github.com/lestrrat-go/jwx/v3/jwa"
)

// FuzzParseJWKS: whatever a remote server answers, parseJWKS does not
// panic, keeps at most MaxKeys keys, never a symmetric one, and every key
// it keeps verifies with an asymmetric algorithm that fits it.
func FuzzParseJWKS(f *testing.F) {
	f.Add([]byte(`{"keys":[{"kty":"EC","crv":"P-256","kid":"a","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}]}`))
	f.Add([]byte(`{"keys":[{"kty":"oct","k":"c2VjcmV0","alg":"HS256"}]}`))
	f.Add([]byte(`{"keys":[{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo","alg":"EdDSA"}]}`))
	f.Add([]byte(`{"keys":[{"kty":"EC","crv":"P-256","alg":"none","x":"AA","y":"AA"}]}`))
	f.Add([]byte(`{"keys":null}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		set, _, err := parseJWKS(body)
		if err != nil {
			return
		}
		if len(set.byKID) > MaxKeys {
			t.Fatalf("%d keys kept", len(set.byKID))
		}
		check := func(alg jwa.SignatureAlgorithm, pub any) {
			if alg == jwa.NoSignature() || alg.IsSymmetric() {
				t.Fatalf("key kept with algorithm %s", alg.String())
			}
			if err := algFits(alg, pub); err != nil {
				t.Fatalf("key kept that does not fit its algorithm: %v", err)
			}
		}
		for kid, k := range set.byKID {
			if kid == "" || k.KID != kid {
				t.Fatalf("key filed under kid %q has kid %q", kid, k.KID)
			}
			check(k.Alg, k.Public)
		}
		if set.only != nil {
			check(set.only.Alg, set.only.Public)
		}
	})
}

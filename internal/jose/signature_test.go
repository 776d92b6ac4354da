package jose

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"strings"
	"testing"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jws"
)

// TestVerifyCompactAgreesWithJWX signs tokens with jwx and checks that
// VerifyCompact accepts exactly what jws.VerifyCompactFast accepts: the
// signatures, the same with one byte changed, and with another algorithm
// named. Many ECDSA signatures are made so that r and s with leading zero
// bytes or a high bit (the DER corner cases) come up.
func TestVerifyCompactAgreesWithJWX(t *testing.T) {
	newEC := func(c elliptic.Curve) crypto.Signer { k, _ := ecdsa.GenerateKey(c, rand.Reader); return k }
	_, ed, _ := ed25519.GenerateKey(rand.Reader)
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		alg  jwa.SignatureAlgorithm
		key  crypto.Signer
		runs int
	}{
		{jwa.ES256(), newEC(elliptic.P256()), 100},
		{jwa.ES384(), newEC(elliptic.P384()), 50},
		{jwa.ES512(), newEC(elliptic.P521()), 50},
		{jwa.EdDSA(), ed, 20},
		{jwa.RS256(), rsaKey, 3},
		{jwa.PS256(), rsaKey, 3},
		{jwa.RS512(), rsaKey, 1},
		{jwa.PS384(), rsaKey, 1},
	} {
		for i := range tc.runs {
			signed, err := jws.Sign([]byte(`{"n":`+strings.Repeat("1", i%7+1)+`}`), jws.WithKey(tc.alg, tc.key))
			if err != nil {
				t.Fatal(err)
			}
			tok := string(signed)
			bad := []byte(tok)
			bad[len(bad)-3] ^= 'A' ^ 'B'
			other := jwa.ES256()
			if tc.alg == other {
				other = jwa.ES384()
			}
			for _, c := range []struct {
				tok string
				alg jwa.SignatureAlgorithm
			}{{tok, tc.alg}, {string(bad), tc.alg}, {tok, other}, {tok[:len(tok)-4], tc.alg}} {
				_, jwxErr := jws.VerifyCompactFast(tc.key.Public(), []byte(c.tok), c.alg)
				if got := VerifyCompact(c.alg, tc.key.Public(), c.tok); got != (jwxErr == nil) {
					t.Fatalf("%s run %d: VerifyCompact %v, jwx %v", tc.alg, i, got, jwxErr)
				}
			}
			if !VerifyCompact(tc.alg, tc.key.Public(), tok) {
				t.Fatalf("%s: a good signature refused", tc.alg)
			}
		}
	}
}

// TestDERLongForm checks the one SEQUENCE long enough for the long length
// form: two 66-byte P-521 integers with the high bit set.
func TestDERLongForm(t *testing.T) {
	v := []byte(strings.Repeat("\xff", 66))
	der := derECDSA(nil, v, v)
	if len(der) != 3+2*(2+67) || der[0] != 0x30 || der[1] != 0x81 || int(der[2]) != len(der)-3 {
		t.Fatalf("DER header % x, length %d", der[:3], len(der))
	}
	short := derECDSA(nil, []byte{0, 0, 1}, []byte{0x80})
	if want := "\x30\x07\x02\x01\x01\x02\x02\x00\x80"; string(short) != want {
		t.Fatalf("got % x, want % x", short, want)
	}
}

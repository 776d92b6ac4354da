package accesstoken

import (
	"encoding/base64"
	"strings"
	"testing"
)

func b64(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

// FuzzParseHeader checks the protected header parser alone: no panic, and
// an accepted header always has an alg and a bounded kid.
func FuzzParseHeader(f *testing.F) {
	for _, s := range []string{
		`{"alg":"ES256","kid":"k","typ":"at+jwt"}`, `{"alg":"none"}`, `{"alg":"ES256","alg":"none"}`,
		`{"alg":"ES256","crit":["b64"],"b64":false}`, `{"alg":1}`, `[]`, `{`, `{"alg":"ES256"}{}`,
		`{"alg":"ES256","jwk":{"kty":"EC","x":"1","y":"2"},"x5c":["a"]}`, `{"ALG":"none","alg":"ES256"}`,
	} {
		f.Add(b64(s))
	}
	f.Fuzz(func(t *testing.T, enc string) {
		h, err := parseHeader(enc)
		if err != nil {
			return
		}
		if h.Alg == "" || len(h.KID) > maxKIDLength {
			t.Fatalf("accepted header %q as %+v", enc, h)
		}
	})
}

// FuzzParseClaims checks the claims parser: no panic, and scopes never
// contain spaces.
func FuzzParseClaims(f *testing.F) {
	for _, s := range []string{
		`{"exp":1,"scope":"a b"}`, `{"scp":["a b","c"]}`, `{"exp":1e999}`, `{"exp":-1e999,"nbf":"x"}`,
		`{"aud":["a",1]}`, `{"aud":"a","exp":1.5}`, `null`, `{"x":{"y":[1,2]}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, payload []byte) {
		c, err := ParseClaims(payload)
		if err != nil {
			return
		}
		for _, s := range c.Scopes {
			if s == "" || strings.ContainsAny(s, " \t\n") {
				t.Fatalf("scope %q from %q", s, payload)
			}
		}
	})
}

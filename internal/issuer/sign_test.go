package issuer

import (
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"

	"github.com/caddyserver/certmagic"
	"github.com/lestrrat-go/jwx/v3/jws"

	"github.com/tokengate/tokengate/internal/keys"
)

// signJWX is how Issue signed before signAccessToken: the generic jwx path.
// The direct path must produce the same header and payload.
func signJWX(t testing.TB, key *keys.Key, cl *Claims) string {
	t.Helper()
	payload, err := json.Marshal(cl)
	if err != nil {
		t.Fatal(err)
	}
	hdr := jws.NewHeaders()
	if err := hdr.Set(jws.TypeKey, "at+jwt"); err != nil {
		t.Fatal(err)
	}
	if err := hdr.Set(jws.KeyIDKey, key.KID); err != nil {
		t.Fatal(err)
	}
	tok, err := jws.Sign(payload, jws.WithKey(key.Alg, key.Private, jws.WithProtectedHeaders(hdr)))
	if err != nil {
		t.Fatal(err)
	}
	return string(tok)
}

func TestSignMatchesJWX(t *testing.T) {
	claims := []Claims{
		{Issuer: testIssuer, Subject: "reports", Audience: Audience{testIssuer}, Expiry: 1800003600, NotBefore: 1800000000, IssuedAt: 1800000000, JTI: "abc_-1", ClientID: "reports", Scope: "read write"},
		{Issuer: testIssuer, Subject: "x", Audience: Audience{"a", "b"}, JTI: "j", ClientID: "x"},
		{Issuer: testIssuer, Subject: "x", Audience: nil, JTI: "j", ClientID: "x"},
		{Issuer: testIssuer, Subject: "x", Audience: Audience{}, JTI: "j", ClientID: "x"},
		{Issuer: `https://a.example/<&>"\` + "\x01\u00e9\u2028\xff", Subject: "é", Audience: Audience{"\t"}, JTI: "j", ClientID: "x", Scope: "a\"b"},
	}
	for _, alg := range []string{keys.ES256, keys.EdDSA, keys.RS256, keys.PS256} {
		t.Run(alg, func(t *testing.T) {
			cfg := baseConfig()
			cfg.SigningAlg = alg
			iss, _ := newIssuer(t, cfg, &certmagic.FileStorage{Path: t.TempDir()})
			key, err := iss.Keys.Current()
			if err != nil {
				t.Fatal(err)
			}
			for _, cl := range claims {
				got, err := signAccessToken(key, &cl)
				if err != nil {
					t.Fatal(err)
				}
				want := signJWX(t, key, &cl)
				g, w := strings.Split(got, "."), strings.Split(want, ".")
				if len(g) != 3 {
					t.Fatalf("not a compact JWS: %q", got)
				}
				if g[1] != w[1] {
					t.Errorf("payload %s, jwx made %s", decode(t, g[1]), decode(t, w[1]))
				}
				var gh, wh map[string]any
				json.Unmarshal(decode(t, g[0]), &gh)
				json.Unmarshal(decode(t, w[0]), &wh)
				if len(gh) != 3 || gh["alg"] != wh["alg"] || gh["kid"] != wh["kid"] || gh["typ"] != wh["typ"] || len(wh) != 3 {
					t.Errorf("header %v, jwx made %v", gh, wh)
				}
				if _, err := jws.Verify([]byte(got), jws.WithKey(key.Alg, key.Public)); err != nil {
					t.Errorf("jwx does not verify the token: %v", err)
				}
			}
		})
	}
}

func decode(t testing.TB, s string) []byte {
	t.Helper()
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func FuzzAppendString(f *testing.F) {
	for _, s := range []string{"", "plain", `"`, `\`, "<>&", "\x00\x1f", "\u2028", "\xff", "é"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		want, _ := json.Marshal(s)
		if got := appendString(nil, s); string(got) != string(want) {
			t.Errorf("appendString(%q) = %s, json.Marshal = %s", s, got, want)
		}
	})
}

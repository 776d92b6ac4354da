package accesstoken

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"

	"github.com/tokengate/tokengate/internal/keys"
)

// issuedClaims is the claims document as the issuer wrote it through
// json.Marshal before Sign: every member, in this order.
type issuedClaims struct {
	Issuer    string        `json:"iss"`
	Subject   string        `json:"sub"`
	Audience  Audience      `json:"aud"`
	Expiry    int64         `json:"exp"`
	NotBefore int64         `json:"nbf"`
	IssuedAt  int64         `json:"iat"`
	JTI       string        `json:"jti"`
	ClientID  string        `json:"client_id"`
	SessionID string        `json:"sid,omitempty"`
	Scope     string        `json:"scope,omitempty"`
	Cnf       *Confirmation `json:"cnf,omitempty"`
}

// signJWX is the generic jwx path Sign replaces; Sign must produce the
// same header and payload.
func signJWX(t testing.TB, key *keys.Key, priv jwk.Key, cl *Claims) string {
	t.Helper()
	payload, err := json.Marshal(issuedClaims{cl.Issuer, cl.Subject, cl.Audience, cl.Expiry, cl.NotBefore, cl.IssuedAt, cl.JTI, cl.ClientID, cl.SessionID, cl.Scope, cl.Confirmation})
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
	tok, err := jws.Sign(payload, jws.WithKey(key.Alg, priv, jws.WithProtectedHeaders(hdr)))
	if err != nil {
		t.Fatal(err)
	}
	return string(tok)
}

func TestSignMatchesJWX(t *testing.T) {
	claims := []*Claims{
		{Issuer: testIssuer, Subject: "reports", Audience: Audience{testIssuer}, Expiry: 1800003600, NotBefore: 1800000000, IssuedAt: 1800000000, JTI: "abc_-1", ClientID: "reports", Scope: "read write"},
		{Issuer: testIssuer, Subject: "x", Audience: Audience{"a", "b"}, JTI: "j", ClientID: "x"},
		{Issuer: testIssuer, Subject: "x", Audience: Audience{"a"}, JTI: "j", ClientID: "x", Scope: "s", Confirmation: &Confirmation{JKT: "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"}},
		{Issuer: testIssuer, Subject: "x", Audience: Audience{"a"}, JTI: "j", ClientID: "x", Confirmation: &Confirmation{X5T: "bwcK0esc3ACC3DB2Y5_lESsXE8o9ltc05O89jdN-dg2"}},
		{Issuer: testIssuer, Subject: "x", Audience: Audience{"a"}, JTI: "j", ClientID: "x", Confirmation: &Confirmation{JKT: "a", X5T: "b"}},
		{Issuer: testIssuer, Subject: "x", Audience: nil, JTI: "j", ClientID: "x"},
		{Issuer: testIssuer, Subject: "x", Audience: Audience{"a"}, JTI: "j", ClientID: "x", SessionID: "0123456789abcdef0123456789abcdef", Scope: "s"},
		{Issuer: testIssuer, Subject: "x", Audience: Audience{}, JTI: "j", ClientID: "x"},
		{Issuer: `https://a.example/<&>"\` + "\x01\u00e9\u2028\xff", Subject: "é", Audience: Audience{"\t"}, JTI: "j", ClientID: "x", Scope: "a\"b"},
	}
	for _, alg := range testAlgs {
		t.Run(alg, func(t *testing.T) {
			key := newKey(t, alg)
			priv := privateJWK(t, key)
			for _, cl := range claims {
				got, err := Sign(key, cl)
				if err != nil {
					t.Fatal(err)
				}
				want := signJWX(t, key, priv, cl)
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

// TestAudienceJSON: one audience is written as a string, several as an
// array, and ParseClaims reads back what is written; anything but a string
// or an array of strings is refused.
func TestAudienceJSON(t *testing.T) {
	tests := []struct {
		aud  Audience
		json string
	}{
		{Audience{"a"}, `"a"`},
		{Audience{"a", "b"}, `["a","b"]`},
		{Audience{}, `[]`},
	}
	for _, tt := range tests {
		got, err := json.Marshal(tt.aud)
		if err != nil || string(got) != tt.json {
			t.Errorf("Marshal(%v) = %s, %v; want %s", tt.aud, got, err, tt.json)
		}
		c, err := ParseClaims([]byte(`{"aud":` + string(got) + `}`))
		if err != nil || !reflect.DeepEqual(c.Audience, tt.aud) {
			t.Errorf("ParseClaims(aud %s) = %v, %v; want %v", got, c, err, tt.aud)
		}
	}
	for _, bad := range []string{`1`, `{"a":1}`, `[1]`, `null`, `["api",null]`} {
		if _, err := ParseClaims([]byte(`{"aud":` + bad + `}`)); err == nil {
			t.Errorf("ParseClaims(aud %s) succeeded", bad)
		}
	}
}

package accesstoken

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	josejson "github.com/go-jose/go-jose/v4/json"
	"github.com/go-jose/go-jose/v4/jwt"
)

// joseClaims is how go-jose v4, a standard JOSE library, reads the claims
// ParseClaims reads: its JSON decoder is case-sensitive and refuses
// duplicate members, its NumericDate refuses strings and values of 2^62
// and more, its Audience refuses null and non-string elements.
type joseClaims struct {
	jwt.Claims
	ClientID string       `json:"client_id"`
	Azp      string       `json:"azp"`
	Scope    string       `json:"scope"`
	Scp      jwt.Audience `json:"scp"`
	Cnf      *struct {
		JKT string `json:"jkt"`
		X5T string `json:"x5t#S256"`
	} `json:"cnf"`
}

// stricterHere reports what ParseClaims refuses on purpose although go-jose
// accepts it: a payload that is not an object (null), more than maxClaims
// members, and a null exp, nbf or iat (go-jose takes them as absent; a
// token whose expiry is null is not one whose expiry is missing).
func stricterHere(payload []byte) bool {
	var raw map[string]json.RawMessage
	if json.Unmarshal(payload, &raw) != nil || raw == nil {
		return true
	}
	if countMembers(payload) > maxClaims {
		return true
	}
	for _, name := range []string{"exp", "nbf", "iat"} {
		if v, ok := raw[name]; ok && strings.TrimSpace(string(v)) == "null" {
			return true
		}
	}
	return false
}

// FuzzParseClaimsAgrees checks ParseClaims against go-jose v4: it refuses
// everything go-jose refuses (duplicate members, exp as a string, huge or
// infinite dates, aud with null or non-string elements...), accepts what
// go-jose accepts but for the cases stricterHere lists, and reads the same
// values. Its lazily made claim maps equal those of a map decoding.
func FuzzParseClaimsAgrees(f *testing.F) {
	for _, s := range []string{
		`{"iss":"https://a","sub":"x","aud":"a","exp":1800000000,"nbf":1,"iat":1,"jti":"j","client_id":"c","scope":"a b"}`,
		`{"exp":1,"scope":"a b"}`, `{"scp":["a b","c"]}`, `{"scp":"a  b"}`, `{"exp":1e999}`, `{"exp":-1e999,"nbf":"x"}`,
		`{"aud":["a",1]}`, `{"aud":"a","exp":1.5}`, `null`, `{"x":{"y":[1,2]}}`, `{}`, ` { "exp" : 12 , "exp":13 } `,
		`{"\u0065xp":5}`, `{"iss":"a\"b","sub":"\u00e9"}`, `{"iss":null,"client_id":"","azp":"z"}`, `{"exp":"123"}`,
		`{"exp":9007199254740993}`, `{"exp":-0}`, `{"scope":" a\tb\u00a0c "}`, `{"iss":1}`, `[1]`, `"x"`, `{"aud":null}`,
		"{\"iss\":\"\xff\"}", `{"scope":null,"scp":["a"]}`, `{"a":[{"b":"}"}],"exp":2}`,
		`{"exp":1e300}`, `{"exp":9223372036854775808}`, `{"exp":4611686018427387904}`, `{"exp":4611686018427387903}`,
		`{"aud":["api",null]}`, `{"aud":"a","aud":"b"}`, `{"exp":1,"\u0065xp":2}`, `{"sub":"a","sub":"a"}`, `{"EXP":"x"}`,
		`{"exp":null}`, `{"nbf":-1.5}`, `{"x":{"a":1,"a":2}}`, `{"azp":1,"client_id":"c"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, payload []byte) {
		got, gerr := ParseClaims(payload)
		var want joseClaims
		werr := josejson.Unmarshal(payload, &want)
		if werr != nil {
			if gerr == nil {
				t.Fatalf("%q: accepted, go-jose refuses it: %v", payload, werr)
			}
			return
		}
		if gerr != nil {
			if !stricterHere(payload) {
				t.Fatalf("%q: refused (%v), go-jose accepts it", payload, gerr)
			}
			return
		}
		var present map[string]json.RawMessage
		_ = json.Unmarshal(payload, &present)
		w := &Claims{Issuer: want.Issuer, Subject: want.Subject, Audience: Audience(want.Audience), JTI: want.ID, ClientID: want.ClientID}
		if w.ClientID == "" {
			w.ClientID = want.Azp
		}
		for _, d := range []struct {
			v   *jwt.NumericDate
			dst *int64
		}{{want.Expiry, &w.Expiry}, {want.NotBefore, &w.NotBefore}, {want.IssuedAt, &w.IssuedAt}} {
			if d.v != nil {
				*d.dst = int64(*d.v)
			}
		}
		if _, ok := present["scope"]; ok {
			w.Scopes = strings.Fields(want.Scope)
		} else {
			for _, s := range want.Scp {
				w.Scopes = append(w.Scopes, strings.Fields(s)...)
			}
		}
		w.Scope = strings.Join(w.Scopes, " ")
		_, hasExp := present["exp"]
		g := got
		if len(g.Audience) != len(w.Audience) || (len(w.Audience) > 0 && !reflect.DeepEqual(g.Audience, w.Audience)) ||
			len(g.Scopes) != len(w.Scopes) || (len(w.Scopes) > 0 && !reflect.DeepEqual(g.Scopes, w.Scopes)) ||
			g.Issuer != w.Issuer || g.Subject != w.Subject || g.ClientID != w.ClientID || g.JTI != w.JTI ||
			g.Expiry != w.Expiry || g.NotBefore != w.NotBefore || g.IssuedAt != w.IssuedAt ||
			g.Scope != w.Scope || g.hasExp != hasExp || !sameConfirmation(g.Confirmation, want.Cnf != nil, want.Cnf) {
			t.Fatalf("%q:\n got     %q %q %q %q %q %v %v %d %d %d %v\n go-jose %q %q %q %q %q %v %v %d %d %d %v", payload,
				g.Issuer, g.Subject, g.ClientID, g.JTI, g.Scope, g.Scopes, g.Audience, g.Expiry, g.NotBefore, g.IssuedAt, g.hasExp,
				w.Issuer, w.Subject, w.ClientID, w.JTI, w.Scope, w.Scopes, w.Audience, w.Expiry, w.NotBefore, w.IssuedAt, hasExp)
		}
		values := make(map[string][]string, len(present))
		rendered := make(map[string]string, len(present))
		for name, v := range present {
			values[name] = claimValues(v)
			rendered[name] = renderClaim(v)
		}
		if m := got.maps(); !reflect.DeepEqual(m.values, values) || !reflect.DeepEqual(m.rendered, rendered) {
			t.Fatalf("%q: claim maps differ:\n got  %v %v\n want %v %v", payload, m.values, m.rendered, values, rendered)
		}
	})
}

// sameConfirmation compares ParseClaims' cnf with go-jose's reading of it.
func sameConfirmation(got *Confirmation, present bool, want *struct {
	JKT string `json:"jkt"`
	X5T string `json:"x5t#S256"`
}) bool {
	if !present {
		return got == nil
	}
	return got != nil && got.JKT == want.JKT && got.X5T == want.X5T
}

// countMembers counts the members of the object payload, repeated ones
// too.
func countMembers(payload []byte) int {
	dec := json.NewDecoder(bytes.NewReader(payload))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return 0
	}
	n := 0
	for dec.More() {
		var val json.RawMessage
		if _, err := dec.Token(); err != nil || dec.Decode(&val) != nil {
			return n
		}
		n++
	}
	return n
}

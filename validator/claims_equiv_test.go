package validator

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

// oldClaims and parseClaimsMap are the claims parser before the token
// cache was slimmed (decoding the whole payload into maps up front). The
// present parser must agree with it on every payload.
type oldClaims struct {
	Claims
	values   map[string][]string
	rendered map[string]string
}

func parseClaimsMap(payload []byte) (*oldClaims, error) {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(payload, &raw); err != nil || raw == nil || len(raw) > maxClaims {
		return nil, errBadClaims
	}
	c := &oldClaims{
		values:   make(map[string][]string, len(raw)),
		rendered: make(map[string]string, len(raw)),
	}
	var err error
	str := func(name string, dst *string) {
		if v, ok := raw[name]; ok && err == nil {
			if json.Unmarshal(v, dst) != nil {
				err = errBadClaims
			}
		}
	}
	num := func(name string, dst *int64) bool {
		v, ok := raw[name]
		if !ok || err != nil {
			return false
		}
		n, e := numericDate(v)
		if e != nil {
			err = e
			return false
		}
		*dst = n
		return true
	}
	str("iss", &c.Issuer)
	str("sub", &c.Subject)
	str("jti", &c.JTI)
	str("client_id", &c.ClientID)
	if c.ClientID == "" {
		str("azp", &c.ClientID)
	}
	c.hasExp = num("exp", &c.Expiry)
	num("nbf", &c.NotBefore)
	num("iat", &c.IssuedAt)
	if err != nil {
		return nil, err
	}
	if v, ok := raw["aud"]; ok {
		if c.Audience, err = stringOrList(v); err != nil {
			return nil, err
		}
	}
	if v, ok := raw["scope"]; ok {
		var s string
		if json.Unmarshal(v, &s) != nil {
			return nil, errBadClaims
		}
		c.Scopes = strings.Fields(s)
	} else if v, ok := raw["scp"]; ok {
		l, err := stringOrList(v)
		if err != nil {
			return nil, err
		}
		for _, s := range l {
			c.Scopes = append(c.Scopes, strings.Fields(s)...)
		}
	}
	c.Scope = strings.Join(c.Scopes, " ")
	for name, v := range raw {
		c.values[name] = claimValues(v)
		c.rendered[name] = renderClaim(v)
	}
	return c, nil
}

// FuzzParseClaimsAgrees checks parseClaims against parseClaimsMap: same
// verdict, same claims, same claim values and placeholder renderings.
func FuzzParseClaimsAgrees(f *testing.F) {
	for _, s := range []string{
		`{"iss":"https://a","sub":"x","aud":"a","exp":1800000000,"nbf":1,"iat":1,"jti":"j","client_id":"c","scope":"a b"}`,
		`{"exp":1,"scope":"a b"}`, `{"scp":["a b","c"]}`, `{"scp":"a  b"}`, `{"exp":1e999}`, `{"exp":-1e999,"nbf":"x"}`,
		`{"aud":["a",1]}`, `{"aud":"a","exp":1.5}`, `null`, `{"x":{"y":[1,2]}}`, `{}`, ` { "exp" : 12 , "exp":13 } `,
		`{"\u0065xp":5}`, `{"iss":"a\"b","sub":"\u00e9"}`, `{"iss":null,"client_id":"","azp":"z"}`, `{"exp":"123"}`,
		`{"exp":9007199254740993}`, `{"exp":-0}`, `{"scope":" a\tb\u00a0c "}`, `{"iss":1}`, `[1]`, `"x"`, `{"aud":null}`,
		"{\"iss\":\"\xff\"}", `{"scope":null,"scp":["a"]}`, `{"a":[{"b":"}"}],"exp":2}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, payload []byte) {
		got, gerr := parseClaims(payload)
		want, werr := parseClaimsMap(payload)
		if (gerr == nil) != (werr == nil) {
			if werr == nil && len(want.rendered) <= maxClaims && gerr != nil {
				// parseClaims counts repeated members, the map did not.
				if countMembers(payload) > maxClaims {
					return
				}
			}
			t.Fatalf("%q: parseClaims error %v, map parser error %v", payload, gerr, werr)
		}
		if gerr != nil {
			return
		}
		g, w := got, &want.Claims
		if !reflect.DeepEqual(g.Audience, w.Audience) || !reflect.DeepEqual(g.Scopes, w.Scopes) ||
			g.Issuer != w.Issuer || g.Subject != w.Subject || g.ClientID != w.ClientID || g.JTI != w.JTI ||
			g.Expiry != w.Expiry || g.NotBefore != w.NotBefore || g.IssuedAt != w.IssuedAt ||
			g.Scope != w.Scope || g.hasExp != w.hasExp {
			t.Fatalf("%q:\n got  %q %q %q %q %q %v %v %d %d %d %v\n want %q %q %q %q %q %v %v %d %d %d %v", payload,
				g.Issuer, g.Subject, g.ClientID, g.JTI, g.Scope, g.Scopes, g.Audience, g.Expiry, g.NotBefore, g.IssuedAt, g.hasExp,
				w.Issuer, w.Subject, w.ClientID, w.JTI, w.Scope, w.Scopes, w.Audience, w.Expiry, w.NotBefore, w.IssuedAt, w.hasExp)
		}
		m := got.maps()
		if !reflect.DeepEqual(m.values, want.values) || !reflect.DeepEqual(m.rendered, want.rendered) {
			t.Fatalf("%q: claim maps differ:\n got  %v %v\n want %v %v", payload, m.values, m.rendered, want.values, want.rendered)
		}
	})
}

func countMembers(payload []byte) int {
	n, m := 0, members{p: string(payload)}
	for _, _, ok := m.next(); ok; _, _, ok = m.next() {
		n++
	}
	return n
}

package accesstoken

import "testing"

func TestValidScopeToken(t *testing.T) {
	tests := []struct {
		s    string
		want bool
	}{
		{"read", true},
		{"!", true},
		{"~", true},
		{"a#[]b", true},
		{"https://api.example.com/read", true},
		{"", false},
		{" ", false},
		{"a b", false},
		{`"`, false},
		{`\`, false},
		{"\x7f", false},
		{"\x20", false},
		{"tab\t", false},
		{"é", false},
	}
	for _, tt := range tests {
		if got := ValidScopeToken(tt.s); got != tt.want {
			t.Errorf("ValidScopeToken(%q) = %v, want %v", tt.s, got, tt.want)
		}
	}
}

func TestParseConfirmation(t *testing.T) {
	for payload, want := range map[string]*Confirmation{
		`{"exp":1}`:                             nil,
		`{"cnf":null}`:                          nil,
		`{"cnf":{"jkt":"t"}}`:                   {JKT: "t"},
		`{"cnf":{"x5t#S256":"x"}}`:              {X5T: "x"},
		`{"cnf":{"jwk":{"kty":"EC"}}}`:          {Other: true},
		`{"cnf":{"jkt":"t","jku":"https://x"}}`: {JKT: "t", Other: true},
		`{"cnf":{}}`:                            {},
	} {
		c, err := ParseClaims([]byte(payload))
		if err != nil {
			t.Fatalf("%s: %v", payload, err)
		}
		if (c.Confirmation == nil) != (want == nil) || (want != nil && *c.Confirmation != *want) {
			t.Errorf("%s: cnf %+v, want %+v", payload, c.Confirmation, want)
		}
	}
	for _, payload := range []string{`{"cnf":"t"}`, `{"cnf":[]}`, `{"cnf":{"jkt":1}}`, `{"cnf":{"jkt":"a","jkt":"b"}}`} {
		if _, err := ParseClaims([]byte(payload)); err != ErrBadClaims {
			t.Errorf("%s: %v", payload, err)
		}
	}
}

// TestSessionID: sid is read like the other string claims, strictly, and
// a verifier refuses a token whose session was revoked.
func TestSessionID(t *testing.T) {
	c, err := ParseClaims([]byte(`{"sid":"fam","jti":"j"}`))
	if err != nil || c.SessionID != "fam" {
		t.Fatalf("sid: %+v %v", c, err)
	}
	for _, payload := range []string{`{"sid":1}`, `{"sid":["fam"]}`, `{"sid":"a","sid":"a"}`} {
		if _, err := ParseClaims([]byte(payload)); err != ErrBadClaims {
			t.Errorf("%s: %v", payload, err)
		}
	}
	revoked := map[string]bool{"dead": true}
	v := NewVerifier(VerifierConfig{Issuer: "i", AnyAudience: true, SessionRevoked: func(sid string) bool { return revoked[sid] }})
	for sid, want := range map[string]error{"": nil, "live": nil, "dead": ErrRevoked} {
		tok := &Token{Claims: &Claims{Issuer: "i", Expiry: v.cfg.Now().Unix() + 60, hasExp: true, JTI: "j", SessionID: sid}}
		if err := v.Check(tok); err != want {
			t.Errorf("sid %q: %v, want %v", sid, err, want)
		}
	}
}

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

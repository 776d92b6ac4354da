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

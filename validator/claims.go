package validator

import (
	"bytes"
	"encoding/json"
	"math"
	"strconv"
	"strings"
)

// Claims are the claims of a verified access token, as the validator uses
// them. They are immutable once parsed: the token cache shares them between
// requests.
type Claims struct {
	Issuer   string
	Subject  string
	Audience []string
	// ClientID is the client_id claim (RFC 9068), or azp when a remote
	// issuer sends no client_id.
	ClientID string
	JTI      string
	// Expiry, NotBefore and IssuedAt are Unix seconds; NotBefore and
	// IssuedAt are 0 when absent.
	Expiry    int64
	NotBefore int64
	IssuedAt  int64
	// Scopes are the granted scopes: the space-separated scope claim, or
	// when it is absent the scp claim (an array or a space-separated string).
	Scopes []string
	// Scope is Scopes joined by spaces.
	Scope string

	hasExp bool
	// values holds each claim as text: strings as they are, numbers and
	// booleans as JSON text, arrays of those as their elements; it backs
	// the `claim` requirements.
	values map[string][]string
	// rendered holds each claim as a placeholder value: strings as they
	// are, anything else as JSON text.
	rendered map[string]string
}

// maxClaims caps the members of a token's payload.
const maxClaims = 256

// parseClaims decodes a verified payload. Member names match exactly.
func parseClaims(payload []byte) (*Claims, error) {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(payload, &raw); err != nil || raw == nil || len(raw) > maxClaims {
		return nil, errBadClaims
	}
	c := &Claims{
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

// numericDate reads a NumericDate (RFC 7519 §2): seconds, possibly with a
// fraction, which is dropped.
func numericDate(v json.RawMessage) (int64, error) {
	var n json.Number
	if json.Unmarshal(v, &n) != nil {
		return 0, errBadClaims
	}
	f, err := strconv.ParseFloat(string(n), 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, errBadClaims
	}
	switch {
	case f >= math.MaxInt64:
		return math.MaxInt64, nil
	case f <= math.MinInt64:
		return math.MinInt64, nil
	}
	return int64(math.Floor(f)), nil
}

// stringOrList reads a claim that is a string or an array of strings.
func stringOrList(v json.RawMessage) ([]string, error) {
	var one string
	if json.Unmarshal(v, &one) == nil {
		return []string{one}, nil
	}
	var many []string
	if json.Unmarshal(v, &many) != nil {
		return nil, errBadClaims
	}
	return many, nil
}

// claimValues gives the values a `claim` requirement is compared with.
func claimValues(v json.RawMessage) []string {
	var list []json.RawMessage
	if json.Unmarshal(v, &list) != nil {
		list = []json.RawMessage{v}
	}
	out := make([]string, 0, len(list))
	for _, e := range list {
		var s string
		if json.Unmarshal(e, &s) == nil {
			out = append(out, s)
			continue
		}
		e = bytes.TrimSpace(e)
		if len(e) > 0 && e[0] != '{' && e[0] != '[' && !bytes.Equal(e, []byte("null")) {
			out = append(out, string(e)) // number or boolean
		}
	}
	return out
}

// renderClaim gives a claim's placeholder value.
func renderClaim(v json.RawMessage) string {
	var s string
	if json.Unmarshal(v, &s) == nil {
		return s
	}
	var buf bytes.Buffer
	if json.Compact(&buf, v) != nil {
		return string(v)
	}
	return buf.String()
}

// Claim returns a claim as its placeholder renders it: strings as they are,
// anything else as compact JSON text.
func (c *Claims) Claim(name string) (string, bool) {
	v, ok := c.rendered[name]
	return v, ok
}

// hasScope reports whether the token was granted scope s.
func (c *Claims) hasScope(s string) bool {
	for _, g := range c.Scopes {
		if g == s {
			return true
		}
	}
	return false
}

// hasAudience reports whether aud names one of want.
func (c *Claims) hasAudience(want []string) bool {
	for _, a := range c.Audience {
		for _, w := range want {
			if a == w {
				return true
			}
		}
	}
	return false
}

// matches reports whether the claim name has one of want among its values.
func (c *Claims) matches(name string, want []string) bool {
	for _, v := range c.values[name] {
		for _, w := range want {
			if v == w {
				return true
			}
		}
	}
	return false
}

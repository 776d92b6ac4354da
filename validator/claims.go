package validator

import (
	"bytes"
	"encoding/json"
	"math"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"
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
	// payload is the JSON payload; the string claims above are substrings
	// of it when they hold no escapes, so a cached token is a handful of
	// objects for the garbage collector, not dozens.
	payload string
	// all holds every claim's values, made from payload the first time a
	// `claim` requirement or a {http.auth.user.claims.*} placeholder needs
	// them: most routes never do.
	allOnce sync.Once
	all     claimMaps
}

// claimMaps are every claim of a token in the two forms routes use.
type claimMaps struct {
	// values holds each claim as text: strings as they are, numbers and
	// booleans as JSON text, arrays of those as their elements; it backs
	// the `claim` requirements.
	values map[string][]string
	// rendered holds each claim as a placeholder value: strings as they
	// are, anything else as JSON text.
	rendered map[string]string
}

// maps returns every claim, decoding them once.
func (c *Claims) maps() *claimMaps {
	c.allOnce.Do(func() {
		var raw map[string]json.RawMessage
		// The payload parsed as an object before, so this cannot fail.
		_ = json.Unmarshal([]byte(c.payload), &raw)
		c.all.values = make(map[string][]string, len(raw))
		c.all.rendered = make(map[string]string, len(raw))
		for name, v := range raw {
			c.all.values[name] = claimValues(v)
			c.all.rendered[name] = renderClaim(v)
		}
	})
	return &c.all
}

// maxClaims caps the members of a token's payload.
const maxClaims = 256

// parseClaims decodes a verified payload. Member names match exactly (after
// JSON unescaping); of a repeated member the last one counts, as with
// encoding/json. Only the registered claims the validator reads are decoded
// here; the others wait in payload until a route asks for them.
func parseClaims(payload []byte) (*Claims, error) {
	if !json.Valid(payload) {
		return nil, errBadClaims
	}
	p := string(payload)
	// Spans of the members read here: raw JSON values within p.
	var iss, sub, jti, clientID, azp, exp, nbf, iat, aud, scope, scp string
	sc := members{p: p}
	for n := 0; ; n++ {
		name, val, ok := sc.next()
		if !ok {
			break
		}
		if n >= maxClaims {
			return nil, errBadClaims
		}
		switch name {
		case "iss":
			iss = val
		case "sub":
			sub = val
		case "jti":
			jti = val
		case "client_id":
			clientID = val
		case "azp":
			azp = val
		case "exp":
			exp = val
		case "nbf":
			nbf = val
		case "iat":
			iat = val
		case "aud":
			aud = val
		case "scope":
			scope = val
		case "scp":
			scp = val
		}
	}
	if sc.err != nil {
		return nil, sc.err
	}
	var err error
	c := &Claims{payload: p}
	for _, f := range []struct {
		span string
		dst  *string
	}{{iss, &c.Issuer}, {sub, &c.Subject}, {jti, &c.JTI}, {clientID, &c.ClientID}} {
		if f.span != "" {
			if *f.dst, err = jsonString(f.span); err != nil {
				return nil, err
			}
		}
	}
	if c.ClientID == "" && azp != "" {
		if c.ClientID, err = jsonString(azp); err != nil {
			return nil, err
		}
	}
	if exp != "" {
		if c.Expiry, err = numericSpan(exp); err != nil {
			return nil, err
		}
		c.hasExp = true
	}
	if nbf != "" {
		if c.NotBefore, err = numericSpan(nbf); err != nil {
			return nil, err
		}
	}
	if iat != "" {
		if c.IssuedAt, err = numericSpan(iat); err != nil {
			return nil, err
		}
	}
	if aud != "" {
		if aud[0] == '"' {
			one, err := jsonString(aud)
			if err != nil {
				return nil, err
			}
			c.Audience = []string{one}
		} else if c.Audience, err = stringOrList(json.RawMessage(aud)); err != nil {
			return nil, err
		}
	}
	switch {
	case scope != "":
		s, err := jsonString(scope)
		if err != nil {
			return nil, err
		}
		c.Scopes = strings.Fields(s)
		if normalScope(s) {
			c.Scope = s
		} else {
			c.Scope = strings.Join(c.Scopes, " ")
		}
	case scp != "":
		l, err := stringOrList(json.RawMessage(scp))
		if err != nil {
			return nil, err
		}
		for _, s := range l {
			c.Scopes = append(c.Scopes, strings.Fields(s)...)
		}
		c.Scope = strings.Join(c.Scopes, " ")
	}
	return c, nil
}

// members iterates over the members of the JSON object p, which must be
// valid JSON (json.Valid); anything but an object is an error.
type members struct {
	p       string
	i       int
	started bool
	err     error
}

// next returns the next member's name (unescaped) and raw value.
func (m *members) next() (name, val string, ok bool) {
	p := m.p
	if !m.started {
		m.started = true
		i := skipSpace(p, 0)
		if i >= len(p) || p[i] != '{' {
			m.err = errBadClaims
			return "", "", false
		}
		m.i = skipSpace(p, i+1)
	} else {
		if m.i >= len(p) || p[m.i] != ',' {
			return "", "", false // '}', or an earlier error
		}
		m.i = skipSpace(p, m.i+1)
	}
	i := m.i
	if p[i] == '}' {
		return "", "", false
	}
	end := endOfString(p, i)
	name = p[i+1 : end-1]
	if strings.IndexByte(name, '\\') >= 0 {
		var unescaped string // a variable of its own: only this branch allocates
		if json.Unmarshal([]byte(p[i:end]), &unescaped) != nil {
			m.err, m.i = errBadClaims, len(p)
			return "", "", false
		}
		name = unescaped
	}
	i = skipSpace(p, skipSpace(p, end)+1) // past ':'
	end = endOfValue(p, i)
	m.i = skipSpace(p, end)
	return name, p[i:end], true
}

func skipSpace(p string, i int) int {
	for i < len(p) && (p[i] == ' ' || p[i] == '\t' || p[i] == '\n' || p[i] == '\r') {
		i++
	}
	return i
}

// endOfString returns the index after the string starting at p[i] == '"'.
func endOfString(p string, i int) int {
	for i++; i < len(p); i++ {
		switch p[i] {
		case '\\':
			i++
		case '"':
			return i + 1
		}
	}
	return len(p)
}

// endOfValue returns the index after the value starting at p[i].
func endOfValue(p string, i int) int {
	switch p[i] {
	case '"':
		return endOfString(p, i)
	case '{', '[':
		depth := 0
		for i < len(p) {
			switch p[i] {
			case '"':
				i = endOfString(p, i)
				continue
			case '{', '[':
				depth++
			case '}', ']':
				if depth--; depth == 0 {
					return i + 1
				}
			}
			i++
		}
		return len(p)
	}
	for i < len(p) {
		switch p[i] {
		case ',', '}', ']', ' ', '\t', '\n', '\r':
			return i
		}
		i++
	}
	return i
}

// jsonString decodes a raw JSON value that must be a string (or null, which
// is ""), as json.Unmarshal into a string does. Without escapes the result
// shares the payload's memory.
func jsonString(span string) (string, error) {
	if span == "null" {
		return "", nil
	}
	if span[0] != '"' {
		return "", errBadClaims
	}
	if in := span[1 : len(span)-1]; strings.IndexByte(in, '\\') < 0 && utf8.ValidString(in) {
		return in, nil
	}
	var s string
	if json.Unmarshal([]byte(span), &s) != nil {
		return "", errBadClaims
	}
	return s, nil
}

// numericSpan reads a NumericDate; plain integers of up to 15 digits (every
// real timestamp) skip the float conversion, whose result they equal.
func numericSpan(span string) (int64, error) {
	digits := strings.TrimPrefix(span, "-")
	if len(digits) > 0 && len(digits) <= 15 && strings.Trim(digits, "0123456789") == "" {
		return strconv.ParseInt(span, 10, 64)
	}
	return numericDate(json.RawMessage(span))
}

// normalScope reports whether s is already its scopes joined by single
// spaces.
func normalScope(s string) bool {
	if s == "" {
		return true
	}
	if s[0] == ' ' || s[len(s)-1] == ' ' {
		return false
	}
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == ' ' && s[i+1] == ' ':
			return false
		case c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r' || c >= utf8.RuneSelf:
			return false
		}
	}
	return true
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
	v, ok := c.maps().rendered[name]
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
	for _, v := range c.maps().values[name] {
		for _, w := range want {
			if v == w {
				return true
			}
		}
	}
	return false
}

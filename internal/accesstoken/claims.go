package accesstoken

import (
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/tokengate/tokengate/internal/jose"
)

// Claims are the claims of an access token (RFC 9068 §2.2): what the
// issuer signs, what a verifier reads, and what introspection answers
// (the JSON tags are the claim names, RFC 7662 uses the same ones).
//
// Claims decoded by ParseClaims are immutable: the validator's token cache
// shares them between requests.
type Claims struct {
	Issuer   string   `json:"iss,omitempty"`
	Subject  string   `json:"sub,omitempty"`
	Audience Audience `json:"aud,omitempty"`
	// Expiry, NotBefore and IssuedAt are Unix seconds; NotBefore and
	// IssuedAt are 0 when absent.
	Expiry    int64  `json:"exp,omitempty"`
	NotBefore int64  `json:"nbf,omitempty"`
	IssuedAt  int64  `json:"iat,omitempty"`
	JTI       string `json:"jti,omitempty"`
	// ClientID is the client_id claim (RFC 9068), or azp when a remote
	// issuer sends no client_id.
	ClientID string `json:"client_id,omitempty"`
	// SessionID is the sid claim (OpenID Connect's session id): the
	// refresh token family a token was issued with, a family being one
	// grant session. Revoking the family revokes every token naming it,
	// with one revocation entry whatever their number.
	SessionID string `json:"sid,omitempty"`
	// Scope is the granted scopes joined by single spaces.
	Scope string `json:"scope,omitempty"`
	// Confirmation is the cnf claim (RFC 7800): the key a
	// sender-constrained token is bound to. nil for a bearer token.
	Confirmation *Confirmation `json:"cnf,omitempty"`

	// Scopes are the granted scopes as ParseClaims found them: the
	// space-separated scope claim, or when it is absent the scp claim (an
	// array or a space-separated string).
	Scopes []string `json:"-"`

	// Extra are further claims an issuer signs after the ones above, as
	// JSON object members each preceded by a comma (`,"tier":"gold"`); the
	// issuer has checked that none repeats a claim above. ParseClaims
	// leaves it empty: a verifier reads every claim with Claim and Values.
	Extra []byte `json:"-"`

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

// Confirmation is the cnf claim of a sender-constrained token: the key
// whose possession a request must prove.
type Confirmation struct {
	// JKT is the RFC 7638 SHA-256 thumbprint of the client's DPoP key
	// (RFC 9449 §6.1), base64url.
	JKT string `json:"jkt,omitempty"`
	// X5T is the SHA-256 thumbprint of the client's TLS certificate
	// (RFC 8705 §3.1), base64url.
	X5T string `json:"x5t#S256,omitempty"`
	// Other is set when cnf holds a confirmation method of neither kind: no
	// request can satisfy it, so the token is never accepted.
	Other bool `json:"-"`
}

// X5T is the cnf.x5t#S256 of a TLS client certificate (RFC 8705 §3.1):
// the base64url SHA-256 of its DER.
func X5T(cert *x509.Certificate) string {
	sum := sha256.Sum256(cert.Raw)
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// Audience is the `aud` claim: written as a string when it holds one value
// (the form most libraries expect), an array otherwise.
type Audience []string

// MarshalJSON writes one audience as a string.
func (a Audience) MarshalJSON() ([]byte, error) {
	if len(a) == 1 {
		return json.Marshal(a[0])
	}
	return json.Marshal([]string(a))
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
	// raw holds each claim's JSON, for paths into nested objects
	// (claimpath.go).
	raw map[string]json.RawMessage
}

// maps returns every claim, decoding them once.
func (c *Claims) maps() *claimMaps {
	c.allOnce.Do(func() {
		var raw map[string]json.RawMessage
		// The payload parsed as an object with unique members before, so
		// this cannot fail.
		_ = json.Unmarshal([]byte(c.payload), &raw)
		c.all.raw = raw
		c.all.values = make(map[string][]string, len(raw))
		c.all.rendered = make(map[string]string, len(raw))
		for name, v := range raw {
			c.all.values[name] = claimValues(v)
			c.all.rendered[name] = renderClaim(v)
		}
	})
	return &c.all
}

// Claim returns a claim as its placeholder renders it: strings as they are,
// anything else as compact JSON text. name may be a path into nested
// objects (claimpath.go).
func (c *Claims) Claim(name string) (string, bool) {
	if v, ok := c.maps().rendered[name]; ok {
		return v, true
	}
	v, ok := c.lookup(name)
	if !ok {
		return "", false
	}
	return renderClaim(v), true
}

// Values returns the values a `claim` requirement compares with: a string
// as it is, a number or boolean as its JSON text, an array as those of its
// elements. name may be a path into nested objects (claimpath.go).
func (c *Claims) Values(name string) []string {
	if v, ok := c.maps().values[name]; ok {
		return v
	}
	v, ok := c.lookup(name)
	if !ok {
		return nil
	}
	return claimValues(v)
}

// HasScope reports whether the token was granted scope s.
func (c *Claims) HasScope(s string) bool {
	for _, g := range c.Scopes {
		if g == s {
			return true
		}
	}
	return false
}

// HasAudience reports whether aud names one of want.
func (c *Claims) HasAudience(want []string) bool {
	for _, a := range c.Audience {
		for _, w := range want {
			if a == w {
				return true
			}
		}
	}
	return false
}

// maxClaims caps the members of a token's payload.
const maxClaims = 256

// maxNumericDate bounds exp, nbf and iat: 2^62 seconds is far beyond any
// real time, below the int64 overflow of the conversion and of time.Unix,
// and the bound go-jose v4 applies.
const maxNumericDate = 1 << 62

// ParseClaims decodes a verified payload strictly: it must be a JSON object
// whose member names (compared exactly, after JSON unescaping) are unique;
// exp, nbf and iat must be numbers below 2^62 in magnitude; aud and scp a
// string or an array of strings; iss, sub, jti, client_id, azp and scope
// strings (or null). This is what go-jose v4 refuses, so that no token
// means one thing here and another to a standard library; a differential
// fuzz test keeps the two in step.
//
// It reads the members from spans of one copy of the payload instead of
// through encoding/json, whose struct decoding matches names
// case-insensitively and takes the last of duplicate members; done as
// strictly with json.Decoder it costs 4 to 5 times as much and 136
// allocations against 4 (BenchmarkParseClaims 1.9-2.6 µs,
// BenchmarkParseClaimsEncodingJSON 8-13 µs, same run; BENCHMARKS.md).
// The allocations matter more than the time: a cached token's claims are
// a handful of heap objects, not dozens, for the garbage collector.
func ParseClaims(payload []byte) (*Claims, error) {
	if !json.Valid(payload) {
		return nil, ErrBadClaims
	}
	p := string(payload)
	// Spans of the members read here: raw JSON values within p.
	var iss, sub, jti, sid, clientID, azp, exp, nbf, iat, aud, scope, scp, cnf string
	sc := jose.NewObject(p, maxClaims)
	for {
		name, val, ok := sc.Next()
		if !ok {
			break
		}
		switch name {
		case "iss":
			iss = val
		case "sub":
			sub = val
		case "jti":
			jti = val
		case "sid":
			sid = val
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
		case "cnf":
			cnf = val
		}
	}
	if sc.Bad() {
		return nil, ErrBadClaims
	}
	var err error
	c := &Claims{payload: p}
	for _, f := range []struct {
		span string
		dst  *string
	}{{iss, &c.Issuer}, {sub, &c.Subject}, {jti, &c.JTI}, {sid, &c.SessionID}, {clientID, &c.ClientID}} {
		if f.span != "" {
			if *f.dst, err = jsonString(f.span); err != nil {
				return nil, err
			}
		}
	}
	if azp != "" {
		a, err := jsonString(azp)
		if err != nil {
			return nil, err
		}
		if c.ClientID == "" {
			c.ClientID = a
		}
	}
	if exp != "" {
		if c.Expiry, err = numericDate(exp); err != nil {
			return nil, err
		}
		c.hasExp = true
	}
	if nbf != "" {
		if c.NotBefore, err = numericDate(nbf); err != nil {
			return nil, err
		}
	}
	if iat != "" {
		if c.IssuedAt, err = numericDate(iat); err != nil {
			return nil, err
		}
	}
	if aud != "" {
		if c.Audience, err = stringOrList(aud); err != nil {
			return nil, err
		}
	}
	if cnf != "" && cnf != "null" {
		if c.Confirmation, err = parseConfirmation(cnf); err != nil {
			return nil, err
		}
	}
	var scpList []string
	if scp != "" {
		// Checked even when scope wins, so that a malformed scp is refused
		// whatever else the token holds.
		if scpList, err = stringOrList(scp); err != nil {
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
		for _, s := range scpList {
			c.Scopes = append(c.Scopes, strings.Fields(s)...)
		}
		c.Scope = strings.Join(c.Scopes, " ")
	}
	return c, nil
}

// parseConfirmation reads a cnf claim: an object with unique members, of
// which jkt and x5t#S256 must be strings when present. A member of any
// other name marks a method this package cannot check (Other).
func parseConfirmation(span string) (*Confirmation, error) {
	if span[0] != '{' {
		return nil, ErrBadClaims
	}
	cf := &Confirmation{}
	sc := jose.NewObject(span, maxClaims)
	for {
		name, val, ok := sc.Next()
		if !ok {
			break
		}
		var err error
		switch name {
		case "jkt":
			cf.JKT, err = jsonString(val)
		case "x5t#S256":
			cf.X5T, err = jsonString(val)
		default:
			cf.Other = true
		}
		if err != nil {
			return nil, err
		}
	}
	if sc.Bad() {
		return nil, ErrBadClaims
	}
	return cf, nil
}

// jsonString decodes a raw JSON value that must be a string (or null,
// which is ""), as json.Unmarshal into a string does (jose.String).
func jsonString(span string) (string, error) {
	s, ok := jose.String(span)
	if !ok {
		return "", ErrBadClaims
	}
	return s, nil
}

// numericDate reads a NumericDate (RFC 7519 §2): a JSON number of seconds,
// never a string, below 2^62 in magnitude; a fraction is dropped. Plain
// integers of up to 15 digits (every real timestamp) skip the float
// conversion, whose result they equal.
func numericDate(span string) (int64, error) {
	if c := span[0]; c != '-' && (c < '0' || c > '9') {
		return 0, ErrBadClaims // a string, null, an object...
	}
	digits := strings.TrimPrefix(span, "-")
	if len(digits) > 0 && len(digits) <= 15 && strings.Trim(digits, "0123456789") == "" {
		return strconv.ParseInt(span, 10, 64)
	}
	f, err := strconv.ParseFloat(span, 64)
	if err != nil || !(f > -maxNumericDate && f < maxNumericDate) {
		return 0, ErrBadClaims
	}
	return int64(f), nil
}

// stringOrList reads a claim that is a string or an array of strings;
// null, and null or other values among the elements, are refused.
func stringOrList(span string) ([]string, error) {
	if span[0] == '"' {
		one, err := jsonString(span)
		if err != nil {
			return nil, err
		}
		return []string{one}, nil
	}
	var many []json.RawMessage
	if span[0] != '[' || json.Unmarshal([]byte(span), &many) != nil {
		return nil, ErrBadClaims
	}
	out := make([]string, 0, len(many))
	for _, e := range many {
		e = bytes.TrimSpace(e)
		if len(e) == 0 || e[0] != '"' {
			return nil, ErrBadClaims
		}
		s, err := jsonString(string(e))
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
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

// ValidScopeToken reports whether s is a scope-token of RFC 6749 §3.3:
// one or more characters from %x21 / %x23-5B / %x5D-7E.
func ValidScopeToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x21 || c > 0x7e || c == '"' || c == '\\' {
			return false
		}
	}
	return true
}

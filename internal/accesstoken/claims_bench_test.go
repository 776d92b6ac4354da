package accesstoken

import (
	"bytes"
	"encoding/json"
	"testing"
)

var benchPayload = []byte(`{"iss":"http://localhost:9080","sub":"plain-client","aud":"http://localhost:9080","exp":1800003600,"nbf":1800000000,"iat":1800000000,"jti":"8kB0mQ2z1Yx7c3VnR4sTqA","client_id":"plain-client","scope":"reports:read"}`)

// BenchmarkParseClaims is the claims decoding of a verified token.
func BenchmarkParseClaims(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseClaims(benchPayload); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkParseClaimsEncodingJSON is what ParseClaims would cost written
// with encoding/json as strictly: one json.Decoder pass over the members
// (exact names, duplicates refused), each read claim decoded into its
// type. encoding/json's struct decoding cannot be used: it matches names
// case-insensitively and takes the last of duplicate members.
func BenchmarkParseClaimsEncodingJSON(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if err := parseClaimsEncodingJSON(benchPayload); err != nil {
			b.Fatal(err)
		}
	}
}

func parseClaimsEncodingJSON(payload []byte) error {
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.UseNumber()
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return ErrBadClaims
	}
	var c Claims
	seen := make(map[string]bool, 16)
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return ErrBadClaims
		}
		name := t.(string)
		if seen[name] {
			return ErrBadClaims
		}
		seen[name] = true
		var dst any
		var n json.Number
		var raw json.RawMessage
		switch name {
		case "iss":
			dst = &c.Issuer
		case "sub":
			dst = &c.Subject
		case "jti":
			dst = &c.JTI
		case "client_id":
			dst = &c.ClientID
		case "scope":
			dst = &c.Scope
		case "exp", "nbf", "iat":
			dst = &n
		default:
			dst = &raw
		}
		if err := dec.Decode(dst); err != nil {
			return ErrBadClaims
		}
		if name == "aud" {
			if c.Audience, err = stringOrList(string(raw)); err != nil {
				return err
			}
		}
	}
	return nil
}

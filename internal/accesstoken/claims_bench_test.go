package accesstoken

import "testing"

// BenchmarkParseClaims is the claims decoding of a verified token.
func BenchmarkParseClaims(b *testing.B) {
	payload := []byte(`{"iss":"http://localhost:9080","sub":"plain-client","aud":"http://localhost:9080","exp":1800003600,"nbf":1800000000,"iat":1800000000,"jti":"8kB0mQ2z1Yx7c3VnR4sTqA","client_id":"plain-client","scope":"reports:read"}`)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseClaims(payload); err != nil {
			b.Fatal(err)
		}
	}
}

// Package jose reads the parts of JOSE's compact serialization (RFC 7515)
// that tokengate checks on every request, strictly and without
// allocating: the split of a compact JWS into canonical base64url parts
// (compact.go), JSON objects with unique members (json.go), and the
// signatures of the algorithms tokens and DPoP proofs use (signature.go).
//
// Access tokens (internal/accesstoken) and DPoP proofs (internal/dpop) both
// read their headers, claims and signatures with it, so that both refuse
// the same malformed input; the rules about what a token or proof must
// hold stay with them.
package jose

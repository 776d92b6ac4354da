// Package tokenhandler serves an issuer's HTTP endpoints: the token
// endpoint, the JWKS and the RFC 8414 metadata.
package tokenhandler

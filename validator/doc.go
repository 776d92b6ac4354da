// Package validator is the bearer_auth middleware: it checks the OAuth 2.0
// bearer tokens (RFC 6750) of requests on guarded routes and refuses bad
// ones with RFC 6750 answers, before they reach the upstream.
//
// Tokens are JWT access tokens (RFC 9068) in compact JWS form, verified
// with the keys of one trusted issuer: an oauth_issuer of the same Caddy
// instance (keys read in process) or a remote issuer (keys from its JWKS,
// found by RFC 8414 / OpenID Connect discovery or configured). The
// algorithm comes from the key, never from the token, and no URL or key
// named in a token is ever used.
//
//	route /reports/* {
//		bearer_auth {
//			audience legacy-api
//			scopes   reports:read
//		}
//		reverse_proxy legacy:8080 {
//			header_up X-Client-Id {http.auth.user.id}
//		}
//	}
//
// The check of a request reads top to bottom in verify.go (credential,
// verified-token cache, policy) and internal/accesstoken's verify.go (the
// token itself). See Handler for the options and placeholders, and
// Handler.UnmarshalCaddyfile for the Caddyfile syntax.
package validator

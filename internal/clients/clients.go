// Package clients holds an issuer's OAuth clients: their configuration, the
// grants and scopes they are allowed, and the check of their secrets.
package clients

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/caddyserver/caddy/v2"

	"github.com/tokengate/tokengate/internal/accesstoken"
	"github.com/tokengate/tokengate/internal/remotekeys"
)

// Grant types a client may be allowed.
const (
	GrantClientCredentials = "client_credentials"
	GrantRefreshToken      = "refresh_token"
)

// Config is one client of an issuer (the `client` block of `oauth_issuer`).
type Config struct {
	// ClientID identifies the client; it becomes the tokens' `sub` and
	// `client_id` claims. Required and unique within an issuer.
	ClientID string `json:"client_id,omitempty"`

	// Secret is the client secret in plain text, typically a placeholder
	// such as `{env.REPORTS_SECRET}`, replaced when the config loads.
	// Exactly one of secret and secret_hash is required.
	Secret string `json:"secret,omitempty"`

	// SecretHash is the client secret hashed by `caddy hash-password`
	// (bcrypt or argon2id). Exactly one of secret and secret_hash is required.
	SecretHash string `json:"secret_hash,omitempty"`

	// Scopes the client may ask for. A request without a `scope`
	// parameter is granted all of them. Default: none (tokens carry no scope).
	Scopes []string `json:"scopes,omitempty"`

	// Audience is the `aud` of the client's tokens. A request's `resource`
	// parameter (RFC 8707) may narrow it. Default: the issuer URL.
	Audience []string `json:"audience,omitempty"`

	// GrantTypes the client may use: `client_credentials` and/or
	// `refresh_token`. Only clients allowed `refresh_token` receive
	// refresh tokens. Default: `client_credentials`.
	GrantTypes []string `json:"grant_types,omitempty"`

	// IntrospectAny lets the client introspect (RFC 7662) tokens of any
	// client, as a resource server needs to. Without it a client may
	// introspect only its own tokens; others' are answered
	// `{"active": false}`. Default: false.
	IntrospectAny bool `json:"introspect_any,omitempty"`

	// TokenTTL is the lifetime of this client's access tokens.
	// Default: the issuer's token_ttl.
	TokenTTL caddy.Duration `json:"token_ttl,omitempty"`

	// Claims are claims of the operator's own, copied into every access
	// token of the client: strings, numbers, booleans, arrays or objects,
	// by name. The registered and protocol claims the issuer sets
	// (ReservedClaims) are refused. Upstreams see each one as
	// {http.auth.user.claims.NAME}. Default: none.
	Claims map[string]json.RawMessage `json:"claims,omitempty"`

	// claimsJSON is Claims encoded once, as the members a token's payload
	// ends with (see ClaimsJSON).
	claimsJSON []byte

	// JWKS is an inline JWK set of the client's public keys, for
	// private_key_jwt client authentication (RFC 7523 §2.2). Each key's
	// algorithm is its `alg`, or the one its kind implies (RSA: RS256).
	// Default: none.
	JWKS json.RawMessage `json:"jwks,omitempty"`

	// PublicKey is a PEM file holding the client's public key(s) or
	// certificate(s), for private_key_jwt. Default: none.
	PublicKey string `json:"public_key,omitempty"`

	// JWKSURI is where the client publishes its JWK set, for
	// private_key_jwt (RFC 7591's jwks_uri): an https URL, or plain http
	// to this machine. The set is fetched in the background at start,
	// refreshed every 5 minutes, and refetched (at most once a second,
	// backing off to once every 30 s) when an assertion names a kid it
	// does not hold, so a key the client rotates in is seen at once.
	// Redirects are not followed; the set may hold at most 100 keys in
	// 1 MiB. Not together with jwks or public_key. Default: none.
	JWKSURI string `json:"jwks_uri,omitempty"`

	// TLSClientAuthSubjectDN and TLSClientAuthSANDNS register the client
	// for tls_client_auth (RFC 8705 §2.1): a client certificate whose chain
	// Caddy's TLS client_auth verified, with this subject DN (as Go writes
	// it, e.g. "CN=billing,O=Example") or this DNS SAN. Default: none.
	TLSClientAuthSubjectDN string `json:"tls_client_auth_subject_dn,omitempty"`
	TLSClientAuthSANDNS    string `json:"tls_client_auth_san_dns,omitempty"`

	// TLSCertificate is a PEM file of the client's self-signed
	// certificate(s), for self_signed_tls_client_auth (RFC 8705 §2.2),
	// matched by thumbprint. Default: none.
	TLSCertificate string `json:"tls_certificate,omitempty"`

	// AuthMethods limits how the client may authenticate (RFC 7591's
	// token_endpoint_auth_method, as a list): client_secret_basic,
	// client_secret_post, private_key_jwt, tls_client_auth,
	// self_signed_tls_client_auth. Each needs what it checks registered
	// (a secret, keys, a subject or a certificate). Default: every method
	// the client registered something for.
	AuthMethods []string `json:"token_endpoint_auth_methods,omitempty"`

	// RequireBinding makes every token of the client sender-constrained:
	// `dpop` (RFC 9449) refuses a token request without a valid DPoP proof
	// with `invalid_dpop_proof`; `mtls` (RFC 8705) one not authenticated by
	// the client's TLS certificate; `any` accepts either. Default: ""
	// (bearer tokens unless the client sends a proof or uses mTLS).
	RequireBinding string `json:"require_binding,omitempty"`
}

// Client authentication methods (RFC 7591 §2, RFC 7523, RFC 8705).
const (
	AuthSecretBasic   = "client_secret_basic"
	AuthSecretPost    = "client_secret_post"
	AuthPrivateKeyJWT = "private_key_jwt"
	AuthTLS           = "tls_client_auth"
	AuthSelfSignedTLS = "self_signed_tls_client_auth"
)

// MayAuthenticate reports whether the client may use authentication
// method m (AuthMethods; any method when the list is empty, the
// credential checks deciding).
func (c *Config) MayAuthenticate(m string) bool {
	return len(c.AuthMethods) == 0 || slices.Contains(c.AuthMethods, m)
}

// Bindings a client may require of its tokens.
const (
	BindingDPoP = "dpop"
	BindingMTLS = "mtls"
	BindingAny  = "any"
)

// ReservedClaims are the claims the issuer sets itself, or that gates
// read in their place; a client's own claims may not use these names. The
// list is RFC 9068's (iss, sub, aud, exp, nbf, iat, jti, client_id,
// scope); cnf (RFC 7800), which binds a token to a key: a configured cnf
// would bind every token of the client to a key nobody proved to hold; and
// scp and azp, which gates read when scope or client_id is absent: a
// client without scopes and a configured scp would pass scope checks.
var ReservedClaims = []string{"iss", "sub", "aud", "exp", "nbf", "iat", "jti", "sid", "client_id", "scope", "cnf", "scp", "azp"}

// MaxClaimsSize bounds a client's own claims, encoded, in bytes: they go
// into every token, and a token over accesstoken.MaxTokenSize would be
// refused by every gate.
const MaxClaimsSize = 4096

// unreserved are the characters of a runtime client's id: RFC 3986's
// unreserved ones, which need no escaping in a URL.
const unreserved = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~"

// MaxIDLength bounds a client_id, in bytes. The endpoints refuse a longer
// one before any other work, so an attacker cannot make the throttle or the
// logs hold ids as large as a request body.
const MaxIDLength = 256

// An OptionError is a mistake in a client's configuration. Option is the
// option at fault as the Caddyfile and JSON spell it ("" for the client as
// a whole), and Index the client's place in the list given to
// ValidateList: the Caddyfile parser uses both to point at the line.
type OptionError struct {
	Index    int
	ClientID string
	Option   string
	Err      error
}

func (e *OptionError) Error() string {
	if e.Option == "" {
		return fmt.Sprintf("client %q: %v", e.ClientID, e.Err)
	}
	return fmt.Sprintf("client %q: %s: %v", e.ClientID, e.Option, e.Err)
}

func (e *OptionError) Unwrap() error { return e.Err }

// ValidateList checks a list of clients: each one (see Validate), and that
// no two share a client id.
func ValidateList(cfgs []*Config, replaced bool) error {
	seen := make(map[string]bool, len(cfgs))
	for i, c := range cfgs {
		if c == nil {
			return &OptionError{Index: i, Err: errors.New("empty client")}
		}
		if err := c.Validate(replaced); err != nil {
			var oe *OptionError
			if errors.As(err, &oe) {
				oe.Index = i
			}
			return err
		}
		if seen[c.ClientID] {
			return &OptionError{Index: i, ClientID: c.ClientID, Err: errors.New("defined more than once")}
		}
		seen[c.ClientID] = true
	}
	return nil
}

// Validate checks one client's configuration. With replaced false it
// checks the config as written, before placeholders such as {env.HASH} are
// replaced: a value still holding one is checked at provision, when
// Validate runs again with replaced true. The errors are *OptionError.
func (c *Config) Validate(replaced bool) error { return c.validate(replaced, false) }

// ValidateRuntime checks a client made through the admin API: the rules
// of Validate, except that it has no secret of its own (the server makes
// them, and keeps only their hashes).
func (c *Config) ValidateRuntime() error { return c.validate(true, true) }

func (c *Config) validate(replaced, runtime bool) error {
	fail := func(option, format string, args ...any) error {
		return &OptionError{ClientID: c.ClientID, Option: option, Err: fmt.Errorf(format, args...)}
	}
	if c.ClientID == "" {
		return fail("client_id", "required")
	}
	if len(c.ClientID) > MaxIDLength {
		return fail("client_id", "longer than %d bytes", MaxIDLength)
	}
	if strings.ContainsAny(c.ClientID, ":\x00") || strings.TrimSpace(c.ClientID) != c.ClientID {
		return fail("client_id", "must not contain ':' or surrounding spaces")
	}
	if runtime && strings.Trim(c.ClientID, unreserved) != "" {
		// It is a path segment of the admin API and of the CLI's URLs.
		return fail("client_id", "a client made at run time takes letters, digits, '.', '_', '~' and '-' only")
	}
	switch {
	case runtime && c.Secret != "":
		return fail("secret", "made by the server (create or rotate-secret), never given")
	case runtime && c.SecretHash != "":
		return fail("secret_hash", "made by the server (create or rotate-secret), never given")
	case runtime:
	case c.Secret != "" && c.SecretHash != "":
		return fail("secret_hash", "secret and secret_hash are mutually exclusive")
	case c.Secret == "" && c.SecretHash == "" && !c.hasKeys():
		return fail("", "one of secret, secret_hash, jwks, jwks_uri or public_key is required, or a TLS client certificate (an empty {env.…} placeholder gives an empty secret)")
	}
	if c.JWKSURI != "" {
		if len(c.JWKS) > 0 || c.PublicKey != "" {
			return fail("jwks_uri", "not together with jwks or public_key: the keys come from one place")
		}
		if err := remotekeys.CheckClientJWKSURL(c.JWKSURI); err != nil {
			return fail("jwks_uri", "%v", err)
		}
	}
	if c.SecretHash != "" && (replaced || !HoldsPlaceholder(c.SecretHash)) {
		if _, err := comparerFor(c.SecretHash); err != nil {
			return fail("secret_hash", "%v", err)
		}
	}
	for _, s := range c.Scopes {
		if !accesstoken.ValidScopeToken(s) {
			return fail("scopes", "invalid scope %q", s)
		}
	}
	for _, a := range c.Audience {
		if a == "" {
			return fail("audience", "empty value")
		}
	}
	for _, g := range c.GrantTypes {
		if g != GrantClientCredentials && g != GrantRefreshToken {
			return fail("grant_types", "unsupported grant type %q (client_credentials, refresh_token)", g)
		}
	}
	if len(c.GrantTypes) > 0 && !slices.Contains(c.GrantTypes, GrantClientCredentials) {
		// Refresh tokens are handed out with client_credentials answers:
		// without that grant the client could never get one.
		return fail("grant_types", "refresh_token needs client_credentials as well")
	}
	if c.TokenTTL < 0 {
		return fail("token_ttl", "must not be negative")
	}
	if _, err := encodeClaims(c.Claims); err != nil {
		var ce *claimError
		if errors.As(err, &ce) {
			return fail("claims."+ce.name, "%v", ce.err)
		}
		return fail("claims", "%v", err)
	}
	for _, m := range c.AuthMethods {
		registered, known := map[string]bool{
			AuthSecretBasic:   c.Secret != "" || c.SecretHash != "",
			AuthSecretPost:    c.Secret != "" || c.SecretHash != "",
			AuthPrivateKeyJWT: len(c.JWKS) > 0 || c.PublicKey != "" || c.JWKSURI != "",
			AuthTLS:           c.TLSClientAuthSubjectDN != "" || c.TLSClientAuthSANDNS != "",
			AuthSelfSignedTLS: c.TLSCertificate != "",
		}[m]
		switch {
		case !known:
			return fail("token_endpoint_auth_methods", "unknown method %q", m)
		case !registered:
			return fail("token_endpoint_auth_methods", "%s needs its credential registered (secret, jwks/jwks_uri/public_key, tls_client_auth_subject_dn/san_dns or tls_certificate)", m)
		}
	}
	if len(c.JWKS) > 0 && !json.Valid(c.JWKS) {
		return fail("jwks", "not valid JSON")
	}
	switch c.RequireBinding {
	case "", BindingDPoP, BindingMTLS, BindingAny:
	default:
		return fail("require_binding", "unsupported binding %q (dpop, mtls, any)", c.RequireBinding)
	}
	return nil
}

// hasKeys reports whether the client registers keys or certificates.
func (c *Config) hasKeys() bool { return c.keyOption() != "" }

// keyOption is the first option that registers a key or a certificate of
// the client, or "".
func (c *Config) keyOption() string {
	for _, o := range []struct {
		name string
		set  bool
	}{
		{"jwks", len(c.JWKS) > 0},
		{"jwks_uri", c.JWKSURI != ""},
		{"public_key", c.PublicKey != ""},
		{"tls_client_auth_subject_dn", c.TLSClientAuthSubjectDN != ""},
		{"tls_client_auth_san_dns", c.TLSClientAuthSANDNS != ""},
		{"tls_certificate", c.TLSCertificate != ""},
	} {
		if o.set {
			return o.name
		}
	}
	return ""
}

// claimError is a mistake in one of a client's own claims.
type claimError struct {
	name string
	err  error
}

func (e *claimError) Error() string { return e.name + ": " + e.err.Error() }

// encodeClaims checks a client's own claims and encodes them as the
// members a token's payload ends with: `,"name":value` for each, by name,
// values in compact JSON.
func encodeClaims(claims map[string]json.RawMessage) ([]byte, error) {
	if len(claims) == 0 {
		return nil, nil
	}
	names := make([]string, 0, len(claims))
	for name := range claims {
		names = append(names, name)
	}
	slices.Sort(names)
	var b bytes.Buffer
	for _, name := range names {
		v := claims[name]
		switch {
		case name == "":
			return nil, errors.New("empty claim name")
		case slices.Contains(ReservedClaims, name):
			return nil, &claimError{name, fmt.Errorf("%q is set by the issuer and cannot be configured (reserved: %s)", name, strings.Join(ReservedClaims, " "))}
		case !json.Valid(v):
			return nil, &claimError{name, errors.New("not a JSON value")}
		case string(bytes.TrimSpace(v)) == "null":
			return nil, &claimError{name, errors.New("null is not a claim value")}
		}
		q, err := json.Marshal(name)
		if err != nil {
			return nil, &claimError{name, err}
		}
		b.WriteByte(',')
		b.Write(q)
		b.WriteByte(':')
		if err := json.Compact(&b, v); err != nil {
			return nil, &claimError{name, err}
		}
	}
	if b.Len() > MaxClaimsSize {
		return nil, fmt.Errorf("%d bytes encoded, more than %d", b.Len(), MaxClaimsSize)
	}
	return b.Bytes(), nil
}

// ClaimsJSON returns the client's own claims as the members an access
// token's payload ends with (`,"name":value…`, by name), or nil. A client
// of a Registry has them encoded once; others are encoded here.
func (c *Config) ClaimsJSON() []byte {
	if c.claimsJSON != nil || len(c.Claims) == 0 {
		return c.claimsJSON
	}
	b, _ := encodeClaims(c.Claims) // Validate refused what fails here
	return b
}

// HoldsPlaceholder reports whether a value as written holds a runtime
// placeholder such as {env.X} or {file./path}, replaced at provision. (The
// Caddyfile's {$VAR} is replaced before the parser sees the value.) No
// value checked this way has a brace of its own: a hash, a URL's host.
func HoldsPlaceholder(s string) bool { return strings.Contains(s, "{") }

// Allows reports whether the client may use grant type g.
func (c *Config) Allows(g string) bool {
	if len(c.GrantTypes) == 0 {
		return g == GrantClientCredentials
	}
	return slices.Contains(c.GrantTypes, g)
}

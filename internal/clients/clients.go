// Package clients holds an issuer's OAuth clients: their configuration, the
// grants and scopes they are allowed, and the check of their secrets.
package clients

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/caddyserver/caddy/v2"
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
}

// Validate checks one client's configuration (placeholders already replaced).
func (c *Config) Validate() error {
	if c.ClientID == "" {
		return errors.New("client: client_id is required")
	}
	if strings.ContainsAny(c.ClientID, ":\x00") || strings.TrimSpace(c.ClientID) != c.ClientID {
		return fmt.Errorf("client %q: client_id must not contain ':' or surrounding spaces", c.ClientID)
	}
	switch {
	case c.Secret != "" && c.SecretHash != "":
		return fmt.Errorf("client %q: secret and secret_hash are mutually exclusive", c.ClientID)
	case c.Secret == "" && c.SecretHash == "":
		return fmt.Errorf("client %q: one of secret or secret_hash is required (an empty {env.…} placeholder gives an empty secret)", c.ClientID)
	}
	if c.SecretHash != "" {
		if _, err := comparerFor(c.SecretHash); err != nil {
			return fmt.Errorf("client %q: secret_hash: %v", c.ClientID, err)
		}
	}
	for _, s := range c.Scopes {
		if !ValidScopeToken(s) {
			return fmt.Errorf("client %q: scopes: invalid scope %q", c.ClientID, s)
		}
	}
	for _, a := range c.Audience {
		if a == "" {
			return fmt.Errorf("client %q: audience: empty value", c.ClientID)
		}
	}
	for _, g := range c.GrantTypes {
		if g != GrantClientCredentials && g != GrantRefreshToken {
			return fmt.Errorf("client %q: grant_types: unsupported grant type %q (client_credentials, refresh_token)", c.ClientID, g)
		}
	}
	if len(c.GrantTypes) > 0 && !slices.Contains(c.GrantTypes, GrantClientCredentials) {
		// Refresh tokens are handed out with client_credentials answers:
		// without that grant the client could never get one.
		return fmt.Errorf("client %q: grant_types: refresh_token needs client_credentials as well", c.ClientID)
	}
	if c.TokenTTL < 0 {
		return fmt.Errorf("client %q: token_ttl must not be negative", c.ClientID)
	}
	return nil
}

// Allows reports whether the client may use grant type g.
func (c *Config) Allows(g string) bool {
	if len(c.GrantTypes) == 0 {
		return g == GrantClientCredentials
	}
	return slices.Contains(c.GrantTypes, g)
}

// ValidScopeToken reports whether s is a scope-token of RFC 6749 §3.3:
// one or more of %x21 / %x23-5B / %x5D-7E.
func ValidScopeToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x21 || c == 0x22 || c == 0x5C || c > 0x7E {
			return false
		}
	}
	return true
}

package issuer

import (
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/tokengate/tokengate/internal/clients"
	"github.com/tokengate/tokengate/internal/keys"
	"github.com/tokengate/tokengate/internal/refresh"
	"github.com/tokengate/tokengate/internal/revocation"
	"github.com/tokengate/tokengate/internal/state"
)

// Defaults of an issuer's options.
const (
	DefaultTokenTTL    = time.Hour
	DefaultRefreshTTL  = 24 * time.Hour
	DefaultKeyRotation = 30 * 24 * time.Hour
)

// Config is one OAuth 2.0 authorization server (the `oauth_issuer` global
// option). Several Caddy instances whose configs name the same `issuer` URL
// and share a storage act as one issuer: same keys, same refresh tokens.
type Config struct {
	// Issuer is the issuer identifier: an absolute http(s) URL with no query
	// or fragment. It is the `iss` claim of every token and the base of the
	// endpoint URLs in the metadata, so it must be the URL clients use to
	// reach the site serving `oauth_token`. Required.
	Issuer string `json:"issuer,omitempty"`

	// SigningAlg is the JWS algorithm of new signing keys: ES256, EdDSA,
	// RS256 or PS256. Default: ES256. Changing it makes a new key at once.
	SigningAlg string `json:"signing_alg,omitempty"`

	// TokenTTL is the lifetime of access tokens (the answer's `expires_in`).
	// Default: 1h.
	TokenTTL caddy.Duration `json:"token_ttl,omitempty"`

	// RefreshTTL is the lifetime of a refresh token; each redemption issues
	// a new one with a fresh lifetime. Default: 24h.
	RefreshTTL caddy.Duration `json:"refresh_ttl,omitempty"`

	// RefreshReuseInterval is how long after a refresh token's redemption a
	// retry with the same token gets the same answer (the same new refresh
	// token, a new access token) instead of revoking the token's family as
	// a reuse: a client whose answer was lost is not an attacker. A
	// negative value (`off` in the Caddyfile) turns it off: then every
	// reuse revokes the family. Default: 5s.
	RefreshReuseInterval caddy.Duration `json:"refresh_reuse_interval,omitempty"`

	// KeyRotation is how long a generated signing key signs before a new one
	// takes over. The new key is published ahead of use (half the interval,
	// at most 1h) and a replaced key stays published until every token it
	// signed has expired. Default: 720h (30 days).
	KeyRotation caddy.Duration `json:"key_rotation,omitempty"`

	// SigningKey is the path of a PEM private key (PKCS #8, SEC 1 or
	// PKCS #1) to sign with instead of generated keys. It is never rotated;
	// its kid is derived from the public key. Default: none (keys are
	// generated and kept in Caddy's storage).
	SigningKey string `json:"signing_key,omitempty"`

	// RevocationSync is how often this instance reads the revocations made
	// by other instances on the same storage: the longest a token revoked
	// elsewhere is still accepted here. The revoking instance refuses it at
	// once. Default: 2s.
	RevocationSync caddy.Duration `json:"revocation_sync,omitempty"`

	// Throttle limits failed client authentications at the token,
	// revocation and introspection endpoints. Default: on, with the
	// defaults of ThrottleConfig.
	Throttle *ThrottleConfig `json:"throttle,omitempty"`

	// Clients allowed to get tokens. At least one is required.
	Clients []*clients.Config `json:"clients,omitempty"`

	// State is where the issuer keeps its keys, revocations and refresh
	// token families: a module of the tokengate.state namespace, named by
	// its "backend" member (caddy_storage or redis). Default: Caddy's
	// storage (caddy_storage).
	State json.RawMessage `json:"state,omitempty" caddy:"namespace=tokengate.state inline_key=backend"`

	// Backend is the loaded State module (LoadState); nil for the default.
	Backend state.Backend `json:"-"`
}

// ThrottleConfig limits failed client authentications. A request is
// refused with 429 and Retry-After, before the secret is checked, once its
// source address has failed PerAddress times in the window, or once the
// client id it names has failed PerClient times in the window from that
// address. Counting a client id per address means a client being guessed
// from one place is not locked out everywhere else; a guesser spreading over
// many addresses is bounded by the addresses it owns (IPv6 addresses count
// per /64) and by the cost of the password hash.
type ThrottleConfig struct {
	// PerClient is how many failures a client id may have from one address
	// in a window. Default: 10.
	PerClient int `json:"per_client,omitempty"`
	// PerAddress is how many failures an address may have in a window, over
	// all client ids. Default: 30.
	PerAddress int `json:"per_address,omitempty"`
	// Window is the length of a counting window. Default: 1m.
	Window caddy.Duration `json:"window,omitempty"`
	// Disabled turns throttling off.
	Disabled bool `json:"disabled,omitempty"`
}

// Throttle defaults.
const (
	DefaultThrottlePerClient  = 10
	DefaultThrottlePerAddress = 30
	DefaultThrottleWindow     = time.Minute
)

// resolve replaces placeholders such as {env.X} in the options that may hold
// them and fills defaults. It works on a copy; the JSON config is untouched.
// A client's secret and secret_hash also take {env.NAME:default}
// (withEnvDefaults).
func (c Config) resolve(repl *caddy.Replacer) (*Config, error) {
	out := c
	var err error
	secrets := withEnvDefaults(repl)
	if out.Issuer, err = repl.ReplaceOrErr(c.Issuer, true, true); err != nil {
		return nil, fmt.Errorf("issuer: %v", err)
	}
	if out.SigningKey, err = repl.ReplaceOrErr(c.SigningKey, true, true); err != nil {
		return nil, fmt.Errorf("signing_key: %v", err)
	}
	out.Clients = make([]*clients.Config, len(c.Clients))
	for i, cl := range c.Clients {
		if cl == nil {
			// JSON `"clients": [null]`; copying it would panic.
			return nil, fmt.Errorf("clients[%d]: empty client", i)
		}
		cc := *cl
		// An unset env variable must not become an empty secret: ReplaceOrErr
		// fails on unknown placeholders and on empty values.
		if cc.Secret != "" {
			if cc.Secret, err = secrets.ReplaceOrErr(cl.Secret, true, true); err != nil {
				return nil, fmt.Errorf("client %q: secret: %v", cl.ClientID, err)
			}
		}
		if cc.SecretHash != "" {
			if cc.SecretHash, err = secrets.ReplaceOrErr(cl.SecretHash, true, true); err != nil {
				return nil, fmt.Errorf("client %q: secret_hash: %v", cl.ClientID, err)
			}
		}
		out.Clients[i] = &cc
	}
	if out.SigningAlg == "" && out.SigningKey == "" {
		out.SigningAlg = keys.DefaultAlg
	}
	if out.TokenTTL == 0 {
		out.TokenTTL = caddy.Duration(DefaultTokenTTL)
	}
	if out.RefreshTTL == 0 {
		out.RefreshTTL = caddy.Duration(DefaultRefreshTTL)
	}
	if out.RevocationSync == 0 {
		out.RevocationSync = caddy.Duration(revocation.DefaultSyncInterval)
	}
	if out.RefreshReuseInterval == 0 {
		out.RefreshReuseInterval = caddy.Duration(refresh.DefaultReuseInterval)
	}
	if out.KeyRotation == 0 {
		out.KeyRotation = caddy.Duration(DefaultKeyRotation)
	}
	th := ThrottleConfig{}
	if c.Throttle != nil {
		th = *c.Throttle
	}
	if th.PerClient == 0 {
		th.PerClient = DefaultThrottlePerClient
	}
	if th.PerAddress == 0 {
		th.PerAddress = DefaultThrottlePerAddress
	}
	if th.Window == 0 {
		th.Window = caddy.Duration(DefaultThrottleWindow)
	}
	out.Throttle = &th
	return &out, out.Validate(true)
}

// An OptionError is a mistake in one option of an issuer, named as the
// Caddyfile and JSON spell it, so the Caddyfile parser can point at its line.
// Mistakes in a client are *clients.OptionError.
type OptionError struct {
	Option string
	Err    error
}

func (e *OptionError) Error() string { return e.Option + ": " + e.Err.Error() }

func (e *OptionError) Unwrap() error { return e.Err }

// Validate checks the configuration; an unset option (zero) stands for its
// default. With replaced false it checks the config as written, before
// placeholders such as {env.ISSUER} are replaced: the Caddyfile parser calls
// it so that a mistake is reported with its line, and a value still holding
// a placeholder is checked at provision, when Validate runs with replaced
// true.
func (c *Config) Validate(replaced bool) error {
	fail := func(option, format string, args ...any) error {
		return &OptionError{Option: option, Err: fmt.Errorf(format, args...)}
	}
	if c.Issuer == "" {
		return fail("issuer", "the issuer URL is required (e.g. issuer https://auth.example.com)")
	}
	if replaced || !clients.HoldsPlaceholder(c.Issuer) {
		u, err := url.Parse(c.Issuer)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || u.User != nil {
			return fail("issuer", "%q must be an absolute http(s) URL without query, fragment or user info", c.Issuer)
		}
	}
	if c.SigningAlg != "" && !keys.ValidAlg(c.SigningAlg) {
		return fail("signing_alg", "unsupported algorithm %q (ES256, EdDSA, RS256, PS256)", c.SigningAlg)
	}
	if c.TokenTTL < 0 {
		return fail("token_ttl", "must be positive")
	}
	if c.RefreshTTL < 0 {
		return fail("refresh_ttl", "must be positive")
	}
	if c.KeyRotation != 0 && time.Duration(c.KeyRotation) < time.Minute {
		return fail("key_rotation", "must be at least 1m")
	}
	if t := c.Throttle; t != nil && (t.PerClient < 0 || t.PerAddress < 0 || t.Window < 0) {
		return fail("throttle", "limits and window must be positive")
	}
	if c.RevocationSync < 0 {
		return fail("revocation_sync", "must be positive")
	}
	if len(c.Clients) == 0 {
		return fail("client", "at least one client is required")
	}
	return clients.ValidateList(c.Clients, replaced)
}

// maxTokenTTL is the longest access token lifetime any client gets.
func (c *Config) maxTokenTTL() time.Duration {
	m := time.Duration(c.TokenTTL)
	for _, cl := range c.Clients {
		m = max(m, time.Duration(cl.TokenTTL))
	}
	return m
}

// BaseURL is the issuer URL without a trailing slash, the base of the
// endpoint URLs.
func (c *Config) BaseURL() string { return baseURL(c.Issuer) }

// SameIssuer reports whether url names this issuer: its issuer URL, a
// trailing slash aside.
func (c *Config) SameIssuer(url string) bool { return baseURL(url) == c.BaseURL() }

// baseURL is an issuer URL without its trailing slash: two URLs that differ
// only by it name the same issuer (same endpoints, same storage).
func baseURL(issuerURL string) string { return strings.TrimSuffix(issuerURL, "/") }

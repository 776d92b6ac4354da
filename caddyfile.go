package tokengate

import (
	"encoding/json"
	"strconv"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"

	"github.com/tokengate/tokengate/internal/clients"
	"github.com/tokengate/tokengate/internal/issuer"
)

func init() {
	httpcaddyfile.RegisterGlobalOption("oauth_issuer", parseIssuerOption)
}

// parseIssuerOption sets up an issuer from the global option block:
//
//	{
//		oauth_issuer [<name>] {
//			issuer        <url>
//			signing_alg   ES256|EdDSA|RS256|PS256
//			token_ttl     <duration>
//			refresh_ttl   <duration>
//			key_rotation  <duration>
//			revocation_sync <duration>
//			signing_key   <pem file>
//			throttle off | {
//				per_client  <n>
//				per_address <n>
//				window      <duration>
//			}
//			client <client_id> {
//				secret      <plaintext or placeholder>
//				secret_hash <bcrypt or argon2id hash>
//				scopes      <scope...>
//				audience    <aud...>
//				grant_types client_credentials|refresh_token...
//				token_ttl   <duration>
//				introspect_any
//			}
//		}
//	}
//
// The option may appear several times with distinct names; without a name
// the issuer is called "default".
func parseIssuerOption(d *caddyfile.Dispenser, existing any) (any, error) {
	app := new(App)
	if existing != nil {
		prev, ok := existing.(httpcaddyfile.App)
		if !ok {
			return nil, d.Errf("unexpected existing value %T for oauth_issuer", existing)
		}
		if err := json.Unmarshal(prev.Value, app); err != nil {
			return nil, d.Errf("decoding previous oauth_issuer: %v", err)
		}
	}
	if app.Issuers == nil {
		app.Issuers = make(map[string]*issuer.Config)
	}
	d.Next() // the option name
	name := issuer.DefaultName
	if d.NextArg() {
		name = d.Val()
	}
	if d.NextArg() {
		return nil, d.ArgErr()
	}
	if _, dup := app.Issuers[name]; dup {
		return nil, d.Errf("oauth_issuer %q is defined more than once", name)
	}
	cfg, err := unmarshalIssuer(d)
	if err != nil {
		return nil, err
	}
	app.Issuers[name] = cfg
	return httpcaddyfile.App{Name: issuer.AppName, Value: caddyconfig.JSON(app, nil)}, nil
}

func unmarshalIssuer(d *caddyfile.Dispenser) (*issuer.Config, error) {
	cfg := new(issuer.Config)
	seen := map[string]bool{}
	for d.NextBlock(0) {
		opt := d.Val()
		if opt != "client" {
			if seen[opt] {
				return nil, d.Errf("oauth_issuer: %s given more than once", opt)
			}
			seen[opt] = true
		}
		switch opt {
		case "issuer":
			if err := oneArg(d, &cfg.Issuer); err != nil {
				return nil, err
			}
		case "signing_alg":
			if err := oneArg(d, &cfg.SigningAlg); err != nil {
				return nil, err
			}
		case "signing_key":
			if err := oneArg(d, &cfg.SigningKey); err != nil {
				return nil, err
			}
		case "token_ttl":
			if err := durationArg(d, &cfg.TokenTTL); err != nil {
				return nil, err
			}
		case "refresh_ttl":
			if err := durationArg(d, &cfg.RefreshTTL); err != nil {
				return nil, err
			}
		case "key_rotation":
			if err := durationArg(d, &cfg.KeyRotation); err != nil {
				return nil, err
			}
		case "revocation_sync":
			if err := durationArg(d, &cfg.RevocationSync); err != nil {
				return nil, err
			}
		case "throttle":
			th, err := unmarshalThrottle(d)
			if err != nil {
				return nil, err
			}
			cfg.Throttle = th
		case "client":
			c, err := unmarshalClient(d)
			if err != nil {
				return nil, err
			}
			for _, prev := range cfg.Clients {
				if prev.ClientID == c.ClientID {
					return nil, d.Errf("oauth_issuer: client %q is defined more than once", c.ClientID)
				}
			}
			cfg.Clients = append(cfg.Clients, c)
		default:
			return nil, d.Errf("oauth_issuer: unknown option %q", opt)
		}
	}
	if cfg.Issuer == "" {
		return nil, d.Err("oauth_issuer: the issuer option (the issuer URL) is required")
	}
	return cfg, nil
}

// unmarshalThrottle reads `throttle off` or
//
//	throttle {
//		per_client  <n>
//		per_address <n>
//		window      <duration>
//	}
func unmarshalThrottle(d *caddyfile.Dispenser) (*issuer.ThrottleConfig, error) {
	th := new(issuer.ThrottleConfig)
	if d.NextArg() {
		if d.Val() != "off" || d.NextArg() {
			return nil, d.Err("throttle: the only argument is off")
		}
		th.Disabled = true
		return th, nil
	}
	for d.NextBlock(1) {
		switch opt := d.Val(); opt {
		case "per_client", "per_address":
			var v string
			if err := oneArg(d, &v); err != nil {
				return nil, err
			}
			n, err := strconv.Atoi(v)
			if err != nil || n <= 0 {
				return nil, d.Errf("throttle: %s must be a positive number, not %q", opt, v)
			}
			if opt == "per_client" {
				th.PerClient = n
			} else {
				th.PerAddress = n
			}
		case "window":
			if err := durationArg(d, &th.Window); err != nil {
				return nil, err
			}
		default:
			return nil, d.Errf("throttle: unknown option %q", opt)
		}
	}
	return th, nil
}

func unmarshalClient(d *caddyfile.Dispenser) (*clients.Config, error) {
	c := new(clients.Config)
	if !d.NextArg() {
		return nil, d.Err("client: a client id is required (client <client_id> { … })")
	}
	c.ClientID = d.Val()
	if d.NextArg() {
		return nil, d.ArgErr()
	}
	seen := map[string]bool{}
	for d.NextBlock(1) {
		opt := d.Val()
		if seen[opt] {
			return nil, d.Errf("client %q: %s given more than once", c.ClientID, opt)
		}
		seen[opt] = true
		switch opt {
		case "secret":
			if err := oneArg(d, &c.Secret); err != nil {
				return nil, err
			}
		case "secret_hash":
			if err := oneArg(d, &c.SecretHash); err != nil {
				return nil, err
			}
		case "scopes":
			if c.Scopes = d.RemainingArgs(); len(c.Scopes) == 0 {
				return nil, d.ArgErr()
			}
		case "audience":
			if c.Audience = d.RemainingArgs(); len(c.Audience) == 0 {
				return nil, d.ArgErr()
			}
		case "grant_types":
			if c.GrantTypes = d.RemainingArgs(); len(c.GrantTypes) == 0 {
				return nil, d.ArgErr()
			}
		case "token_ttl":
			if err := durationArg(d, &c.TokenTTL); err != nil {
				return nil, err
			}
		case "introspect_any":
			if d.NextArg() {
				return nil, d.ArgErr()
			}
			c.IntrospectAny = true
		default:
			return nil, d.Errf("client %q: unknown option %q", c.ClientID, opt)
		}
	}
	if c.Secret != "" && c.SecretHash != "" {
		return nil, d.Errf("client %q: secret and secret_hash are mutually exclusive", c.ClientID)
	}
	if c.Secret == "" && c.SecretHash == "" {
		return nil, d.Errf("client %q: one of secret or secret_hash is required", c.ClientID)
	}
	return c, nil
}

func oneArg(d *caddyfile.Dispenser, dst *string) error {
	if !d.NextArg() {
		return d.ArgErr()
	}
	*dst = d.Val()
	if d.NextArg() {
		return d.ArgErr()
	}
	return nil
}

func durationArg(d *caddyfile.Dispenser, dst *caddy.Duration) error {
	opt := d.Val()
	var s string
	if err := oneArg(d, &s); err != nil {
		return err
	}
	dur, err := caddy.ParseDuration(s)
	if err != nil {
		return d.Errf("%s: invalid duration %q: %v", opt, s, err)
	}
	if dur <= 0 {
		return d.Errf("%s: duration must be positive", opt)
	}
	*dst = caddy.Duration(dur)
	return nil
}

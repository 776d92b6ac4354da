package tokengate

import (
	"encoding/json"
	"errors"
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
//			refresh_reuse_interval <duration>|off
//			key_rotation  <duration>
//			revocation_sync <duration>
//			signing_key   <pem file>
//			state         caddy_storage | redis [<address>...] { ... }
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
//				claims {
//					<name> <value...>
//				}
//				require_binding dpop|mtls|any
//				jwks        <JWK set JSON>    # private_key_jwt
//				public_key  <PEM file>        # private_key_jwt
//				jwks_uri    <https URL>       # private_key_jwt, keys fetched
//				tls_client_auth_subject_dn <DN>   # mTLS, chain verified by Caddy
//				tls_client_auth_san_dns    <name> # mTLS, chain verified by Caddy
//				tls_certificate <PEM file>    # self-signed mTLS, by thumbprint
//				token_endpoint_auth_methods <method...>  # default: all it registered
//			}
//		}
//	}
//
// The option may appear several times with distinct names; without a name
// the issuer is called "default".
//
// A claim's value is read as JSON when it is JSON (3, true, and in
// backticks, which keep quotes, `["a","b"]` or `{"k":1}`) and as a string
// otherwise (gold); several values make an array. A string that reads as
// JSON is written in backticks with its quotes: `"3"`.
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

// unmarshalIssuer reads an oauth_issuer block, then checks it with the
// rules Provision applies (issuer.Config.Validate), reporting a mistake at
// the line of the option at fault.
func unmarshalIssuer(d *caddyfile.Dispenser) (*issuer.Config, error) {
	cfg := new(issuer.Config)
	start := d.Token()
	at := map[string]caddyfile.Token{} // where each option was given
	var clientAt []map[string]caddyfile.Token
	for d.NextBlock(0) {
		opt := d.Val()
		if opt != "client" {
			if _, seen := at[opt]; seen {
				return nil, d.Errf("oauth_issuer: %s given more than once", opt)
			}
			at[opt] = d.Token()
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
		case "refresh_reuse_interval":
			var v string
			if err := oneArg(d, &v); err != nil {
				return nil, err
			}
			if v == "off" {
				cfg.RefreshReuseInterval = -1
				break
			}
			dur, err := caddy.ParseDuration(v)
			if err != nil || dur <= 0 {
				return nil, d.Errf("refresh_reuse_interval: %q is neither a positive duration nor off", v)
			}
			cfg.RefreshReuseInterval = caddy.Duration(dur)
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
		case "state":
			st, err := unmarshalState(d)
			if err != nil {
				return nil, err
			}
			cfg.State = st
		case "client":
			c, where, err := unmarshalClient(d)
			if err != nil {
				return nil, err
			}
			cfg.Clients = append(cfg.Clients, c)
			clientAt = append(clientAt, where)
		default:
			return nil, d.Errf("oauth_issuer: unknown option %q", opt)
		}
	}
	if err := cfg.Validate(false); err != nil {
		tok := start
		var oe *issuer.OptionError
		var ce *clients.OptionError
		switch {
		case errors.As(err, &ce) && ce.Index < len(clientAt):
			tok = clientAt[ce.Index][""]
			if t, ok := clientAt[ce.Index][ce.Option]; ok {
				tok = t
			}
		case errors.As(err, &oe):
			if t, ok := at[oe.Option]; ok {
				tok = t
			}
		}
		where := caddyfile.NewDispenser([]caddyfile.Token{tok})
		where.Next()
		return nil, where.Errf("oauth_issuer: %w", err)
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

// unmarshalClient reads a client block; it returns where each option was
// given ("" for the client line) for the checks of unmarshalIssuer.
func unmarshalClient(d *caddyfile.Dispenser) (*clients.Config, map[string]caddyfile.Token, error) {
	c := new(clients.Config)
	at := map[string]caddyfile.Token{"": d.Token()}
	if !d.NextArg() {
		return nil, nil, d.Err("client: a client id is required (client <client_id> { … })")
	}
	c.ClientID = d.Val()
	if d.NextArg() {
		return nil, nil, d.ArgErr()
	}
	for d.NextBlock(1) {
		opt := d.Val()
		if _, seen := at[opt]; seen {
			return nil, nil, d.Errf("client %q: %s given more than once", c.ClientID, opt)
		}
		at[opt] = d.Token()
		var err error
		switch opt {
		case "secret":
			err = oneArg(d, &c.Secret)
		case "secret_hash":
			err = oneArg(d, &c.SecretHash)
		case "scopes":
			err = remainingArgs(d, &c.Scopes)
		case "audience":
			err = remainingArgs(d, &c.Audience)
		case "grant_types":
			err = remainingArgs(d, &c.GrantTypes)
		case "token_ttl":
			err = durationArg(d, &c.TokenTTL)
		case "claims":
			err = unmarshalClaims(d, c, at)
		case "require_binding":
			err = oneArg(d, &c.RequireBinding)
		case "jwks":
			var v string
			if err = oneArg(d, &v); err == nil {
				c.JWKS = json.RawMessage(v)
			}
		case "public_key":
			err = oneArg(d, &c.PublicKey)
		case "jwks_uri":
			err = oneArg(d, &c.JWKSURI)
		case "tls_client_auth_subject_dn":
			err = oneArg(d, &c.TLSClientAuthSubjectDN)
		case "tls_client_auth_san_dns":
			err = oneArg(d, &c.TLSClientAuthSANDNS)
		case "tls_certificate":
			err = oneArg(d, &c.TLSCertificate)
		case "token_endpoint_auth_methods":
			err = remainingArgs(d, &c.AuthMethods)
		case "introspect_any":
			if d.NextArg() {
				err = d.ArgErr()
			}
			c.IntrospectAny = true
		default:
			err = d.Errf("client %q: unknown option %q", c.ClientID, opt)
		}
		if err != nil {
			return nil, nil, err
		}
	}
	return c, at, nil
}

// unmarshalClaims reads a client's claims block, noting where each claim
// was given as "claims.<name>".
func unmarshalClaims(d *caddyfile.Dispenser, c *clients.Config, at map[string]caddyfile.Token) error {
	if d.NextArg() {
		return d.ArgErr()
	}
	c.Claims = map[string]json.RawMessage{}
	for d.NextBlock(2) {
		name := d.Val()
		if _, seen := c.Claims[name]; seen {
			return d.Errf("client %q: claim %q given more than once", c.ClientID, name)
		}
		at["claims."+name] = d.Token()
		args := d.RemainingArgs()
		if len(args) == 0 {
			return d.Errf("client %q: claim %q needs a value", c.ClientID, name)
		}
		vals := make([]json.RawMessage, len(args))
		for i, a := range args {
			vals[i] = claimValue(a)
		}
		if len(vals) == 1 {
			c.Claims[name] = vals[0]
			continue
		}
		arr, err := json.Marshal(vals)
		if err != nil {
			return d.Errf("client %q: claim %q: %v", c.ClientID, name, err)
		}
		c.Claims[name] = arr
	}
	return nil
}

// claimValue reads a claim value as JSON when it is JSON, else as a
// string.
func claimValue(s string) json.RawMessage {
	if json.Valid([]byte(s)) {
		return json.RawMessage(s)
	}
	q, _ := json.Marshal(s) // a string always marshals
	return q
}

func remainingArgs(d *caddyfile.Dispenser, dst *[]string) error {
	if *dst = d.RemainingArgs(); len(*dst) == 0 {
		return d.ArgErr()
	}
	return nil
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

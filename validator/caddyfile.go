package validator

import (
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

func init() {
	httpcaddyfile.RegisterHandlerDirective("bearer_auth", parseCaddyfile)
	// After basic_auth, where Caddy's own authentication sits; oauth_token
	// goes before it, so the token endpoint is never behind bearer_auth.
	httpcaddyfile.RegisterDirectiveOrder("bearer_auth", httpcaddyfile.After, "basic_auth")
}

func parseCaddyfile(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	var ba Handler
	err := ba.UnmarshalCaddyfile(h.Dispenser)
	return &ba, err
}

// UnmarshalCaddyfile sets up the handler from Caddyfile tokens. Syntax:
//
//	bearer_auth [<matcher>] {
//	    issuer              <name|url>          # default: the local issuer "default"
//	    issuer              <name|url> {        # several issuers: a block each
//	        audience        <aud...>            # default: the route's audience
//	        jwks_url        <url>
//	    }
//	    jwks_url            <url>               # remote issuer without discovery
//	    audience            <aud...>            # required for a remote issuer
//	    scopes              <scope...>          # all required
//	    scope_claim         <name|path>         # scopes read from this claim
//	    claim               <name> <value...>   # one of the values required; repeatable
//	    leeway              <duration>          # default: 30s; at least 1s
//	    require_typ                             # remote issuer: typ must be at+jwt
//	    realm               <realm>             # default: restricted
//	    allow_preflight                         # CORS preflights pass without a token
//	    strip_authorization                     # the upstream never sees the token
//	    refresh_interval    <duration>          # remote JWKS refetch; default: 5m
//	    require             dpop|mtls|any       # sender-constrained tokens only
//	    dpop_nonce                              # DPoP proofs need a server nonce
//	    forward_auth                            # answer 200 + X-Auth-* headers; never pass on
//	    introspection       <endpoint> {        # opaque tokens: RFC 7662 at the issuer
//	        client_id       <id>
//	        client_secret   <secret>            # e.g. {env.SECRET} or {file.PATH}
//	        cache           <duration>          # default: 2m, never past the token's exp
//	        negative_cache  <duration>          # default: 5s
//	    }
//	}
//
// Claim names may be paths into nested objects (realm_access.roles; `\.`
// for a dot inside a member name), as Handler.Claims says.
//
// With no block, tokens of the local issuer "default" for its default
// audience are accepted. audience, scopes and claim may be repeated; their
// values add up.
func (h *Handler) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // directive name
	if d.NextArg() {
		return d.ArgErr()
	}
	seen := map[string]bool{}
	for d.NextBlock(0) {
		opt := d.Val()
		if opt == "introspection" {
			if seen[opt] {
				return d.Errf("introspection: specified more than once")
			}
			seen[opt] = true
			if err := h.unmarshalIntrospection(d); err != nil {
				return err
			}
			if err := h.validate(); err != nil {
				return d.Errf("bearer_auth: %v", err)
			}
			continue
		}
		if opt == "issuer" {
			// One issuer, or a block per issuer (issuers.go).
			if err := h.unmarshalIssuer(d, seen); err != nil {
				return err
			}
			if err := h.validate(); err != nil {
				return d.Errf("bearer_auth: %v", err)
			}
			continue
		}
		switch opt {
		case "audience", "scopes", "claim":
		default:
			if seen[opt] {
				return d.Errf("%s: specified more than once", opt)
			}
		}
		seen[opt] = true
		switch opt {
		case "jwks_url", "realm", "require", "scope_claim":
			var v string
			if !d.AllArgs(&v) {
				return d.ArgErr()
			}
			switch opt {
			case "jwks_url":
				h.JWKSURL = v
			case "realm":
				h.Realm = v
			case "scope_claim":
				h.ScopeClaim = v
			case "require":
				h.Require = v
			}
		case "audience", "scopes":
			vals := d.RemainingArgs()
			if len(vals) == 0 {
				return d.ArgErr()
			}
			if opt == "audience" {
				h.Audience = append(h.Audience, vals...)
			} else {
				h.Scopes = append(h.Scopes, vals...)
			}
		case "claim":
			args := d.RemainingArgs()
			if len(args) < 2 {
				return d.ArgErr()
			}
			if h.Claims == nil {
				h.Claims = map[string][]string{}
			}
			h.Claims[args[0]] = append(h.Claims[args[0]], args[1:]...)
		case "leeway", "refresh_interval":
			var v string
			if !d.AllArgs(&v) {
				return d.ArgErr()
			}
			dur, err := caddy.ParseDuration(v)
			if err != nil {
				return d.Errf("%s: %v", opt, err)
			}
			if dur < time.Second {
				// 0 would mean "the default" in JSON; in a Caddyfile it
				// would surprise, so it is refused.
				return d.Errf("%s: %s is too small (at least 1s)", opt, v)
			}
			if opt == "leeway" {
				h.Leeway = caddy.Duration(dur)
			} else {
				h.RefreshInterval = caddy.Duration(dur)
			}
		case "require_typ", "allow_preflight", "strip_authorization", "dpop_nonce", "forward_auth":
			if d.NextArg() {
				return d.ArgErr()
			}
			switch opt {
			case "require_typ":
				h.RequireTyp = true
			case "allow_preflight":
				h.AllowPreflight = true
			case "strip_authorization":
				h.StripAuthorization = true
			case "dpop_nonce":
				h.DPoPNonce = true
			case "forward_auth":
				h.ForwardAuth = true
			}
		default:
			return d.Errf("unrecognized bearer_auth option %q", opt)
		}
		// The rules Provision applies, checked after each option so that a
		// mistake is reported at its line.
		if err := h.validate(); err != nil {
			return d.Errf("bearer_auth: %v", err)
		}
	}
	return nil
}

// Interface guard
var _ caddyfile.Unmarshaler = (*Handler)(nil)

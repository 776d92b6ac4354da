package tokenhandler

import (
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

func init() {
	httpcaddyfile.RegisterHandlerDirective("oauth_token", parseCaddyfile)
	httpcaddyfile.RegisterDirectiveOrder("oauth_token", httpcaddyfile.Before, "basic_auth")
}

func parseCaddyfile(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	m := new(Handler)
	err := m.UnmarshalCaddyfile(h.Dispenser)
	return m, err
}

// UnmarshalCaddyfile sets up the handler from Caddyfile tokens:
//
//	oauth_token [<issuer name>]
//
// The issuer name refers to an `oauth_issuer` global option; it defaults
// to the unnamed ("default") issuer.
func (h *Handler) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // directive name
	if d.NextArg() {
		h.Issuer = d.Val()
	}
	if d.NextArg() {
		return d.ArgErr()
	}
	if d.NextBlock(0) {
		return d.Errf("oauth_token takes no block; configure the issuer in the oauth_issuer global option")
	}
	return nil
}

var _ caddyfile.Unmarshaler = (*Handler)(nil)

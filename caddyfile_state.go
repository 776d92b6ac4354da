package tokengate

import (
	"encoding/json"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

// unmarshalState reads oauth_issuer's `state <backend> ...` option: the
// module tokengate.state.<backend>, with its own Caddyfile syntax
// (`state redis { ... }`, `state caddy_storage`).
func unmarshalState(d *caddyfile.Dispenser) (json.RawMessage, error) {
	if !d.NextArg() {
		return nil, d.ArgErr()
	}
	name := d.Val()
	info, err := caddy.GetModule("tokengate.state." + name)
	if err != nil {
		return nil, d.Errf("state: unknown backend %q (caddy_storage, redis)", name)
	}
	mod := info.New()
	if u, ok := mod.(caddyfile.Unmarshaler); ok {
		if err := u.UnmarshalCaddyfile(d.NewFromNextSegment()); err != nil {
			return nil, err
		}
	} else if d.NextArg() || d.NextBlock(d.Nesting()) {
		return nil, d.Errf("state %s takes no options", name)
	}
	var warnings []caddyconfig.Warning
	return caddyconfig.JSONModuleObject(mod, "backend", name, &warnings), nil
}

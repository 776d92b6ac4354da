package issuer

import (
	"os"
	"strings"

	"github.com/caddyserver/caddy/v2"
)

// withEnvDefaults returns a replacer that answers like repl and also knows
// {env.NAME:default}: the variable's value, or default when the variable is
// unset or empty. The default is everything after the first colon, so it
// may itself hold colons (a URL); it cannot hold a '}'.
//
// Client secrets use it so that a config can ship a working default (the
// Quick start's demo secret) and still read the secret at run time, where
// it never reaches autosave.json or GET /config/. Caddy v2.11's own
// replacer has no default for a run-time placeholder: it looks up a
// variable literally named "NAME:default", which is unset. The syntax and
// the "unset or empty" rule are those of Caddy's open pull request for
// placeholder defaults (caddyserver/caddy#7967), so a config written for
// tokengate keeps its meaning if Caddy adopts it. {$NAME:default} is
// different and untouched: the Caddyfile adapter expands it before the
// config exists, so its value is in the JSON config.
func withEnvDefaults(repl *caddy.Replacer) *caddy.Replacer {
	out := caddy.NewEmptyReplacer()
	out.Map(func(key string) (any, bool) {
		if rest, ok := strings.CutPrefix(key, "env."); ok {
			if name, def, ok := strings.Cut(rest, ":"); ok {
				if v := os.Getenv(name); v != "" {
					return v, true
				}
				return def, true
			}
		}
		return repl.Get(key)
	})
	return out
}

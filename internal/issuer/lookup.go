package issuer

import (
	"fmt"
	"net"
	"strings"

	"github.com/caddyserver/caddy/v2"
)

// Lookup finds the issuer called name ("" means "default") in the
// tokengate app of ctx, loading the app if it has not been yet.
func Lookup(ctx caddy.Context, name string) (*Issuer, error) {
	app, err := ctx.App(AppName)
	if err != nil {
		return nil, fmt.Errorf("loading the %s app: %v", AppName, err)
	}
	prov, ok := app.(Provider)
	if !ok {
		return nil, fmt.Errorf("the %s app is %T, not an issuer provider", AppName, app)
	}
	return prov.Issuer(name)
}

// LookupURL finds an issuer of this instance by its issuer URL; it reports
// false when the config has no tokengate app or no such issuer.
func LookupURL(ctx caddy.Context, url string) (*Issuer, bool) {
	app, err := ctx.AppIfConfigured(AppName)
	if err != nil {
		return nil, false
	}
	prov, ok := app.(Provider)
	if !ok {
		return nil, false
	}
	return prov.IssuerByURL(url)
}

// IsLoopbackHost reports whether host (a URL's Hostname) names this
// machine: localhost, a name under .localhost, or a loopback address.
// Plain http is only safe to such a host.
func IsLoopbackHost(host string) bool {
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Package localissuer finds the issuers of this Caddy instance (the
// tokengate app) for the site handlers that serve or trust them. Each asks
// for what it needs: oauth_token for the whole issuer (issuer.Lookup),
// bearer_auth only for an Issuer of this package (how its tokens are
// verified, what its clients may get), so that the gate does not depend on
// the issuer's internals (clients, refresh tokens, storage).
package localissuer

import (
	"fmt"
	"net"
	"strings"

	"github.com/caddyserver/caddy/v2"

	"github.com/tokengate/tokengate/internal/accesstoken"
)

// AppName is the Caddy app (module ID) holding the issuers.
const AppName = "tokengate"

// DefaultName is the name of an issuer configured without one.
const DefaultName = "default"

// Issuer is an issuer of this instance as a gate in the same process sees
// it.
type Issuer struct {
	Name string
	// Verifier is how its access tokens are verified in process: its keys
	// read in process, its revocations seen at once. Its Audience is the
	// issuer's default audience, its URL.
	Verifier accesstoken.VerifierConfig
	// Grants are what each configured client may get.
	Grants []Grant
}

// Grant is what a client may get: its scopes, and the audience its tokens
// carry.
type Grant struct {
	Scopes, Audience []string
}

// Issuers is implemented by the tokengate app.
type Issuers interface {
	LocalIssuer(name string) (Issuer, error)
	// LocalIssuerByURL finds an issuer by its issuer URL.
	LocalIssuerByURL(url string) (Issuer, bool)
}

// App returns the tokengate app of ctx, loading it if it has not been yet.
func App(ctx caddy.Context) (any, error) {
	app, err := ctx.App(AppName)
	if err != nil {
		return nil, fmt.Errorf("loading the %s app: %v", AppName, err)
	}
	return app, nil
}

// Lookup finds the issuer called name.
func Lookup(ctx caddy.Context, name string) (Issuer, error) {
	app, err := App(ctx)
	if err != nil {
		return Issuer{}, err
	}
	is, ok := app.(Issuers)
	if !ok {
		return Issuer{}, fmt.Errorf("the %s app is %T, not an issuer provider", AppName, app)
	}
	return is.LocalIssuer(name)
}

// LookupURL finds the issuer with this issuer URL; it reports false when
// the config has no tokengate app or no such issuer.
func LookupURL(ctx caddy.Context, url string) (Issuer, bool) {
	app, err := ctx.AppIfConfigured(AppName)
	if err != nil {
		return Issuer{}, false
	}
	is, ok := app.(Issuers)
	if !ok {
		return Issuer{}, false
	}
	return is.LocalIssuerByURL(url)
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

// Package tokengate is a Caddy plugin that puts OAuth 2.0 machine-to-machine
// authentication in front of services that have none: an issuer answering
// the client_credentials grant with signed JWT access tokens, and a
// middleware that checks those tokens before a request reaches the upstream.
//
// Importing this package registers every tokengate module:
//
//   - tokengate: the app holding the issuers (`oauth_issuer` global option)
//   - http.handlers.oauth_token: the issuer's endpoints (`oauth_token`)
//   - http.handlers.bearer_auth: the validator (`bearer_auth`)
//   - admin.api.tokengate: the client API on Caddy's admin endpoint
package tokengate

import (
	"fmt"
	"net/url"
	"sort"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	_ "github.com/tokengate/tokengate/adminapi"
	"github.com/tokengate/tokengate/internal/issuer"
	"github.com/tokengate/tokengate/internal/localissuer"
	_ "github.com/tokengate/tokengate/internal/state/redis"
	_ "github.com/tokengate/tokengate/tokenhandler"
	_ "github.com/tokengate/tokengate/validator"
)

func init() {
	caddy.RegisterModule(App{})
}

// App is the tokengate app: the OAuth 2.0 issuers of this Caddy instance,
// by name. Handlers (`oauth_token`, `bearer_auth`) refer to an issuer by its
// name; an issuer configured without a name is called "default".
//
// Issuer state (signing keys, refresh tokens) lives in Caddy's configured
// storage, so instances sharing a storage and an issuer URL act as one issuer.
type App struct {
	// Issuers by name.
	Issuers map[string]*issuer.Config `json:"issuers,omitempty"`

	issuers map[string]*issuer.Issuer
	logger  *zap.Logger
}

// CaddyModule returns the Caddy module information.
func (App) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  issuer.AppName,
		New: func() caddy.Module { return new(App) },
	}
}

// Provision builds every issuer and loads its signing keys.
func (a *App) Provision(ctx caddy.Context) error {
	a.logger = ctx.Logger()
	a.issuers = make(map[string]*issuer.Issuer, len(a.Issuers))
	for name, cfg := range a.Issuers {
		if cfg == nil {
			return fmt.Errorf("oauth_issuer %q: empty configuration", name)
		}
		if err := cfg.LoadState(ctx); err != nil {
			return fmt.Errorf("oauth_issuer %q: %v", name, err)
		}
		iss, err := issuer.New(ctx, name, cfg, ctx.Storage(), a.logger.With(zap.String("issuer", name)))
		if err != nil {
			return fmt.Errorf("oauth_issuer %q: %v", name, err)
		}
		a.issuers[name] = iss
		if u, err := url.Parse(iss.Config.Issuer); err == nil && u.Scheme == "http" && !localissuer.IsLoopbackHost(u.Hostname()) {
			a.logger.Warn("issuer URL is plain http: client secrets and tokens would cross the network unencrypted",
				zap.String("issuer", name), zap.String("url", iss.Config.Issuer))
		}
	}
	return nil
}

// Start starts each issuer's key rotation and cleanup.
func (a *App) Start() error {
	for _, iss := range a.issuers {
		iss.Start()
	}
	return nil
}

// Stop stops the issuers' background work.
func (a *App) Stop() error {
	for _, iss := range a.issuers {
		iss.Stop()
	}
	return nil
}

// Issuer returns the issuer called name ("" means "default").
func (a *App) Issuer(name string) (*issuer.Issuer, error) {
	if name == "" {
		name = issuer.DefaultName
	}
	if iss, ok := a.issuers[name]; ok {
		return iss, nil
	}
	names := make([]string, 0, len(a.issuers))
	for n := range a.issuers {
		names = append(names, n)
	}
	sort.Strings(names)
	if len(names) == 0 {
		return nil, fmt.Errorf("no oauth_issuer %q is configured: add an oauth_issuer block to the global options", name)
	}
	return nil, fmt.Errorf("no oauth_issuer %q is configured (configured: %s)", name, strings.Join(names, ", "))
}

// LocalIssuer is the issuer called name as bearer_auth sees it.
func (a *App) LocalIssuer(name string) (localissuer.Issuer, error) {
	iss, err := a.Issuer(name)
	if err != nil {
		return localissuer.Issuer{}, err
	}
	return iss.Local(), nil
}

// LocalIssuerByURL is LocalIssuer of the issuer whose issuer URL is url, so
// that a route naming its own instance's issuer by URL reads the keys in
// process instead of fetching them.
func (a *App) LocalIssuerByURL(url string) (localissuer.Issuer, bool) {
	for _, iss := range a.issuers {
		if iss.Config.SameIssuer(url) {
			return iss.Local(), true
		}
	}
	return localissuer.Issuer{}, false
}

// Interface guards
var (
	_ caddy.App           = (*App)(nil)
	_ caddy.Provisioner   = (*App)(nil)
	_ issuer.Provider     = (*App)(nil)
	_ localissuer.Issuers = (*App)(nil)
)

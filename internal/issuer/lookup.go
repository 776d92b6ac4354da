package issuer

import (
	"fmt"

	"github.com/caddyserver/caddy/v2"

	"github.com/tokengate/tokengate/internal/localissuer"
)

// Lookup finds the issuer called name ("" means "default") in the
// tokengate app of ctx, loading the app if it has not been yet.
func Lookup(ctx caddy.Context, name string) (*Issuer, error) {
	app, err := localissuer.App(ctx)
	if err != nil {
		return nil, err
	}
	prov, ok := app.(Provider)
	if !ok {
		return nil, fmt.Errorf("the %s app is %T, not an issuer provider", AppName, app)
	}
	return prov.Issuer(name)
}

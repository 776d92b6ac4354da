package issuer

import (
	"context"
	"fmt"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/certmagic"

	"github.com/tokengate/tokengate/internal/state"
)

func init() {
	caddy.RegisterModule(CaddyStorage{})
}

// CaddyStorage keeps the issuer's state in Caddy's configured storage
// (tokengate.state.caddy_storage): signing keys and refresh MAC keys as
// files, revocations in per-writer logs read every revocation_sync,
// refresh token families under the storage's locks. It is the default:
// instances sharing a storage (a directory, or any Caddy storage module)
// act as one issuer.
type CaddyStorage struct {
	storage certmagic.Storage
}

// CaddyModule returns the Caddy module information.
func (CaddyStorage) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "tokengate.state.caddy_storage",
		New: func() caddy.Module { return new(CaddyStorage) },
	}
}

// Provision takes Caddy's storage.
func (c *CaddyStorage) Provision(ctx caddy.Context) error {
	c.storage = ctx.Storage()
	return nil
}

// Open returns the storage; revocations and families are kept in it by
// internal/revocation and internal/refresh.
func (c *CaddyStorage) Open(context.Context, string) (*state.Handles, error) {
	return &state.Handles{Storage: c.storage}, nil
}

// LoadState loads the issuer's state module (the `state` option), if one
// is configured; without one the issuer keeps its state in Caddy's storage.
func (c *Config) LoadState(ctx caddy.Context) error {
	if c.State == nil {
		return nil
	}
	mod, err := ctx.LoadModule(c, "State")
	if err != nil {
		return fmt.Errorf("state: %v", err)
	}
	b, ok := mod.(state.Backend)
	if !ok {
		return fmt.Errorf("state: module %T is not a state backend", mod)
	}
	c.Backend = b
	return nil
}

var (
	_ caddy.Provisioner = (*CaddyStorage)(nil)
	_ state.Backend     = (*CaddyStorage)(nil)
)

package validator

import (
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/tokengate/tokengate/internal/remotekeys"
)

// DefaultRefreshInterval is how often a remote issuer's JWK set is
// refetched when refresh_interval is not set.
const DefaultRefreshInterval = remotekeys.DefaultRefreshInterval

// remotePool shares one key fetcher (internal/remotekeys) per remote issuer
// (and jwks_url and refresh interval) between the routes that trust it and
// across config reloads, so keys survive a reload and several routes make
// one set of fetches.
var remotePool = caddy.NewUsagePool()

type remoteKey struct {
	issuer  string
	jwksURL string
	refresh time.Duration
}

var _ caddy.Destructor = (*remotekeys.Fetcher)(nil)

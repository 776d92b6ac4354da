package clientauth

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/tokengate/tokengate/internal/accesstoken"
	"github.com/tokengate/tokengate/internal/clients"
	"github.com/tokengate/tokengate/internal/remotekeys"
)

// ErrKeysUnavailable is returned (with ErrInvalid) for an assertion of a
// client whose jwks_uri was never fetched: the server cannot tell a good
// assertion from a bad one, and says so (503) rather than blame the client.
// Once a set was fetched, a failing refresh keeps it in use.
var ErrKeysUnavailable = errors.New("the client's JWK set has not been fetched from its jwks_uri")

// remotePool shares one fetcher per client jwks_uri across config reloads
// (and between issuers naming the same client and URL), so a reload does
// not refetch every set nor reset the unknown-kid rate limit.
var remotePool = caddy.NewUsagePool()

type remoteKey struct {
	clientID string
	url      string
}

// FetchClientKeys starts fetching the JWK sets of the clients that
// registered a jwks_uri: in the background, so Caddy's start waits for no
// client's server. An assertion arriving before its client's set does
// fetches it itself. Close releases the fetchers.
func (v *Verifier) FetchClientKeys(cfgs []*clients.Config, logger *zap.Logger) error {
	for _, c := range cfgs {
		if c.JWKSURI == "" {
			continue
		}
		key := remoteKey{clientID: c.ClientID, url: c.JWKSURI}
		flog := logger.With(zap.String("client_id", c.ClientID), zap.String("jwks_uri", c.JWKSURI))
		f, _, err := remotePool.LoadOrNew(key, func() (caddy.Destructor, error) {
			f := remotekeys.New(remotekeys.Config{JWKSURL: c.JWKSURI, Logger: flog})
			f.Start(0)
			return f, nil
		})
		if err != nil {
			v.Close()
			return fmt.Errorf("client %q: jwks_uri: %v", c.ClientID, err)
		}
		v.pooled = append(v.pooled, key)
		v.keys[c.ClientID] = remoteClientKeys{f.(*remotekeys.Fetcher)}
	}
	return nil
}

// Close releases the jwks_uri fetchers FetchClientKeys took; the last
// user of one stops it.
func (v *Verifier) Close() {
	for _, key := range v.pooled {
		_, _ = remotePool.Delete(key)
	}
	v.pooled = nil
}

// remoteClientKeys are the keys a client publishes at its jwks_uri, as an
// accesstoken.KeySource. The fetcher refetches the set, rate-limited, for
// an unknown kid, so a key the client rotates in is accepted at once; only
// keys of SigningAlgs are used.
type remoteClientKeys struct{ f *remotekeys.Fetcher }

// Key finds the key named kid (with no kid, the set's only key).
func (r remoteClientKeys) Key(ctx context.Context, kid string) (*accesstoken.Key, error) {
	k, err := r.f.Key(ctx, kid)
	if errors.Is(err, accesstoken.ErrNoKeys) {
		return nil, ErrKeysUnavailable
	}
	if err != nil {
		return nil, err
	}
	if !slices.Contains(SigningAlgs, k.Alg.String()) {
		return nil, fmt.Errorf("%w: its algorithm %s is not one of %v", accesstoken.ErrUnknownKey, k.Alg.String(), SigningAlgs)
	}
	return k, nil
}

// Published reports whether kid is in the client's last fetched set.
func (r remoteClientKeys) Published(kid string) bool { return r.f.Published(kid) }

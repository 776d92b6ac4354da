package validator

import (
	"context"

	"github.com/lestrrat-go/jwx/v3/jwa"

	"github.com/tokengate/tokengate/internal/keys"
)

// verifyKey is a public key and the one algorithm it verifies. The
// algorithm is the key's, never the token's.
type verifyKey struct {
	kid string
	alg jwa.SignatureAlgorithm
	pub any // *ecdsa.PublicKey, *rsa.PublicKey or ed25519.PublicKey
}

// keySource finds the keys of the issuer a route trusts.
type keySource interface {
	// key returns the key named kid, looking further (storage, JWKS
	// refetch; both rate-limited) when it is not known yet. It returns
	// errUnknownKey or errNoKeys when there is none.
	key(ctx context.Context, kid string) (*verifyKey, error)
	// published reports whether kid is still among the issuer's keys,
	// without any I/O; a cached token whose key was withdrawn is verified
	// anew (and refused).
	published(kid string) bool
}

// localKeys are the keys of an issuer of this Caddy instance, read in
// process: a key rotated in (also by another instance on the same storage)
// is seen at once, with no HTTP round trip.
type localKeys struct {
	m *keys.Manager
}

func (l localKeys) key(ctx context.Context, kid string) (*verifyKey, error) {
	if kid == "" {
		return nil, errUnknownKey // our issuer always names its key
	}
	k, ok := l.m.Lookup(ctx, kid)
	if !ok {
		return nil, errUnknownKey
	}
	return &verifyKey{kid: k.KID, alg: k.Alg, pub: k.Signer.Public()}, nil
}

func (l localKeys) published(kid string) bool {
	_, ok := l.m.Lookup(context.Background(), kid)
	return ok
}

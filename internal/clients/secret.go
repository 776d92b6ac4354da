package clients

import (
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp/caddyauth"
	"github.com/patrickmn/go-cache"
	"golang.org/x/crypto/bcrypt"
	"golang.org/x/sync/singleflight"

	"github.com/tokengate/tokengate/internal/metrics"
)

// Registry is an issuer's set of clients, with the secret check.
type Registry struct {
	byID map[string]*client
	// fake is what an unknown client id is checked against, so that it costs
	// the same time as a wrong secret of a real client.
	fake *client
	// verified remembers recent successful secret checks (keyed by client id
	// and a hash of the presented secret) so that a busy client pays the slow
	// password hash once per SecretCacheTTL, not on every request. Failed
	// checks are never cached.
	verified *cache.Cache
	inflight singleflight.Group
}

// SecretCacheTTL is how long a successful secret check is remembered.
const SecretCacheTTL = 5 * time.Minute

type client struct {
	cfg      *Config
	comparer caddyauth.Comparer // nil for a plain secret
	hash     []byte             // the password hash, or SHA-256 of a plain secret
}

// NewRegistry builds a registry from client configs that passed
// ValidateList with their placeholders replaced.
func NewRegistry(cfgs []*Config) (*Registry, error) {
	r := &Registry{
		byID: make(map[string]*client, len(cfgs)),
		// No janitor goroutine: expired entries are never served, and
		// DeleteExpired (run by the issuer while it runs) frees them.
		verified: cache.New(SecretCacheTTL, 0),
	}
	for _, cfg := range cfgs {
		c := &client{cfg: cfg}
		if cfg.SecretHash != "" {
			cmp, err := comparerFor(cfg.SecretHash)
			if err != nil {
				return nil, fmt.Errorf("client %q: secret_hash: %v", cfg.ClientID, err)
			}
			c.comparer, c.hash = cmp, []byte(cfg.SecretHash)
			if r.fake == nil {
				// A real client's hash, with its real cost: a constant fake
				// hash of another cost would tell unknown ids apart by time.
				// A match against it is still refused (the id is unknown).
				r.fake = &client{comparer: cmp, hash: c.hash}
			}
		} else {
			sum := sha256.Sum256([]byte(cfg.Secret))
			c.hash = sum[:]
		}
		r.byID[cfg.ClientID] = c
	}
	if r.fake == nil {
		// All secrets are plain: an unknown client costs a SHA-256 compare.
		r.fake = &client{hash: make([]byte, sha256.Size)}
	}
	return r, nil
}

// DeleteExpired frees remembered secret checks that have expired.
func (r *Registry) DeleteExpired() { r.verified.DeleteExpired() }

// Get returns the client with the given id.
func (r *Registry) Get(id string) (*Config, bool) {
	c, ok := r.byID[id]
	if !ok {
		return nil, false
	}
	return c.cfg, true
}

// All returns every client's config.
func (r *Registry) All() []*Config {
	out := make([]*Config, 0, len(r.byID))
	for _, c := range r.byID {
		out = append(out, c.cfg)
	}
	return out
}

// ErrInvalidClient is returned for an unknown client or a wrong secret; the
// two are not told apart, neither in the error nor in the time taken.
var ErrInvalidClient = errors.New("client authentication failed")

// Authenticate checks a client's secret. It returns the client's config or
// ErrInvalidClient; any other error is an internal failure.
func (r *Registry) Authenticate(id, secret string) (*Config, error) {
	c, known := r.byID[id]
	sum := sha256.Sum256([]byte(secret))
	if !known {
		// Costs what a wrong secret of a configured client costs.
		if _, err := r.fake.matches(secret, sum[:]); err != nil {
			return nil, fmt.Errorf("checking secret of client %q: %v", id, err)
		}
		return nil, ErrInvalidClient
	}
	if c.comparer == nil {
		if ok, _ := c.matches(secret, sum[:]); !ok {
			return nil, ErrInvalidClient
		}
		return c.cfg, nil
	}
	cacheKey := id + "\x00" + string(sum[:])
	if _, ok := r.verified.Get(cacheKey); ok {
		metrics.CacheLookups.WithLabelValues("secret", "hit").Inc()
		return c.cfg, nil
	}
	metrics.CacheLookups.WithLabelValues("secret", "miss").Inc()
	// Requests presenting the same secret at the same moment share one
	// hash check: when a busy client's cached check expires, its requests
	// in flight must not each pay the slow hash.
	v, err, _ := r.inflight.Do(cacheKey, func() (any, error) {
		ok, err := c.matches(secret, sum[:])
		if ok {
			r.verified.SetDefault(cacheKey, struct{}{})
		}
		return ok, err
	})
	if err != nil {
		return nil, fmt.Errorf("checking secret of client %q: %v", id, err)
	}
	if !v.(bool) {
		return nil, ErrInvalidClient
	}
	return c.cfg, nil
}

func (c *client) matches(secret string, sum []byte) (bool, error) {
	if c.comparer == nil {
		return subtle.ConstantTimeCompare(c.hash, sum) == 1, nil
	}
	return c.comparer.Compare(c.hash, []byte(secret))
}

// comparerFor picks the hash algorithm from the hash's own prefix, as made
// by `caddy hash-password`.
func comparerFor(hash string) (caddyauth.Comparer, error) {
	switch {
	case strings.HasPrefix(hash, "$2a$"), strings.HasPrefix(hash, "$2b$"), strings.HasPrefix(hash, "$2y$"):
		if _, err := bcrypt.Cost([]byte(hash)); err != nil {
			return nil, fmt.Errorf("malformed bcrypt hash: %v", err)
		}
		return caddyauth.BcryptHash{}, nil
	case strings.HasPrefix(hash, "$argon2id$"):
		if _, _, err := caddyauth.DecodeHash([]byte(hash)); err != nil {
			return nil, fmt.Errorf("malformed argon2id hash: %v", err)
		}
		return caddyauth.Argon2idHash{}, nil
	}
	return nil, errors.New("not a bcrypt or argon2id hash (make one with `caddy hash-password`)")
}

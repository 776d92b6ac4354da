package clients

import (
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp/caddyauth"
	"github.com/patrickmn/go-cache"
	"golang.org/x/crypto/bcrypt"
	"golang.org/x/sync/singleflight"

	"github.com/tokengate/tokengate/internal/metrics"
	"github.com/tokengate/tokengate/internal/state"
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

	// State holds the clients made at run time and every client's
	// cut-off; nil when the registry has only configured clients. Set it
	// before the first Sync.
	State state.Clients
	// Now is the clock of secret expiries and cut-offs. Default: time.Now.
	Now func() time.Time
	// MaxTokenTTL bounds the token_ttl of a client made at run time: the
	// issuer keeps a replaced signing key published that long.
	MaxTokenTTL time.Duration

	rmu     sync.RWMutex
	runtime map[string]*runtimeClient
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
		var err error
		if cfg.claimsJSON, err = encodeClaims(cfg.Claims); err != nil {
			return nil, fmt.Errorf("client %q: claims: %v", cfg.ClientID, err)
		}
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
		} else if cfg.Secret != "" {
			sum := sha256.Sum256([]byte(cfg.Secret))
			c.hash = sum[:]
		}
		// A client with keys only has no hash: no secret matches it.
		r.byID[cfg.ClientID] = c
	}
	if r.fake == nil {
		// All secrets are plain: an unknown client costs a SHA-256 compare.
		r.fake = &client{hash: make([]byte, sha256.Size)}
	}
	return r, nil
}

// Get returns the client with the given id: the token endpoint finds a
// client authenticating by private_key_jwt this way, once its assertion
// names it.
func (r *Registry) Get(id string) (*Config, bool) {
	c, ok := r.byID[id]
	if !ok {
		return nil, false
	}
	return c.cfg, true
}

// DeleteExpired frees remembered secret checks that have expired.
func (r *Registry) DeleteExpired() { r.verified.DeleteExpired() }

// ErrInvalidClient is returned for an unknown client or a wrong secret; the
// two are not told apart, neither in the error nor in the time taken.
var ErrInvalidClient = errors.New("client authentication failed")

// ErrBusy is returned when a secret check had to wait longer than HashWait
// for a free password hash slot; nothing was checked.
var ErrBusy = errors.New("too many client secret checks at once")

// Authenticate checks a client's secret. It returns the client's config or
// ErrInvalidClient, ErrBusy, or admit's error; any other error is an
// internal failure.
//
// admit, when not nil, is called once before the secret is actually
// compared (not for a check remembered from a recent success, and once for
// requests that share one hash): a throttle counts the attempt there, and
// an error it returns is returned at once, before any hash runs. It is
// called at most once per call of Authenticate.
func (r *Registry) Authenticate(id, secret string, admit func() error) (*Config, error) {
	if admit == nil {
		admit = func() error { return nil }
	}
	c, known := r.byID[id]
	sum := sha256.Sum256([]byte(secret))
	if !known {
		if rc := r.runtimeClient(id); rc != nil {
			return r.authenticateRuntime(rc, sum, admit)
		}
	}
	cfg, err := r.authenticateConfigured(c, known, id, secret, sum, admit)
	if err == nil && r.disabled(id) {
		return nil, ErrInvalidClient
	}
	return cfg, err
}

// authenticateConfigured checks the secret of a configured client, or of
// an unknown one (the fake).
func (r *Registry) authenticateConfigured(c *client, known bool, id, secret string, sum [sha256.Size]byte, admit func() error) (*Config, error) {
	if !known {
		if err := admit(); err != nil {
			return nil, err
		}
		// Costs what a wrong secret of a configured client costs.
		if _, err := r.fake.matches(secret, sum[:]); err != nil {
			if errors.Is(err, ErrBusy) {
				return nil, err
			}
			return nil, fmt.Errorf("checking secret of client %q: %v", id, err)
		}
		return nil, ErrInvalidClient
	}
	if c.comparer == nil {
		if err := admit(); err != nil {
			return nil, err
		}
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
	// in flight must not each pay the slow hash. Only the request that runs
	// the hash is admitted (counted by the throttle): one hash, one guess.
	v, err, _ := r.inflight.Do(cacheKey, func() (any, error) {
		if err := admit(); err != nil {
			return false, &admitError{err}
		}
		ok, err := c.matches(secret, sum[:])
		if ok {
			r.verified.SetDefault(cacheKey, struct{}{})
		}
		return ok, err
	})
	switch {
	case err == nil:
	case errors.Is(err, ErrBusy):
		return nil, err
	default:
		var ae *admitError
		if errors.As(err, &ae) {
			return nil, ae.err
		}
		return nil, fmt.Errorf("checking secret of client %q: %v", id, err)
	}
	if !v.(bool) {
		return nil, ErrInvalidClient
	}
	return c.cfg, nil
}

// admitError carries admit's refusal out of the shared hash check.
type admitError struct{ err error }

func (e *admitError) Error() string { return e.err.Error() }

func (c *client) matches(secret string, sum []byte) (bool, error) {
	if c.comparer == nil {
		return subtle.ConstantTimeCompare(c.hash, sum) == 1, nil
	}
	if err := acquireHashSlot(); err != nil {
		return false, err
	}
	defer releaseHashSlot()
	return c.comparer.Compare(c.hash, []byte(secret))
}

// Password hashes are slow on purpose and use a whole CPU each. Without a
// bound, a burst of wrong secrets (from one address or many, faster than
// the throttle can refuse them) runs one hash per request at once and
// starves every other request of CPU, those of clients whose check is
// cached included: the review measured 38 s of CPU for a burst of 200 and
// a good client waiting 1.6-3.2 s. At most MaxConcurrentHashes run at once,
// in the whole process (CPUs are per process, not per issuer): one fewer
// than the CPUs Go schedules on, so one CPU always stays free for requests
// that need no hash (on a 2-CPU machine a burst left a cached client's p50
// at 16 ms with two slots, 0.3 ms with one).
//
// A check that finds every slot taken waits up to HashWait, then gives up
// with ErrBusy (the token endpoint answers 503 with Retry-After). Waiting
// costs no CPU, and the wait covers a few clients whose cached checks
// expire together even at bcrypt cost 14 (about a second a hash); refusing
// after a bound keeps a burst from queueing work for longer than its
// clients wait for an answer, and sheds it without hashing.
var (
	// MaxConcurrentHashes is the number of password hashes that may run at
	// once: the CPUs Go schedules on, less one, and at least one.
	MaxConcurrentHashes = max(1, runtime.GOMAXPROCS(0)-1)
	hashSlots           = make(chan struct{}, MaxConcurrentHashes)
)

// HashWait is how long a secret check waits for a free hash slot.
const HashWait = 2 * time.Second

func acquireHashSlot() error {
	select {
	case hashSlots <- struct{}{}:
	default:
		t := time.NewTimer(HashWait)
		defer t.Stop()
		select {
		case hashSlots <- struct{}{}:
		case <-t.C:
			metrics.PasswordHashes.WithLabelValues("busy").Inc()
			return ErrBusy
		}
	}
	metrics.PasswordHashes.WithLabelValues("run").Inc()
	metrics.PasswordHashesInFlight.Inc()
	return nil
}

func releaseHashSlot() {
	metrics.PasswordHashesInFlight.Dec()
	<-hashSlots
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

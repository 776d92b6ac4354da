// Package remotekeys fetches and keeps a JWK set published at a URL: the
// signing keys of a remote issuer (bearer_auth, found by RFC 8414 / OpenID
// Connect discovery or configured as jwks_url) and the public keys a
// private_key_jwt client publishes at its jwks_uri (internal/clientauth).
//
// A Fetcher holds the last good key set and refetches it every refresh
// interval and, rate-limited, when a JWT names an unknown kid; a failing
// fetch keeps the last good keys. What it fetches is bounded (MaxFetchSize
// bytes, MaxKeys keys), redirects are never followed, and keys that cannot
// verify a signature safely (symmetric, for encryption, weak, or of an
// unknown algorithm) are dropped. The algorithm of each key is its JWK alg,
// or the one its kind implies: a JWT's header never chooses it.
//
// A Fetcher is a caddy.Destructor: its users share it through a
// caddy.UsagePool of their own, so its keys survive a config reload and
// several routes (or issuers) make one set of fetches.
package remotekeys

import (
	"context"
	"crypto"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/tokengate/tokengate/internal/accesstoken"
)

// Bounds on what a remote party may make a Fetcher fetch and hold.
const (
	// MaxFetchSize caps a metadata document or a JWK set, in bytes.
	MaxFetchSize = 1 << 20
	// MaxKeys caps the keys of a JWK set; a larger set is refused as a
	// whole (the last good keys stay in use).
	MaxKeys = 100
	// minRSABits is the smallest RSA modulus accepted from a JWK set.
	minRSABits = 2048
)

// Timing of remote key fetches.
const (
	// DefaultRefreshInterval is how often a remote JWK set is refetched.
	DefaultRefreshInterval = 5 * time.Minute
	// RefetchMinInterval is the shortest time between two refetches for
	// an unknown kid: a key rotated in is seen within about a second, and
	// a flood of random kids costs one fetch per interval at most, not one
	// per request.
	RefetchMinInterval = time.Second
	// RefetchMaxInterval bounds the back-off of unknown-kid refetches: each
	// one that finds no new key doubles the wait before the next, up to
	// this (or the refresh interval, if shorter); one that finds a change
	// resets it to RefetchMinInterval. A sustained flood of random kids
	// thus costs a fetch per 30s, and a rotation during one is seen within
	// 30s at worst (the background refresh still runs besides).
	RefetchMaxInterval = 30 * time.Second
	// fetchTimeout bounds one discovery or JWKS fetch.
	fetchTimeout = 10 * time.Second
	// ProvisionTimeout bounds a first fetch made while Caddy starts; when
	// it fails Caddy starts anyway and what the keys sign is refused until
	// they arrive.
	ProvisionTimeout = 5 * time.Second
	// retryMin is the first delay of the background retries while no key
	// set was ever fetched; it doubles up to the refresh interval.
	retryMin = 2 * time.Second
)

// Config says where a Fetcher finds its key set.
type Config struct {
	// JWKSURL is the key set's URL. When empty, it is discovered from
	// Issuer's metadata (RFC 8414, then OpenID Connect Discovery), which
	// must name Issuer exactly.
	JWKSURL string
	// Issuer is the issuer URL whose keys these are, for discovery and
	// for the rule that an https issuer's keys come over https. Empty for
	// a client's jwks_uri.
	Issuer string
	// Refresh is how often the key set is refetched.
	// Default: DefaultRefreshInterval.
	Refresh time.Duration
	// Logger receives fetch failures and skipped keys; the caller adds
	// the fields that say whose keys these are. Default: none.
	Logger *zap.Logger
	// Now is the clock of the unknown-kid rate limit. Default: time.Now.
	Now func() time.Time
}

// Fetcher holds a remote JWK set; it is an accesstoken.KeySource.
//
// The unknown-kid rate limit counts only the fetches unknown kids caused:
// the start-up fetch and the periodic refresh do not delay the first
// refetch, so a key rotated in just after either is seen at once. Between
// two such refetches at least missWait passes; missWait starts at
// RefetchMinInterval (1s), doubles each time a refetch finds the same keys
// (or fails), up to RefetchMaxInterval, and falls back to 1s when one finds
// a change.
//
// This is a small fetcher of its own rather than jwx's jwk.Cache: it needs
// a size cap on the response, a cap on the number of keys, a filter that
// drops symmetric keys and derives algorithms, and the unknown-kid rate limit
// with an injectable clock, all of which would have to be wrapped around
// jwk.Cache anyway.
type Fetcher struct {
	issuer  string
	refresh time.Duration
	client  *http.Client
	logger  *zap.Logger
	now     func() time.Time

	snap atomic.Pointer[keySet]

	mu       sync.Mutex    // serializes fetches
	jwksURL  string        // configured or discovered; guarded by mu
	lastMiss time.Time     // the last refetch for an unknown kid; guarded by mu
	missWait time.Duration // the wait before the next one; guarded by mu
	maxWait  time.Duration

	cancel context.CancelFunc
	done   chan struct{}
}

// keySet is one fetched key set.
type keySet struct {
	byKID map[string]*accesstoken.Key
	only  *accesstoken.Key // the key of a one-key set, for JWTs without kid
}

// New makes a Fetcher; it fetches nothing until Start or a Key call.
func New(cfg Config) *Fetcher {
	refresh := cfg.Refresh
	if refresh <= 0 {
		refresh = DefaultRefreshInterval
	}
	logger, now := cfg.Logger, cfg.Now
	if logger == nil {
		logger = zap.NewNop()
	}
	if now == nil {
		now = time.Now
	}
	return &Fetcher{
		issuer:   cfg.Issuer,
		jwksURL:  cfg.JWKSURL,
		refresh:  refresh,
		missWait: min(RefetchMinInterval, refresh),
		maxWait:  min(RefetchMaxInterval, refresh),
		client:   &http.Client{Timeout: fetchTimeout, CheckRedirect: NoRedirects},
		logger:   logger,
		now:      now,
	}
}

// Start makes the first fetch, bounded by timeout, then refreshes in the
// background until Destruct. With timeout 0 the first fetch too is made in
// the background, at once.
func (f *Fetcher) Start(timeout time.Duration) {
	if timeout > 0 {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		if err := f.Fetch(ctx); err != nil {
			f.logger.Error("fetching the JWK set; what its keys sign is refused until they arrive", zap.Error(err))
		}
		cancel()
	}
	bg, stop := context.WithCancel(context.Background())
	f.cancel = stop
	f.done = make(chan struct{})
	go f.maintain(bg, timeout <= 0)
}

// maintain refetches the key set every refresh interval; while there is no
// key set at all it retries sooner, with a doubling delay. With now set,
// the first fetch is made at once.
func (f *Fetcher) maintain(ctx context.Context, now bool) {
	defer close(f.done)
	retry := retryMin
	for {
		wait := f.refresh
		if f.snap.Load() == nil {
			wait = min(retry, f.refresh)
			retry *= 2
		}
		if now {
			wait, now = 0, false
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		none := f.snap.Load() == nil
		fctx, cancel := context.WithTimeout(ctx, fetchTimeout)
		if err := f.Fetch(fctx); err != nil && ctx.Err() == nil {
			if none {
				f.logger.Error("fetching the JWK set; what its keys sign is refused until they arrive", zap.Error(err))
			} else {
				f.logger.Error("refreshing the JWK set; the last good keys stay in use", zap.Error(err))
			}
		}
		cancel()
	}
}

// Destruct stops the background refresh; the caddy.UsagePool sharing the
// Fetcher calls it when the last config using it is unloaded.
func (f *Fetcher) Destruct() error {
	if f.cancel != nil {
		f.cancel()
		<-f.done
	}
	return nil
}

// Key finds a key of the set, refetching it (rate-limited) for an unknown
// kid. It returns accesstoken.ErrNoKeys while no key set was ever fetched,
// and accesstoken.ErrUnknownKey for a kid the set does not hold.
func (f *Fetcher) Key(ctx context.Context, kid string) (*accesstoken.Key, error) {
	if k := f.snap.Load().find(kid); k != nil {
		return k, nil
	}
	f.refetch(ctx)
	s := f.snap.Load()
	if s == nil {
		return nil, accesstoken.ErrNoKeys
	}
	if k := s.find(kid); k != nil {
		return k, nil
	}
	return nil, accesstoken.ErrUnknownKey
}

// Published reports whether kid is in the last key set fetched.
func (f *Fetcher) Published(kid string) bool {
	return f.snap.Load().find(kid) != nil
}

func (s *keySet) find(kid string) *accesstoken.Key {
	if s == nil {
		return nil
	}
	if kid == "" {
		return s.only
	}
	return s.byKID[kid]
}

// refetch fetches the key set for an unknown kid, unless the last such
// refetch was less than missWait ago. Concurrent callers wait for the fetch
// in flight and then use its result instead of making their own.
func (f *Fetcher) refetch(ctx context.Context) {
	seen := f.snap.Load()
	f.mu.Lock()
	recent := f.missRecentLocked()
	f.mu.Unlock()
	if recent {
		return
	}
	// The fetch serves every waiting request, not only this one: it must
	// not be cut short when this request's client goes away.
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), fetchTimeout)
	defer cancel()
	if err := f.fetchForMiss(fctx, seen); err != nil {
		f.logger.Warn("refetching the JWK set for an unknown kid", zap.Error(err))
	}
}

// missRecentLocked reports whether an unknown-kid refetch happened less
// than missWait ago (a clock that went back counts as long ago).
func (f *Fetcher) missRecentLocked() bool {
	now := f.now()
	return !f.lastMiss.IsZero() && now.Sub(f.lastMiss) < f.missWait && !f.lastMiss.After(now)
}

// fetchForMiss is the refetch for an unknown kid of a caller that looked
// in the set seen. It is skipped when another caller made one while this
// one waited for the lock, or when any fetch brought a set since seen (the
// background first fetch, typically: the caller looks again in its
// result). It sets the wait before the next: back to the minimum when the
// keys changed, doubled (bounded) when they did not or the fetch failed.
func (f *Fetcher) fetchForMiss(ctx context.Context, seen *keySet) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.missRecentLocked() || f.snap.Load() != seen {
		return nil
	}
	before := f.snap.Load()
	f.lastMiss = f.now()
	err := f.fetchLocked(ctx)
	if err == nil && !before.sameKeys(f.snap.Load()) {
		f.missWait = min(RefetchMinInterval, f.maxWait)
	} else {
		f.missWait = min(2*f.missWait, f.maxWait)
	}
	return err
}

// sameKeys reports whether two key sets hold the same keys by kid.
func (s *keySet) sameKeys(o *keySet) bool {
	if s == nil || o == nil {
		return s == o
	}
	if len(s.byKID) != len(o.byKID) || (s.only == nil) != (o.only == nil) {
		return false
	}
	for kid, k := range s.byKID {
		ok, found := o.byKID[kid]
		if !found || !sameKey(k, ok) {
			return false
		}
	}
	return s.only == nil || sameKey(s.only, o.only)
}

// sameKey reports whether two keys are the same algorithm and public key.
func sameKey(a, b *accesstoken.Key) bool {
	if a.KID != b.KID || a.Alg != b.Alg {
		return false
	}
	pa, ok := a.Public.(interface{ Equal(crypto.PublicKey) bool })
	return ok && pa.Equal(b.Public)
}

// Fetch fetches the key set now (discovering its URL first if needed); on
// failure the last good keys stay in use.
func (f *Fetcher) Fetch(ctx context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.fetchLocked(ctx)
}

func (f *Fetcher) fetchLocked(ctx context.Context) error {
	if f.jwksURL == "" {
		u, err := f.discover(ctx)
		if err != nil {
			return err
		}
		f.jwksURL = u
	}
	body, err := f.get(ctx, f.jwksURL)
	if err != nil {
		return fmt.Errorf("fetching JWKS: %v", err)
	}
	set, skipped, err := parseJWKS(body)
	for _, s := range skipped {
		f.logger.Warn("ignoring a key of the JWK set", zap.String("reason", s))
	}
	if err != nil {
		return fmt.Errorf("JWKS at %s: %v", f.jwksURL, err)
	}
	f.snap.Store(set)
	return nil
}

package validator

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"go.uber.org/zap"

	"github.com/tokengate/tokengate/internal/accesstoken"
)

// Bounds on what a remote issuer may make the validator fetch and hold.
const (
	// maxFetchSize caps a metadata document or a JWK set.
	maxFetchSize = 1 << 20
	// maxRemoteKeys caps the keys of a JWK set; a larger set is refused
	// as a whole (the last good keys stay in use).
	maxRemoteKeys = 100
	// minRSABits is the smallest RSA modulus accepted from a JWK set.
	minRSABits = 2048
)

// Timing of remote key fetches.
const (
	// DefaultRefreshInterval is how often a remote JWK set is refetched.
	DefaultRefreshInterval = 5 * time.Minute
	// refetchMinInterval is the shortest time between two refetches for
	// an unknown kid: a key the issuer rotates in is seen within about a
	// second, and a flood of random kids costs one fetch per interval at
	// most, not one per request.
	refetchMinInterval = time.Second
	// refetchMaxInterval bounds the back-off of unknown-kid refetches: each
	// one that finds no new key doubles the wait before the next, up to
	// this (or the refresh interval, if shorter); one that finds a change
	// resets it to refetchMinInterval. A sustained flood of random kids
	// thus costs a fetch per 30s, and a rotation during one is seen within
	// 30s at worst (the background refresh still runs besides).
	refetchMaxInterval = 30 * time.Second
	// fetchTimeout bounds one discovery or JWKS fetch.
	fetchTimeout = 10 * time.Second
	// provisionTimeout bounds the first fetch, made while Caddy starts;
	// when it fails Caddy starts anyway and tokens are refused until the
	// keys arrive.
	provisionTimeout = 5 * time.Second
	// retryMin is the first delay of the background retries while no key
	// set was ever fetched; it doubles up to the refresh interval.
	retryMin = 2 * time.Second
)

// remotePool shares one fetcher per remote issuer (and jwks_url and refresh
// interval) between the routes that trust it and across config reloads, so
// keys survive a reload and several routes make one set of fetches.
var remotePool = caddy.NewUsagePool()

type remoteKey struct {
	issuer  string
	jwksURL string
	refresh time.Duration
}

// remoteKeys are the keys of a remote issuer, fetched from its JWKS: found
// by RFC 8414 / OpenID Connect discovery, or configured as jwks_url. They are
// refetched every refresh interval and, rate-limited, when a token names an
// unknown kid; a failing fetch keeps the last good keys.
//
// The unknown-kid rate limit counts only the fetches unknown kids caused:
// the start-up fetch and the periodic refresh do not delay the first
// refetch, so a key the issuer rotated in just after either is seen at
// once. Between two such refetches at least missWait passes; missWait
// starts at refetchMinInterval (1s), doubles each time a refetch finds the
// same keys (or fails), up to refetchMaxInterval, and falls back to 1s when
// one finds a change.
//
// This is a small fetcher of its own rather than jwx's jwk.Cache: it needs
// a size cap on the response, a cap on the number of keys, a filter that
// drops symmetric keys and derives algorithms, and the unknown-kid rate limit
// with an injectable clock, all of which would have to be wrapped around
// jwk.Cache anyway.
type remoteKeys struct {
	issuer  string
	refresh time.Duration
	client  *http.Client
	logger  *zap.Logger
	now     func() time.Time

	snap atomic.Pointer[remoteSet]

	mu       sync.Mutex    // serializes fetches
	jwksURL  string        // configured or discovered; guarded by mu
	lastMiss time.Time     // the last refetch for an unknown kid; guarded by mu
	missWait time.Duration // the wait before the next one; guarded by mu
	maxWait  time.Duration

	cancel context.CancelFunc
	done   chan struct{}
}

// remoteSet is one fetched key set.
type remoteSet struct {
	byKID map[string]*accesstoken.Key
	only  *accesstoken.Key // the key of a one-key set, for tokens without kid
}

func newRemoteKeys(issuer, jwksURL string, refresh time.Duration, logger *zap.Logger) *remoteKeys {
	if refresh <= 0 {
		refresh = DefaultRefreshInterval
	}
	return &remoteKeys{
		issuer:   issuer,
		jwksURL:  jwksURL,
		refresh:  refresh,
		missWait: min(refetchMinInterval, refresh),
		maxWait:  min(refetchMaxInterval, refresh),
		client:   &http.Client{Timeout: fetchTimeout, CheckRedirect: noRedirects},
		logger:   logger,
		now:      time.Now,
	}
}

// start makes the first fetch, bounded by timeout, then refreshes in the
// background until Destruct.
func (f *remoteKeys) start(timeout time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	if err := f.fetch(ctx); err != nil {
		f.logger.Error("fetching the signing keys of the issuer; tokens are refused until they arrive",
			zap.String("issuer", f.issuer), zap.Error(err))
	}
	cancel()
	bg, stop := context.WithCancel(context.Background())
	f.cancel = stop
	f.done = make(chan struct{})
	go f.maintain(bg)
}

// maintain refetches the key set every refresh interval; while there is no
// key set at all it retries sooner, with a doubling delay.
func (f *remoteKeys) maintain(ctx context.Context) {
	defer close(f.done)
	retry := retryMin
	for {
		wait := f.refresh
		if f.snap.Load() == nil {
			wait = min(retry, f.refresh)
			retry *= 2
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		fctx, cancel := context.WithTimeout(ctx, fetchTimeout)
		if err := f.fetch(fctx); err != nil && ctx.Err() == nil {
			f.logger.Error("refreshing the signing keys of the issuer; the last good keys stay in use",
				zap.String("issuer", f.issuer), zap.Error(err))
		}
		cancel()
	}
}

// Destruct stops the background refresh; remotePool calls it when the
// last config using the fetcher is unloaded.
func (f *remoteKeys) Destruct() error {
	if f.cancel != nil {
		f.cancel()
		<-f.done
	}
	return nil
}

// Key finds a key of the issuer, refetching its key set (rate-limited) for
// an unknown kid.
func (f *remoteKeys) Key(ctx context.Context, kid string) (*accesstoken.Key, error) {
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
func (f *remoteKeys) Published(kid string) bool {
	return f.snap.Load().find(kid) != nil
}

func (s *remoteSet) find(kid string) *accesstoken.Key {
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
func (f *remoteKeys) refetch(ctx context.Context) {
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
	if err := f.fetchForMiss(fctx); err != nil {
		f.logger.Warn("refetching the signing keys of the issuer for an unknown kid",
			zap.String("issuer", f.issuer), zap.Error(err))
	}
}

// missRecentLocked reports whether an unknown-kid refetch happened less
// than missWait ago (a clock that went back counts as long ago).
func (f *remoteKeys) missRecentLocked() bool {
	now := f.now()
	return !f.lastMiss.IsZero() && now.Sub(f.lastMiss) < f.missWait && !f.lastMiss.After(now)
}

// fetchForMiss is the refetch for an unknown kid, skipped when another
// caller made one while this one waited for the lock. It sets the wait
// before the next: back to the minimum when the keys changed, doubled
// (bounded) when they did not or the fetch failed.
func (f *remoteKeys) fetchForMiss(ctx context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.missRecentLocked() {
		return nil
	}
	before := f.snap.Load()
	f.lastMiss = f.now()
	err := f.fetchLocked(ctx)
	if err == nil && !before.sameKeys(f.snap.Load()) {
		f.missWait = min(refetchMinInterval, f.maxWait)
	} else {
		f.missWait = min(2*f.missWait, f.maxWait)
	}
	return err
}

// sameKeys reports whether two key sets hold the same keys by kid.
func (s *remoteSet) sameKeys(o *remoteSet) bool {
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

// fetch discovers the JWKS URL if needed and fetches the key set.
func (f *remoteKeys) fetch(ctx context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.fetchLocked(ctx)
}

func (f *remoteKeys) fetchLocked(ctx context.Context) error {
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
		f.logger.Warn("ignoring a key of the issuer's JWKS", zap.String("issuer", f.issuer), zap.String("reason", s))
	}
	if err != nil {
		return fmt.Errorf("JWKS at %s: %v", f.jwksURL, err)
	}
	f.snap.Store(set)
	return nil
}

// discoveryURLs are where an issuer's metadata may be: RFC 8414 (the
// well-known segment goes between host and path) and OpenID Connect
// Discovery (appended to the issuer URL).
func discoveryURLs(issuer string) []string {
	u, err := url.Parse(issuer)
	if err != nil {
		return nil
	}
	path := strings.TrimSuffix(u.Path, "/")
	oauth := *u
	oauth.Path = "/.well-known/oauth-authorization-server" + path
	oauth.RawPath = ""
	oidc := *u
	oidc.Path = path + "/.well-known/openid-configuration"
	oidc.RawPath = ""
	return []string{oauth.String(), oidc.String()}
}

// discover finds the issuer's jwks_uri in its metadata, which must name
// the configured issuer exactly.
func (f *remoteKeys) discover(ctx context.Context) (string, error) {
	var errs []error
	for _, mu := range discoveryURLs(f.issuer) {
		body, err := f.get(ctx, mu)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %v", mu, err))
			continue
		}
		var md struct {
			Issuer  string `json:"issuer"`
			JWKSURI string `json:"jwks_uri"`
		}
		if err := json.Unmarshal(body, &md); err != nil {
			errs = append(errs, fmt.Errorf("%s: decoding metadata: %v", mu, err))
			continue
		}
		if md.Issuer != f.issuer {
			errs = append(errs, fmt.Errorf("%s: metadata names issuer %q, not %q", mu, md.Issuer, f.issuer))
			continue
		}
		if err := checkJWKSURL(f.issuer, md.JWKSURI); err != nil {
			errs = append(errs, fmt.Errorf("%s: jwks_uri: %v", mu, err))
			continue
		}
		return md.JWKSURI, nil
	}
	return "", fmt.Errorf("discovering the issuer's metadata: %w", errors.Join(errs...))
}

// noRedirects keeps the fetcher on the URLs it was given. Following a
// redirect would let whoever controls the issuer's path (or a compromised
// page under it) point the key set at a host of their choosing, and the
// review had tokens signed by such a host accepted; the 3xx answer is
// returned as is and refused by get.
func noRedirects(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

// checkJWKSURL checks a key set URL, configured or discovered: absolute
// http(s), and https when the issuer is, since keys fetched in the clear
// can be swapped by anyone on the path and would undo the issuer's TLS.
func checkJWKSURL(issuer, jwksURL string) error {
	if err := checkHTTPURL(jwksURL); err != nil {
		return err
	}
	if strings.HasPrefix(issuer, "https://") && !strings.HasPrefix(jwksURL, "https://") {
		return fmt.Errorf("%q is not https, and the issuer is", jwksURL)
	}
	return nil
}

// get fetches a document of at most maxFetchSize bytes.
func (f *remoteKeys) get(ctx context.Context, u string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := f.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
		if resp.StatusCode >= 300 && resp.StatusCode < 400 {
			return nil, fmt.Errorf("status %d: redirects are not followed", resp.StatusCode)
		}
		return nil, fmt.Errorf("status %d", resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxFetchSize+1))
	if err != nil {
		return nil, err
	}
	if len(body) > maxFetchSize {
		return nil, fmt.Errorf("document larger than %d bytes", maxFetchSize)
	}
	return body, nil
}

// parseJWKS keeps the usable signature keys of a JWK set. Symmetric keys,
// keys for encryption, keys too weak and keys whose algorithm cannot be
// known are skipped (the reasons are returned for logging). A set with no
// usable key, or with more than maxRemoteKeys keys, is an error.
func parseJWKS(body []byte) (*remoteSet, []string, error) {
	var doc struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		return nil, nil, fmt.Errorf("decoding: %v", err)
	}
	if len(doc.Keys) > maxRemoteKeys {
		return nil, nil, fmt.Errorf("%d keys, more than the %d accepted", len(doc.Keys), maxRemoteKeys)
	}
	set := &remoteSet{byKID: make(map[string]*accesstoken.Key, len(doc.Keys))}
	var skipped []string
	var all []*accesstoken.Key
	for i, raw := range doc.Keys {
		k, err := usableKey(raw)
		if err != nil {
			skipped = append(skipped, fmt.Sprintf("key %d: %v", i, err))
			continue
		}
		if _, dup := set.byKID[k.KID]; dup {
			skipped = append(skipped, fmt.Sprintf("key %d: duplicate kid %q", i, k.KID))
			continue
		}
		if k.KID != "" {
			set.byKID[k.KID] = k
		}
		all = append(all, k)
	}
	if len(all) == 0 {
		return nil, skipped, errors.New("no usable signature key")
	}
	if len(all) == 1 {
		set.only = all[0]
	}
	return set, skipped, nil
}

// usableKey turns one JWK into a verification key.
func usableKey(raw json.RawMessage) (*accesstoken.Key, error) {
	k, err := jwk.ParseKey(raw)
	if err != nil {
		return nil, fmt.Errorf("parsing: %v", err)
	}
	if k.KeyType() == jwa.OctetSeq() {
		return nil, errors.New("symmetric keys are never accepted from a JWKS")
	}
	if use, ok := k.KeyUsage(); ok && use != "sig" {
		return nil, fmt.Errorf("use is %q, not sig", use)
	}
	pk, err := k.PublicKey()
	if err != nil {
		return nil, fmt.Errorf("public key: %v", err)
	}
	var pub any
	if err := jwk.Export(pk, &pub); err != nil {
		return nil, fmt.Errorf("exporting: %v", err)
	}
	kid, _ := k.KeyID()
	var alg jwa.SignatureAlgorithm
	if ka, ok := k.Algorithm(); ok {
		a, ok := jwa.LookupSignatureAlgorithm(ka.String())
		if !ok {
			return nil, fmt.Errorf("alg %q is not a signature algorithm", ka.String())
		}
		alg = a
	} else if alg, err = impliedAlg(pub); err != nil {
		return nil, err
	}
	if err := algFits(alg, pub); err != nil {
		return nil, err
	}
	return &accesstoken.Key{KID: kid, Alg: alg, Public: pub}, nil
}

// impliedAlg is the algorithm of a JWK without alg, when its type leaves
// no doubt. RSA keys are taken as RS256, the algorithm RFC 9068 and OpenID
// Connect make mandatory, since PS256 tokens nearly always come with alg.
func impliedAlg(pub any) (jwa.SignatureAlgorithm, error) {
	switch p := pub.(type) {
	case *ecdsa.PublicKey:
		switch p.Curve {
		case elliptic.P256():
			return jwa.ES256(), nil
		case elliptic.P384():
			return jwa.ES384(), nil
		case elliptic.P521():
			return jwa.ES512(), nil
		}
	case ed25519.PublicKey:
		return jwa.EdDSA(), nil
	case *rsa.PublicKey:
		return jwa.RS256(), nil
	}
	return jwa.SignatureAlgorithm{}, fmt.Errorf("no alg, and none can be derived from a %T", pub)
}

// algFits checks that alg is an asymmetric algorithm this key can verify.
func algFits(alg jwa.SignatureAlgorithm, pub any) error {
	ok := false
	switch p := pub.(type) {
	case *ecdsa.PublicKey:
		ok = (alg == jwa.ES256() && p.Curve == elliptic.P256()) ||
			(alg == jwa.ES384() && p.Curve == elliptic.P384()) ||
			(alg == jwa.ES512() && p.Curve == elliptic.P521())
	case ed25519.PublicKey:
		ok = alg == jwa.EdDSA()
	case *rsa.PublicKey:
		if p.N.BitLen() < minRSABits {
			return fmt.Errorf("RSA key of %d bits is too small", p.N.BitLen())
		}
		switch alg {
		case jwa.RS256(), jwa.RS384(), jwa.RS512(), jwa.PS256(), jwa.PS384(), jwa.PS512():
			ok = true
		}
	}
	if !ok {
		return fmt.Errorf("alg %q does not fit a %T", alg.String(), pub)
	}
	return nil
}

package validator

import (
	"crypto/sha256"
	"time"
	"unsafe"

	"github.com/patrickmn/go-cache"
)

// MaxCachedTokens bounds the verified-token cache. When it is full, newly
// verified tokens are not added (they are verified again on their next
// use) until expired entries are swept; nothing is evicted early, so a
// flood of distinct tokens cannot push out the tokens of steady clients.
const MaxCachedTokens = 100_000

// cacheSweepInterval is how often expired cache entries are deleted.
const cacheSweepInterval = time.Minute

// verified is the shared cache of tokens whose signature was checked, keyed
// by the SHA-256 of the token. It holds parsed claims, not verdicts: every
// request still checks expiry, revocation, issuer, audience, scopes and
// claims against its own route, so one cache serves all routes. An entry
// records the key source that verified it and is used only by routes
// trusting that same source.
var verified = cache.New(cache.NoExpiration, cacheSweepInterval)

// cached is one verified token.
type cached struct {
	src    keySource
	kid    string // of the key that verified it
	typ    string
	claims *Claims
}

// cacheKey is the cache key of a token: its SHA-256, as a 32-byte string.
func cacheKey(tok string) string {
	// Hashing the string's bytes in place saves copying the token on every
	// request; sha256 only reads its input.
	sum := sha256.Sum256(unsafe.Slice(unsafe.StringData(tok), len(tok)))
	return string(sum[:])
}

// lookupCached returns the cached entry of a token verified by src.
func lookupCached(key string, src keySource) *cached {
	v, ok := verified.Get(key)
	if !ok {
		return nil
	}
	e := v.(*cached)
	if e.src != src {
		return nil
	}
	return e
}

// storeCached adds a verified token until its expiry (at the latest).
func storeCached(key string, e *cached, now time.Time) {
	ttl := time.Unix(e.claims.Expiry, 0).Sub(now)
	if ttl <= 0 || verified.ItemCount() >= MaxCachedTokens {
		return
	}
	verified.Set(key, e, ttl)
}

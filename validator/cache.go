package validator

import (
	"crypto/sha256"
	"strings"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/patrickmn/go-cache"

	"github.com/tokengate/tokengate/internal/accesstoken"
)

// Bounds of the verified-token cache. When either is reached, newly
// verified tokens are not added (they are verified again on their next
// use) until expired entries are swept; nothing is evicted early, so a
// flood of distinct tokens cannot push out the tokens of steady clients.
const (
	MaxCachedTokens = 100_000
	// MaxCachedBytes bounds the memory of the entries (tokens of up to
	// 8 KiB each would otherwise make the entry bound worth 800 MB).
	MaxCachedBytes = 64 << 20
)

// entryOverhead is what an entry costs beyond its token's bytes: the
// claims, the token struct, the key and the map's bookkeeping.
const entryOverhead = 512

// cacheSweepInterval is how often expired cache entries are deleted.
const cacheSweepInterval = time.Minute

// tokenCache is the shared cache of tokens whose signature was checked. It
// holds verified tokens, not verdicts: every request still checks expiry,
// revocation, issuer, audience, scopes and claims against its own route,
// so one cache serves all routes. An entry records the key source that
// verified it and is used only by routes trusting that same source.
//
// It is keyed by the SHA-256 of the token's signed part (header and
// payload), not of the whole token, so that every signature of the same
// claims shares one entry: an ECDSA signature has a second valid form
// (s and n-s), and a token can be signed anew with the same claims. A hit
// also needs the presented signature to be the one that verified; another
// one is verified in full and does not take a second entry. (Non-canonical
// base64url spellings are refused by accesstoken before any entry is made.)
var tokenCache = cache.New(cache.NoExpiration, cacheSweepInterval)

// cachedBytes is the memory of tokenCache's entries, as entrySize counts it.
var cachedBytes atomic.Int64

func init() {
	tokenCache.OnEvicted(func(_ string, v any) { cachedBytes.Add(-int64(v.(*cachedToken).size)) })
}

// cachedToken is one verified token.
type cachedToken struct {
	src  accesstoken.KeySource
	sig  string // the signature that verified
	size int
	*accesstoken.Token
}

// splitSigned splits a token at its last dot into the signed part and the
// signature; the cache looks tokens up before they are parsed.
func splitSigned(tok string) (signed, sig string) {
	i := strings.LastIndexByte(tok, '.')
	if i < 0 {
		return tok, ""
	}
	return tok[:i], tok[i+1:]
}

// cacheKey is the cache key of a token's signed part: its SHA-256, as a
// 32-byte string.
func cacheKey(signed string) string {
	// Hashing the string's bytes in place saves copying the token on every
	// request; sha256 only reads its input.
	sum := sha256.Sum256(unsafe.Slice(unsafe.StringData(signed), len(signed)))
	return string(sum[:])
}

// lookupCached returns the cached token with this key and signature,
// verified by src.
func lookupCached(key, sig string, src accesstoken.KeySource) *cachedToken {
	v, ok := tokenCache.Get(key)
	if !ok {
		return nil
	}
	e := v.(*cachedToken)
	if e.src != src || e.sig != sig {
		return nil
	}
	return e
}

// storeCached adds a verified token until its expiry (at the latest),
// unless its claims already have an entry or the cache is full.
func storeCached(key string, e *cachedToken, now time.Time) {
	ttl := time.Unix(e.Claims.Expiry, 0).Sub(now)
	if ttl <= 0 || tokenCache.ItemCount() >= MaxCachedTokens || cachedBytes.Load()+int64(e.size) > MaxCachedBytes {
		return
	}
	if tokenCache.Add(key, e, ttl) == nil {
		cachedBytes.Add(int64(e.size))
	}
}

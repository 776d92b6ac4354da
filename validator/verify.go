package validator

import (
	"context"
	"math"
	"strings"
	"time"
)

// verify returns the verified form of a token: from the cache when this
// route's key source verified it before and its key is still published,
// else by checking its signature. It checks nothing route-specific.
func (h *Handler) verify(ctx context.Context, tok string) (*cached, error) {
	ck := cacheKey(tok)
	if !h.noCache {
		if e := lookupCached(ck, h.src); e != nil && h.src.published(e.kid) {
			cacheHit.Inc()
			return e, nil
		}
		cacheMiss.Inc()
	}
	hdrEnc, payloadEnc, sigEnc, err := splitCompact(tok)
	if err != nil {
		return nil, err
	}
	hdr, known := cachedHeader(hdrEnc)
	if !known {
		if hdr, err = parseHeader(hdrEnc); err != nil {
			return nil, err
		}
	}
	if strings.EqualFold(hdr.Alg, "none") {
		return nil, errUnsigned
	}
	if hdr.HasCrit {
		// No extension is understood, so any critical one must fail
		// (RFC 7515 §4.1.11).
		return nil, errCrit
	}
	if hdr.HasB64 {
		return nil, errMalformed // RFC 7797 unencoded payloads are not for tokens
	}
	k, err := h.src.key(ctx, hdr.KID)
	if err != nil {
		return nil, err
	}
	// The key decides the algorithm. A token naming another one (HS256
	// with the public key as secret, a downgrade) is refused outright.
	if hdr.Alg != k.alg.String() {
		return nil, errAlgMismatch
	}
	payload, err := verifySignature(k, tok, payloadEnc, sigEnc)
	if err != nil {
		return nil, err
	}
	if !known {
		rememberHeader(hdrEnc, hdr)
	}
	c, err := parseClaims(payload)
	if err != nil {
		return nil, err
	}
	e := &cached{src: h.src, kid: k.kid, typ: hdr.Typ, claims: c}
	if !h.noCache && c.hasExp {
		storeCached(ck, e, h.now())
	}
	return e, nil
}

// check applies the route's requirements to a verified token, in this
// order: typ, expiry and validity times, issuer, audience, revocation,
// required claims, scopes.
func (h *Handler) check(e *cached) error {
	c := e.claims
	if (h.local || h.RequireTyp) && !isAccessTokenTyp(e.typ) {
		return errTyp
	}
	if !c.hasExp {
		return errNoExpiry
	}
	now := h.now().Unix()
	leeway := int64(time.Duration(h.Leeway) / time.Second)
	if now >= sat(c.Expiry, leeway) {
		return errExpired
	}
	if c.NotBefore != 0 && sat(now, leeway) < c.NotBefore {
		return errNotYetValid
	}
	if c.IssuedAt != 0 && c.IssuedAt > sat(now, leeway) {
		return errFutureIssued
	}
	if c.Issuer != h.issuerID {
		return errIssuer
	}
	if !h.anyAudience && !c.hasAudience(h.audience) {
		return errAudience
	}
	if h.revocation != nil && c.JTI != "" && h.revocation.IsRevoked(c.JTI) {
		return errRevoked
	}
	for name, want := range h.Claims {
		if !c.matches(name, want) {
			return errClaimMismatch
		}
	}
	for _, s := range h.Scopes {
		if !c.hasScope(s) {
			return errInsufficient
		}
	}
	return nil
}

// sat adds b >= 0 to a, saturating instead of overflowing.
func sat(a, b int64) int64 {
	if a > math.MaxInt64-b {
		return math.MaxInt64
	}
	return a + b
}

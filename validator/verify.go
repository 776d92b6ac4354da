package validator

import (
	"context"
	"net/http"
	"slices"
	"strings"

	"github.com/tokengate/tokengate/internal/accesstoken"
)

// check verifies the access token of a request for this route, top to
// bottom:
//
//  1. the credential: one `Authorization: Bearer` or `Authorization: DPoP`
//     header, size-capped;
//  2. an opaque token: the issuer's introspection answer (cached); a JWT:
//     with several trusted issuers, the one its iss names, then the
//     token's signature and claims (accesstoken), or the verified
//     token cached when this route's key source verified the same
//     signature before and its key is still published;
//  3. the token's validity (accesstoken): typ, exp/nbf/iat with leeway,
//     issuer, audience, revocation;
//  4. the sender constraint (sender.go): a token bound to a DPoP key needs
//     a valid proof of it, and a route may require bound tokens;
//  5. the route's policy: required claims, then scopes.
func (h *Handler) check(r *http.Request) (*accesstoken.Claims, error) {
	tok, dpopScheme, err := credential(r.Header["Authorization"])
	if err != nil {
		return nil, err
	}
	t, v, err := h.verifyToken(r.Context(), tok)
	if err != nil {
		return nil, err
	}
	if err := v.Check(t); err != nil {
		return nil, err
	}
	c := t.Claims
	if err := h.checkSender(r, tok, dpopScheme, c); err != nil {
		return nil, err
	}
	for name, want := range h.Claims {
		if !matches(c.Values(name), want) {
			return nil, errClaimMismatch
		}
	}
	if err := h.checkScopes(c); err != nil {
		return nil, err
	}
	return c, nil
}

// checkScopes requires the route's scopes: from the token's scope (or scp)
// claim, or from the claim scope_claim names.
func (h *Handler) checkScopes(c *accesstoken.Claims) error {
	if len(h.Scopes) == 0 {
		return nil
	}
	if h.ScopeClaim == "" {
		for _, s := range h.Scopes {
			if !c.HasScope(s) {
				return errInsufficient
			}
		}
		return nil
	}
	var granted []string
	for _, v := range c.Values(h.ScopeClaim) {
		granted = append(granted, strings.Fields(v)...)
	}
	for _, s := range h.Scopes {
		if !slices.Contains(granted, s) {
			return errInsufficient
		}
	}
	return nil
}

// verifyToken returns the token's claims, vouched for by its issuer: an
// opaque token through the issuer's introspection endpoint (introspect.go)
// when the route has one, a JWT by its signature with the keys of the
// issuer its iss names (issuers.go). It also returns the verifier whose
// rules the claims must then pass.
func (h *Handler) verifyToken(ctx context.Context, tok string) (*accesstoken.Token, *accesstoken.Verifier, error) {
	if h.intro != nil && !isJWT(tok) {
		t, err := h.intro.token(ctx, tok)
		return t, h.intro.verifier, err
	}
	iss, err := h.issuerOf(tok)
	if err != nil {
		return nil, nil, err
	}
	t, err := iss.verifySignature(ctx, tok)
	return t, iss.verifier, err
}

// verifySignature returns the verified form of a token: from the cache
// when possible, else from accesstoken, caching it until its expiry.
func (h *Handler) verifySignature(ctx context.Context, tok string) (*accesstoken.Token, error) {
	if h.noCache {
		return h.verifier.VerifySignature(ctx, tok)
	}
	signed, sig := splitSigned(tok)
	key := cacheKey(signed)
	if e := lookupCached(key, sig, h.src); e != nil && h.src.Published(e.KID) {
		cacheHit.Inc()
		return e.Token, nil
	}
	cacheMiss.Inc()
	t, err := h.verifier.VerifySignature(ctx, tok)
	if err != nil {
		return nil, err
	}
	storeCached(key, &cachedToken{src: h.src, sig: sig, size: len(tok) + entryOverhead, Token: t}, h.now())
	return t, nil
}

// matches reports whether one of a claim's values is among want.
func matches(values, want []string) bool {
	for _, v := range values {
		for _, w := range want {
			if v == w {
				return true
			}
		}
	}
	return false
}

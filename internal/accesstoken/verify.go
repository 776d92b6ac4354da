// Package accesstoken owns the format of tokengate's access tokens, RFC 9068
// JWTs in compact JWS form, in both directions: the Claims an issuer signs
// (Sign) and a verifier reads (ParseClaims), and the Verifier that checks a
// token of a trusted issuer, top to bottom in this file.
//
// The rules a token must follow live here and nowhere else: the algorithm
// comes from the key, never from the token; no key or URL a token names is
// used; base64url, headers and claims are read strictly (one spelling per
// token, unique member names, numeric dates in range), as strictly as
// go-jose v4; times are checked with a leeway.
//
// The issuer's endpoints (tokenhandler) and the bearer_auth middleware
// (validator) both use this package; neither imports the other.
package accesstoken

import (
	"context"
	"math"
	"strings"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"

	"github.com/tokengate/tokengate/internal/keys"
)

// DefaultLeeway is the clock skew tolerated on exp, nbf and iat when
// nothing else is configured.
const DefaultLeeway = 30 * time.Second

// Key is a public key and the one algorithm it verifies. The algorithm is
// the key's, never the token's.
type Key struct {
	KID    string
	Alg    jwa.SignatureAlgorithm
	Public any // *ecdsa.PublicKey, *rsa.PublicKey or ed25519.PublicKey
}

// KeySource finds the keys of a trusted issuer.
type KeySource interface {
	// Key returns the key named kid, looking further (storage, JWKS
	// refetch; both rate-limited) when it is not known yet. It returns
	// ErrUnknownKey or ErrNoKeys when there is none.
	Key(ctx context.Context, kid string) (*Key, error)
	// Published reports whether kid is still among the issuer's keys,
	// without any I/O; a cached token whose key was withdrawn is verified
	// anew (and refused).
	Published(kid string) bool
}

// LocalKeys are the keys of an issuer of this Caddy instance, read in
// process: a key rotated in (also by another instance on the same storage)
// is seen at once, with no HTTP round trip.
type LocalKeys struct{ Keys *keys.Manager }

// Key finds a published key of the issuer.
func (l LocalKeys) Key(ctx context.Context, kid string) (*Key, error) {
	if kid == "" {
		return nil, ErrUnknownKey // our issuer always names its key
	}
	k, ok := l.Keys.Lookup(ctx, kid)
	if !ok {
		return nil, ErrUnknownKey
	}
	return &Key{KID: k.KID, Alg: k.Alg, Public: k.Signer.Public()}, nil
}

// Published reports whether kid is among the issuer's keys.
func (l LocalKeys) Published(kid string) bool {
	_, ok := l.Keys.Lookup(context.Background(), kid)
	return ok
}

// VerifierConfig is what a Verifier accepts.
type VerifierConfig struct {
	// Keys are the trusted issuer's keys.
	Keys KeySource
	// Issuer is the exact iss accepted.
	Issuer string
	// Audience lists the accepted audiences: aud must name one of them.
	Audience []string
	// AnyAudience accepts tokens whatever their audience: the issuer's own
	// revocation and introspection endpoints handle tokens meant for any
	// resource. Audience is then not read.
	AnyAudience bool
	// Leeway is the clock skew tolerated on exp, nbf and iat.
	Leeway time.Duration
	// RequireTyp makes tokens need the RFC 9068 header typ at+jwt (or
	// application/at+jwt), which keeps ID tokens and other JWTs signed by
	// the same keys out.
	RequireTyp bool
	// Revoked, when set, reports whether the token with this jti was
	// revoked. It is called on every check, so it must not do I/O.
	Revoked func(jti string) bool
	// SessionRevoked, when set, reports whether the tokens whose sid is
	// sid (a refresh token family) were revoked. It is called on every
	// check of a token with a sid, so it must not do I/O.
	SessionRevoked func(sid string) bool
	// CutOff, when set, reports whether the tokens of a client issued at
	// iat (Unix seconds) are refused: the client was disabled, or its
	// tokens revoked, after iat. It is called on every check, so it must
	// not do I/O.
	CutOff func(clientID string, iat int64) bool
	// Now is the clock. Default: time.Now.
	Now func() time.Time
}

// Verifier checks access tokens of one trusted issuer.
type Verifier struct {
	cfg    VerifierConfig
	leeway int64 // seconds
}

// NewVerifier makes a Verifier.
func NewVerifier(cfg VerifierConfig) *Verifier {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Verifier{cfg: cfg, leeway: int64(cfg.Leeway / time.Second)}
}

// Token is a token whose signature verified: the key that verified it, its
// header's typ and its claims. It holds nothing that depends on the time or
// on who asks, so it may be cached until its expiry and checked again with
// Check by every verifier trusting the same keys.
type Token struct {
	KID    string
	Typ    string
	Claims *Claims
}

// Verify checks a token completely (VerifySignature, then Check) and
// returns its claims.
func (v *Verifier) Verify(ctx context.Context, tok string) (*Claims, error) {
	t, err := v.VerifySignature(ctx, tok)
	if err != nil {
		return nil, err
	}
	if err := v.Check(t); err != nil {
		return nil, err
	}
	return t.Claims, nil
}

// VerifySignature reads a compact JWS and checks its signature with the
// key it names, then decodes its claims. It checks nothing that changes
// with time.
func (v *Verifier) VerifySignature(ctx context.Context, tok string) (*Token, error) {
	if len(tok) > MaxTokenSize {
		return nil, ErrTooLarge
	}
	if tok == "" {
		return nil, ErrMalformed
	}
	hdrEnc, payloadEnc, _, err := splitCompact(tok)
	if err != nil {
		return nil, err
	}
	hdr, known := lookupHeader(hdrEnc)
	if !known {
		if hdr, err = parseHeader(hdrEnc); err != nil {
			return nil, err
		}
	}
	if strings.EqualFold(hdr.Alg, "none") {
		return nil, ErrUnsigned
	}
	if hdr.HasCrit {
		// No extension is understood, so any critical one must fail
		// (RFC 7515 §4.1.11).
		return nil, ErrCrit
	}
	if hdr.HasB64 {
		return nil, ErrMalformed // RFC 7797 unencoded payloads are not for tokens
	}
	k, err := v.cfg.Keys.Key(ctx, hdr.KID)
	if err != nil {
		return nil, err
	}
	// The key decides the algorithm. A token naming another one (HS256
	// with the public key as secret, a downgrade) is refused outright.
	if hdr.Alg != k.Alg.String() {
		return nil, ErrAlgMismatch
	}
	payload, err := verifySignature(k, tok, payloadEnc)
	if err != nil {
		return nil, err
	}
	if !known {
		rememberHeader(hdrEnc, hdr)
	}
	c, err := ParseClaims(payload)
	if err != nil {
		return nil, err
	}
	return &Token{KID: k.KID, Typ: hdr.Typ, Claims: c}, nil
}

// Check applies the verifier's rules to a token whose signature verified,
// in this order: typ, expiry and validity times, issuer, audience,
// revocation, the client's cut-off.
func (v *Verifier) Check(t *Token) error {
	c := t.Claims
	if v.cfg.RequireTyp && !isAccessTokenTyp(t.Typ) {
		return ErrTyp
	}
	if !c.hasExp {
		return ErrNoExpiry
	}
	now := v.cfg.Now().Unix()
	if now >= addSaturating(c.Expiry, v.leeway) {
		return ErrExpired
	}
	if c.NotBefore != 0 && addSaturating(now, v.leeway) < c.NotBefore {
		return ErrNotYetValid
	}
	if c.IssuedAt != 0 && c.IssuedAt > addSaturating(now, v.leeway) {
		return ErrFutureIssued
	}
	if c.Issuer != v.cfg.Issuer {
		return ErrIssuer
	}
	if !v.cfg.AnyAudience && !c.HasAudience(v.cfg.Audience) {
		return ErrAudience
	}
	if v.cfg.Revoked != nil && c.JTI != "" && v.cfg.Revoked(c.JTI) {
		return ErrRevoked
	}
	if v.cfg.SessionRevoked != nil && c.SessionID != "" && v.cfg.SessionRevoked(c.SessionID) {
		return ErrRevoked
	}
	if v.cfg.CutOff != nil && v.cfg.CutOff(c.ClientID, c.IssuedAt) {
		return ErrRevoked
	}
	return nil
}

// addSaturating adds b >= 0 to a, saturating instead of overflowing.
func addSaturating(a, b int64) int64 {
	if a > math.MaxInt64-b {
		return math.MaxInt64
	}
	return a + b
}

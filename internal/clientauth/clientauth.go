// Package clientauth authenticates clients by private_key_jwt (RFC 7523
// §2.2, OpenID Connect Core §9): the client signs a short-lived JWT, the
// client assertion, with a private key whose public half it registered.
// Client secrets are checked by internal/clients (secret.go).
//
// An assertion must be a compact JWS signed with one of the client's keys,
// with that key's own algorithm (never none, never an HMAC); iss and sub
// the client id; aud naming the token endpoint URL or the issuer; exp
// present and at most MaxLifetime ahead (and past iat by at most that);
// nbf and iat, when present, not in the future; and a jti never accepted
// before within its lifetime.
//
// Replay: a jti is claimed in the issuer's state (state.SeenOnce: Caddy's
// storage or Redis) until the assertion's exp plus Leeway, under a hash of
// the client id and the jti, so that instances sharing the state accept an
// assertion once between them. When the state cannot be reached the
// assertion is not accepted: Verify's error then wraps
// state.ErrUnavailable (answered 503), not ErrInvalid.
package clientauth

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"

	"github.com/tokengate/tokengate/internal/accesstoken"
	"github.com/tokengate/tokengate/internal/clients"
	"github.com/tokengate/tokengate/internal/state"
)

// AssertionType is the client_assertion_type of private_key_jwt.
const AssertionType = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

// MaxLifetime bounds how far an assertion's exp may lie ahead of now (and
// of its iat): an assertion is made for one request.
const MaxLifetime = 5 * time.Minute

// Leeway is the clock skew tolerated on an assertion's times.
const Leeway = 30 * time.Second

// SigningAlgs are the algorithms a client's keys may sign with.
var SigningAlgs = []string{"ES256", "ES384", "ES512", "EdDSA", "RS256", "PS256"}

// ErrInvalid is returned for any assertion that does not authenticate a
// client: the reasons are not told apart in answers.
var ErrInvalid = errors.New("client assertion refused")

// Verifier checks client assertions for one issuer.
type Verifier struct {
	keys      map[string]accesstoken.KeySource // configured keys, or a jwks_uri's (keys_remote.go)
	pooled    []remoteKey                      // the jwks_uri fetchers held
	tls       map[string]*tlsClient
	audiences []string
	now       func() time.Time
	seen      state.SeenOnce
}

// NewVerifier loads the public keys of the clients that registered some
// (jwks, public_key) and accepts assertions whose aud names one of
// audiences, each once across the instances sharing seen.
func NewVerifier(cfgs []*clients.Config, audiences []string, seen state.SeenOnce, now func() time.Time) (*Verifier, error) {
	v := &Verifier{keys: map[string]accesstoken.KeySource{}, tls: map[string]*tlsClient{}, audiences: audiences, now: now, seen: seen}
	for _, c := range cfgs {
		ks, err := LoadKeys(c)
		if err != nil {
			return nil, fmt.Errorf("client %q: %v", c.ClientID, err)
		}
		if len(ks) > 0 {
			v.keys[c.ClientID] = ks
		}
		t, err := loadTLS(c)
		if err != nil {
			return nil, fmt.Errorf("client %q: %v", c.ClientID, err)
		}
		if t != nil {
			v.tls[c.ClientID] = t
		}
	}
	return v, nil
}

// HasKeys reports whether any client registered keys.
func (v *Verifier) HasKeys() bool { return len(v.keys) > 0 }

// ClientID returns the client an assertion claims to come from (its sub,
// else its iss), unverified: for finding the keys to verify it with.
func ClientID(assertion string) (string, bool) {
	parts := strings.Split(assertion, ".")
	if len(assertion) > accesstoken.MaxTokenSize || len(parts) != 3 {
		return "", false
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return "", false
	}
	c, err := accesstoken.ParseClaims(raw)
	if err != nil {
		return "", false
	}
	if c.Subject != "" {
		return c.Subject, true
	}
	return c.Issuer, c.Issuer != ""
}

// Verify checks an assertion of client id and claims its jti. Every
// refusal is ErrInvalid wrapped with a reason for logs; an error that is
// not ErrInvalid (the state unreachable: state.ErrUnavailable) is the
// server's, and the assertion was not accepted.
func (v *Verifier) Verify(ctx context.Context, id, assertion string) error {
	ks, ok := v.keys[id]
	if !ok {
		return fmt.Errorf("%w: the client has no registered keys", ErrInvalid)
	}
	now := v.now()
	av := accesstoken.NewVerifier(accesstoken.VerifierConfig{
		Keys:     ks,
		Issuer:   id,
		Audience: v.audiences,
		Leeway:   Leeway,
		Now:      func() time.Time { return now },
	})
	c, err := av.Verify(ctx, assertion)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrInvalid, err) // ErrKeysUnavailable stays visible
	}
	if c.Subject != id {
		return fmt.Errorf("%w: sub is not the client id", ErrInvalid)
	}
	if c.JTI == "" {
		return fmt.Errorf("%w: no jti", ErrInvalid)
	}
	maxExp := now.Add(MaxLifetime + Leeway).Unix()
	if c.Expiry > maxExp || (c.IssuedAt != 0 && c.Expiry-c.IssuedAt > int64(MaxLifetime/time.Second)) {
		return fmt.Errorf("%w: lifetime longer than %v", ErrInvalid, MaxLifetime)
	}
	// Claimed last, once the signature is known good: only the holder of
	// a registered key can add claims.
	first, err := v.seen.Claim(ctx, replayKey(id, c.JTI), time.Unix(c.Expiry, 0).Add(Leeway))
	if err != nil {
		return fmt.Errorf("claiming the assertion's jti: %w", err)
	}
	if !first {
		return fmt.Errorf("%w: jti replayed", ErrInvalid)
	}
	return nil
}

// replayKey is the claim of a client's jti: a hash, so that no jti reaches
// the state store (or its logs), of the two joined unambiguously (the id's
// length first).
func replayKey(id, jti string) string {
	sum := sha256.Sum256([]byte(strconv.Itoa(len(id)) + ":" + id + jti))
	return "client_assertion:" + hex.EncodeToString(sum[:])
}

// clientKeys are one client's public keys, as an accesstoken.KeySource.
type clientKeys []*accesstoken.Key

// Key finds the key named kid; with no kid, the client's only key.
func (ks clientKeys) Key(_ context.Context, kid string) (*accesstoken.Key, error) {
	if kid == "" && len(ks) == 1 {
		return ks[0], nil
	}
	for _, k := range ks {
		if k.KID == kid && kid != "" {
			return k, nil
		}
	}
	return nil, accesstoken.ErrUnknownKey
}

// Published reports whether kid is one of the client's keys.
func (ks clientKeys) Published(kid string) bool {
	_, err := ks.Key(context.Background(), kid)
	return err == nil
}

// LoadKeys reads a client's registered public keys: its inline JWK set
// and its PEM file (public keys or certificates). A private key in either
// is refused: the issuer must never hold a client's private key.
func LoadKeys(c *clients.Config) (clientKeys, error) {
	var out clientKeys
	if len(c.JWKS) > 0 {
		set, err := jwk.Parse(c.JWKS)
		if err != nil {
			return nil, fmt.Errorf("jwks: %v", err)
		}
		for i := range set.Len() {
			k, _ := set.Key(i)
			if priv, err := jwk.IsPrivateKey(k); err != nil || priv {
				return nil, fmt.Errorf("jwks: key %d must be a public asymmetric key", i)
			}
			var pub any
			if err := jwk.Export(k, &pub); err != nil {
				return nil, fmt.Errorf("jwks: key %d: %v", i, err)
			}
			kid, _ := k.KeyID()
			alg := ""
			if a, ok := k.Algorithm(); ok {
				alg = a.String()
			}
			key, err := newKey(kid, alg, pub)
			if err != nil {
				return nil, fmt.Errorf("jwks: key %d: %v", i, err)
			}
			out = append(out, key)
		}
	}
	if c.PublicKey != "" {
		err := eachPEM(c.PublicKey, func(b *pem.Block) error {
			var pub any
			var err error
			switch b.Type {
			case "PUBLIC KEY":
				pub, err = x509.ParsePKIXPublicKey(b.Bytes)
			case "CERTIFICATE":
				var cert *x509.Certificate
				if cert, err = x509.ParseCertificate(b.Bytes); err == nil {
					pub = cert.PublicKey
				}
			default:
				err = fmt.Errorf("a %s block (only PUBLIC KEY and CERTIFICATE blocks; never a private key)", b.Type)
			}
			if err != nil {
				return err
			}
			key, err := newKey("", "", pub)
			if err != nil {
				return err
			}
			out = append(out, key)
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("public_key %q: %v", c.PublicKey, err)
		}
		if len(out) == 0 {
			return nil, fmt.Errorf("public_key %q: no PEM block", c.PublicKey)
		}
	}
	return out, nil
}

// eachPEM calls f with each PEM block of the file at path.
func eachPEM(path string, f func(*pem.Block) error) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	for rest := data; ; {
		var b *pem.Block
		if b, rest = pem.Decode(rest); b == nil {
			return nil
		}
		if err := f(b); err != nil {
			return err
		}
	}
}

// newKey pairs a public key with its algorithm: the one the JWK names, or
// the one its kind implies (RSA keys: RS256 unless the JWK says PS256).
func newKey(kid, alg string, pub any) (*accesstoken.Key, error) {
	implied := ""
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		implied = map[elliptic.Curve]string{elliptic.P256(): "ES256", elliptic.P384(): "ES384", elliptic.P521(): "ES512"}[k.Curve]
	case ed25519.PublicKey:
		implied = "EdDSA"
	case *rsa.PublicKey:
		if k.N.BitLen() < 2048 {
			return nil, errors.New("RSA keys need at least 2048 bits")
		}
		implied = "RS256"
		if alg == "PS256" {
			implied = alg
		}
	}
	if implied == "" {
		return nil, fmt.Errorf("unsupported key type %T", pub)
	}
	if alg != "" && alg != implied {
		return nil, fmt.Errorf("alg %s does not fit the key (%s)", alg, implied)
	}
	if !slices.Contains(SigningAlgs, implied) {
		return nil, fmt.Errorf("algorithm %s not supported", implied)
	}
	sa, ok := jwa.LookupSignatureAlgorithm(implied)
	if !ok {
		return nil, fmt.Errorf("algorithm %s unknown", implied)
	}
	return &accesstoken.Key{KID: kid, Alg: sa, Public: pub}, nil
}

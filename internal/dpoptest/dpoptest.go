// Package dpoptest makes DPoP proofs (RFC 9449) for tests and the load
// script, through jwx, independently of the checker in internal/dpop. No
// production code imports it.
package dpoptest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"
)

// Key is a client's DPoP key pair.
type Key struct {
	Alg     string
	Private crypto.Signer
	public  jwk.Key
}

// NewKey makes a key for alg: ES256, ES384, EdDSA, RS256 or PS256.
func NewKey(alg string) (*Key, error) {
	var priv crypto.Signer
	var err error
	switch alg {
	case "ES256":
		priv, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case "ES384":
		priv, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	case "EdDSA":
		_, priv, err = ed25519.GenerateKey(rand.Reader)
	case "RS256", "PS256":
		priv, err = rsa.GenerateKey(rand.Reader, 2048)
	default:
		return nil, fmt.Errorf("dpoptest: unsupported algorithm %s", alg)
	}
	if err != nil {
		return nil, err
	}
	return FromSigner(alg, priv)
}

// FromSigner makes a Key of an existing private key.
func FromSigner(alg string, priv crypto.Signer) (*Key, error) {
	pub, err := jwk.Import(priv.Public())
	if err != nil {
		return nil, err
	}
	return &Key{Alg: alg, Private: priv, public: pub}, nil
}

// JKT is the key's RFC 7638 SHA-256 thumbprint, base64url.
func (k *Key) JKT() string {
	tp, err := k.public.Thumbprint(crypto.SHA256)
	if err != nil {
		panic(err)
	}
	return base64.RawURLEncoding.EncodeToString(tp)
}

// Public is the key's public JWK.
func (k *Key) Public() jwk.Key { return k.public }

// Claims are the claims of a proof; Proof fills jti and iat when they are
// empty.
type Claims struct {
	JTI   string `json:"jti"`
	HTM   string `json:"htm"`
	HTU   string `json:"htu"`
	IAT   int64  `json:"iat"`
	ATH   string `json:"ath,omitempty"`
	Nonce string `json:"nonce,omitempty"`
}

// Proof makes a proof for method and url, bound to token when it is not
// empty, at time now.
func (k *Key) Proof(method, url, token string, now time.Time) string {
	c := Claims{HTM: method, HTU: url, IAT: now.Unix()}
	if token != "" {
		c.ATH = ATH(token)
	}
	return k.Sign(c, nil)
}

// Sign makes a proof with these claims, a fresh jti when c.JTI is empty,
// and header members set on top of typ, alg and jwk (a nil value removes
// one).
func (k *Key) Sign(c Claims, header map[string]any) string {
	if c.JTI == "" {
		b := make([]byte, 16)
		_, _ = rand.Read(b)
		c.JTI = base64.RawURLEncoding.EncodeToString(b)
	}
	payload, err := json.Marshal(c)
	if err != nil {
		panic(err)
	}
	return k.SignPayload(payload, header)
}

// SignPayload signs any payload as a proof.
func (k *Key) SignPayload(payload []byte, header map[string]any) string {
	hdr := jws.NewHeaders()
	must(hdr.Set("typ", "dpop+jwt"))
	must(hdr.Set("jwk", k.public))
	for name, v := range header {
		if v == nil {
			must(hdr.Remove(name))
			continue
		}
		must(hdr.Set(name, v))
	}
	alg, ok := jwa.LookupSignatureAlgorithm(k.Alg)
	if !ok {
		panic("dpoptest: unknown algorithm " + k.Alg)
	}
	signed, err := jws.Sign(payload, jws.WithKey(alg, k.Private, jws.WithProtectedHeaders(hdr)))
	if err != nil {
		panic(err)
	}
	return string(signed)
}

// ATH is the ath claim for an access token.
func ATH(token string) string {
	sum := sha256.Sum256([]byte(token))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

func must(err error) {
	if err != nil {
		panic(err)
	}
}

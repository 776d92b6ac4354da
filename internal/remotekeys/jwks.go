package remotekeys

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"

	"github.com/tokengate/tokengate/internal/accesstoken"
)

// parseJWKS keeps the usable signature keys of a JWK set. Symmetric keys,
// keys for encryption, keys too weak and keys whose algorithm cannot be
// known are skipped (the reasons are returned for logging). A set with no
// usable key, or with more than MaxKeys keys, is an error.
func parseJWKS(body []byte) (*keySet, []string, error) {
	var doc struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		return nil, nil, fmt.Errorf("decoding: %v", err)
	}
	if len(doc.Keys) > MaxKeys {
		return nil, nil, fmt.Errorf("%d keys, more than the %d accepted", len(doc.Keys), MaxKeys)
	}
	set := &keySet{byKID: make(map[string]*accesstoken.Key, len(doc.Keys))}
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

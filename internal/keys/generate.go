package keys

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
)

// Supported signing algorithms. The algorithm is a property of the key: a key
// is created for one algorithm and the validator verifies with that algorithm
// only, whatever a token's header claims.
const (
	ES256 = "ES256"
	EdDSA = "EdDSA"
	RS256 = "RS256"
	PS256 = "PS256"
)

// DefaultAlg is the signing algorithm used when none is configured.
const DefaultAlg = ES256

// rsaBits is the modulus size of generated RSA keys.
const rsaBits = 2048

// ValidAlg reports whether alg is one of the supported signing algorithms.
func ValidAlg(alg string) bool {
	switch alg {
	case ES256, EdDSA, RS256, PS256:
		return true
	}
	return false
}

// generate makes a new private key suitable for alg.
func generate(alg string) (crypto.Signer, error) {
	switch alg {
	case ES256:
		return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case EdDSA:
		_, priv, err := ed25519.GenerateKey(rand.Reader)
		return priv, err
	case RS256, PS256:
		return rsa.GenerateKey(rand.Reader, rsaBits)
	}
	return nil, fmt.Errorf("unsupported signing algorithm %q", alg)
}

// checkAlg verifies that key can sign with alg.
func checkAlg(key crypto.Signer, alg string) error {
	switch k := key.(type) {
	case *ecdsa.PrivateKey:
		if alg == ES256 && k.Curve == elliptic.P256() {
			return nil
		}
		return fmt.Errorf("an ECDSA %s key cannot sign %s (ES256 needs P-256)", k.Curve.Params().Name, alg)
	case ed25519.PrivateKey:
		if alg == EdDSA {
			return nil
		}
		return fmt.Errorf("an Ed25519 key cannot sign %s", alg)
	case *rsa.PrivateKey:
		if alg != RS256 && alg != PS256 {
			return fmt.Errorf("an RSA key cannot sign %s", alg)
		}
		if k.N.BitLen() < rsaBits {
			return fmt.Errorf("RSA key of %d bits is too small (at least %d)", k.N.BitLen(), rsaBits)
		}
		return nil
	}
	return fmt.Errorf("unsupported key type %T", key)
}

// algFor returns the default algorithm for a key type.
func algFor(key crypto.Signer) string {
	switch key.(type) {
	case ed25519.PrivateKey:
		return EdDSA
	case *rsa.PrivateKey:
		return RS256
	}
	return ES256
}

// marshalPrivate encodes a private key as PKCS #8 DER.
func marshalPrivate(key crypto.Signer) ([]byte, error) {
	return x509.MarshalPKCS8PrivateKey(key)
}

// parsePrivate decodes PKCS #8 DER into a signing key.
func parsePrivate(der []byte) (crypto.Signer, error) {
	k, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, err
	}
	s, ok := k.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("unsupported key type %T", k)
	}
	return s, nil
}

// LoadPEM reads a private key from a PEM file: PKCS #8 ("PRIVATE KEY"),
// SEC 1 ("EC PRIVATE KEY") or PKCS #1 ("RSA PRIVATE KEY").
func LoadPEM(path string) (crypto.Signer, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return ParsePEM(data)
}

// ParsePEM decodes the first private key block of a PEM document.
func ParsePEM(data []byte) (crypto.Signer, error) {
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			return nil, errors.New("no private key found in PEM data")
		}
		switch block.Type {
		case "PRIVATE KEY":
			return parsePrivate(block.Bytes)
		// Return the typed results through a nil check: returning them
		// directly would turn a nil *ecdsa.PrivateKey into a non-nil Signer.
		case "EC PRIVATE KEY":
			k, err := x509.ParseECPrivateKey(block.Bytes)
			if err != nil {
				return nil, err
			}
			return k, nil
		case "RSA PRIVATE KEY":
			k, err := x509.ParsePKCS1PrivateKey(block.Bytes)
			if err != nil {
				return nil, err
			}
			return k, nil
		}
	}
}

// thumbprintKID derives a key id from the public key (SHA-256 of its
// PKIX encoding), so a given key always gets the same kid.
func thumbprintKID(key crypto.Signer) (string, error) {
	der, err := x509.MarshalPKIXPublicKey(key.Public())
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(der)
	return base64.RawURLEncoding.EncodeToString(sum[:16]), nil
}

package validator

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/sha256"
	"encoding/base64"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/lestrrat-go/jwx/v3/jws"
)

// verifySignature checks the signature of the compact JWS tok (split into
// payloadEnc and sigEnc) with k, whose algorithm the header was already
// found to name, and returns the decoded payload. ES256 and EdDSA, what
// issuers sign with, are checked here directly with the standard library;
// jws.VerifyCompactFast, used for the others, would parse the header again
// and unpack ECDSA signatures into big integers first.
func verifySignature(k *verifyKey, tok, payloadEnc, sigEnc string) ([]byte, error) {
	input := tok[:len(tok)-len(sigEnc)-1]
	switch pub := k.pub.(type) {
	case *ecdsa.PublicKey:
		if k.alg.String() != "ES256" || pub.Curve != elliptic.P256() {
			break
		}
		var sig [64]byte
		if base64.RawURLEncoding.DecodedLen(len(sigEnc)) != len(sig) {
			return nil, errBadSignature
		}
		if _, err := base64.RawURLEncoding.Decode(sig[:], bytesOf(sigEnc)); err != nil {
			return nil, errBadSignature
		}
		digest := sha256.Sum256(bytesOf(input))
		if !ecdsa.VerifyASN1(pub, digest[:], derECDSA(sig[:32], sig[32:])) {
			return nil, errBadSignature
		}
		return decodePayload(payloadEnc)
	case ed25519.PublicKey:
		if k.alg.String() != "EdDSA" || len(pub) != ed25519.PublicKeySize {
			break
		}
		var sig [ed25519.SignatureSize]byte
		if base64.RawURLEncoding.DecodedLen(len(sigEnc)) != len(sig) {
			return nil, errBadSignature
		}
		if _, err := base64.RawURLEncoding.Decode(sig[:], bytesOf(sigEnc)); err != nil {
			return nil, errBadSignature
		}
		if !ed25519.Verify(pub, bytesOf(input), sig[:]) {
			return nil, errBadSignature
		}
		return decodePayload(payloadEnc)
	}
	payload, err := jws.VerifyCompactFast(k.pub, []byte(tok), k.alg)
	if err != nil {
		return nil, errBadSignature
	}
	return payload, nil
}

func decodePayload(enc string) ([]byte, error) {
	payload, err := base64.RawURLEncoding.DecodeString(enc)
	if err != nil {
		return nil, errBadSignature
	}
	return payload, nil
}

// derECDSA is the ASN.1 DER form of the P-256 signature (r, s), each a
// 32-byte big-endian unsigned integer: SEQUENCE { INTEGER r, INTEGER s }.
// Every length is below 128, so each fits in one byte.
func derECDSA(r, s []byte) []byte {
	der := make([]byte, 2, 2+2*(2+33))
	der[0] = 0x30 // SEQUENCE
	for _, v := range [][]byte{r, s} {
		for len(v) > 1 && v[0] == 0 {
			v = v[1:] // minimal: no leading zero bytes
		}
		pad := v[0] >> 7                          // a leading 0 keeps the integer non-negative
		der = append(der, 0x02, byte(len(v))+pad) // INTEGER
		if pad == 1 {
			der = append(der, 0)
		}
		der = append(der, v...)
	}
	der[1] = byte(len(der) - 2)
	return der
}

// bytesOf views a string's bytes without copying; callers only read them.
func bytesOf(s string) []byte { return unsafe.Slice(unsafe.StringData(s), len(s)) }

// maxCachedHeaders bounds the parsed-header cache; when it is full it is
// emptied and refilled.
const maxCachedHeaders = 64

// headers caches parseHeader by the encoded header. An issuer signs all its
// tokens with a few headers (one per key), so the JSON is parsed once per
// key instead of once per token. Only headers of tokens whose signature
// verified are added, so forged tokens cannot fill it.
var headers struct {
	m atomic.Pointer[sync.Map] // encoded header -> joseHeader
	n atomic.Int32
}

func cachedHeader(enc string) (joseHeader, bool) {
	if m := headers.m.Load(); m != nil {
		if v, ok := m.Load(enc); ok {
			return v.(joseHeader), true
		}
	}
	return joseHeader{}, false
}

func rememberHeader(enc string, h joseHeader) {
	m := headers.m.Load()
	if m == nil || headers.n.Load() >= maxCachedHeaders {
		m = new(sync.Map)
		headers.m.Store(m)
		headers.n.Store(0)
	}
	if _, loaded := m.LoadOrStore(enc, h); !loaded {
		headers.n.Add(1)
	}
}

package jose

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"strings"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jws"
)

// VerifyCompact checks the signature of the compact JWS tok, already
// split by SplitCompact, with the public key pub and the algorithm alg,
// which the caller took from the key, never from the token. The caller
// has also read the header: its alg is alg, and it has neither crit nor
// b64 (jws.VerifyCompactFast checks these again; this does not).
//
// ECDSA (ES256, ES384, ES512), EdDSA and RSA (RS256…PS512), what issuers
// and DPoP clients sign with, are checked here with the standard library
// directly, as jwx's dsig does: jws.VerifyCompactFast, left for any other
// pairing, would split and parse the header again and unpack ECDSA
// signatures into big integers first. An ECDSA signature is the fixed-size
// r || s of RFC 7518 §3.4, as jwx requires; RSA-PSS salts are as long as
// the hash (RFC 7518 §3.5).
func VerifyCompact(alg jwa.SignatureAlgorithm, pub any, tok string) bool {
	dot := strings.LastIndexByte(tok, '.')
	if dot < 0 {
		return false
	}
	input, sigEnc := tok[:dot], tok[dot+1:]
	switch pub := pub.(type) {
	case *ecdsa.PublicKey:
		var digest []byte
		switch name := alg.String(); {
		case name == "ES256" && pub.Curve == elliptic.P256():
			sum := sha256.Sum256(bytesOf(input))
			digest = sum[:]
		case name == "ES384" && pub.Curve == elliptic.P384():
			sum := sha512.Sum384(bytesOf(input))
			digest = sum[:]
		case name == "ES512" && pub.Curve == elliptic.P521():
			sum := sha512.Sum512(bytesOf(input))
			digest = sum[:]
		default:
			return fallback(alg, pub, tok)
		}
		size := (pub.Curve.Params().BitSize + 7) / 8
		var buf [2 * 66]byte
		sig := buf[:2*size]
		if base64.RawURLEncoding.DecodedLen(len(sigEnc)) != len(sig) {
			return false
		}
		if _, err := base64.RawURLEncoding.Decode(sig, bytesOf(sigEnc)); err != nil {
			return false
		}
		var der [2 + 3 + 2*(2+67)]byte
		return ecdsa.VerifyASN1(pub, digest, derECDSA(der[:0], sig[:size], sig[size:]))
	case ed25519.PublicKey:
		if alg.String() != "EdDSA" || len(pub) != ed25519.PublicKeySize {
			return fallback(alg, pub, tok)
		}
		var sig [ed25519.SignatureSize]byte
		if base64.RawURLEncoding.DecodedLen(len(sigEnc)) != len(sig) {
			return false
		}
		if _, err := base64.RawURLEncoding.Decode(sig[:], bytesOf(sigEnc)); err != nil {
			return false
		}
		return ed25519.Verify(pub, bytesOf(input), sig[:])
	case *rsa.PublicKey:
		name := alg.String()
		var h crypto.Hash
		switch name[2:] {
		case "256":
			h = crypto.SHA256
		case "384":
			h = crypto.SHA384
		case "512":
			h = crypto.SHA512
		}
		if h == 0 || (name[:2] != "RS" && name[:2] != "PS") {
			return fallback(alg, pub, tok)
		}
		var buf [512]byte // RSA-4096
		n := base64.RawURLEncoding.DecodedLen(len(sigEnc))
		if n > len(buf) {
			return fallback(alg, pub, tok) // a key over 4096 bits
		}
		sig := buf[:n]
		if _, err := base64.RawURLEncoding.Decode(sig, bytesOf(sigEnc)); err != nil {
			return false
		}
		d := h.New()
		d.Write(bytesOf(input))
		var sum [sha512.Size]byte
		digest := d.Sum(sum[:0])
		if name[0] == 'P' {
			return rsa.VerifyPSS(pub, h, digest, sig, &rsa.PSSOptions{Hash: h, SaltLength: rsa.PSSSaltLengthEqualsHash}) == nil
		}
		return rsa.VerifyPKCS1v15(pub, h, digest, sig) == nil
	}
	return fallback(alg, pub, tok)
}

func fallback(alg jwa.SignatureAlgorithm, pub any, tok string) bool {
	_, err := jws.VerifyCompactFast(pub, []byte(tok), alg)
	return err == nil
}

// derECDSA appends to der the ASN.1 DER form of the ECDSA signature
// (r, s), each a big-endian unsigned integer of at most 66 bytes:
// SEQUENCE { INTEGER r, INTEGER s }. Each INTEGER is shorter than 128
// bytes, so its length fits in one byte; the SEQUENCE's may need the long
// form (P-521).
func derECDSA(der, r, s []byte) []byte {
	der = append(der, 0x30, 0, 0) // SEQUENCE, length filled in below
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
	n := len(der) - 3
	if n < 128 {
		der[1] = byte(n)
		return append(der[:2], der[3:]...)
	}
	der[1], der[2] = 0x81, byte(n)
	return der
}

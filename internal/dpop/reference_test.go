package dpop

// The proof reader this package had before its fast path (commit 66cb0f6),
// kept as the reference the differential fuzz test (FuzzReadAgreesWithJWX)
// holds read to: jwx parses the key, computes its thumbprint and checks
// the signature; json.Decoder reads the header and claims.

import (
	"crypto"
	"encoding/base64"
	"encoding/json"
	"io"
	"math"
	"slices"
	"strings"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"
)

// refRead is read as it was: what the proof is by itself.
func refRead(algs []string, proof string) (*proofKey, *claims, error) {
	if len(proof) > MaxProofSize {
		return nil, nil, errTooLarge
	}
	hdrEnc, payloadEnc, sigEnc, ok := refSplitCompact(proof)
	if !ok {
		return nil, nil, errMalformed
	}
	k, err := refProofKey(algs, hdrEnc)
	if err != nil {
		return nil, nil, err
	}
	if !refVerify(k, proof[:len(hdrEnc)+1+len(payloadEnc)], sigEnc) {
		return nil, nil, errSignature
	}
	cl, err := refParseClaims(payloadEnc)
	if err != nil {
		return nil, nil, err
	}
	return k, cl, nil
}

// refProofKey reads a proof's protected header: typ, alg and the jwk, which
// must be a public key of the kind alg needs.
func refProofKey(algs []string, hdrEnc string) (*proofKey, error) {
	raw, err := base64.RawURLEncoding.DecodeString(hdrEnc)
	if err != nil {
		return nil, errMalformed
	}
	m, err := refObject(raw)
	if err != nil {
		return nil, errMalformed
	}
	var typ, alg string
	if json.Unmarshal(m["typ"], &typ) != nil || !strings.EqualFold(typ, "dpop+jwt") {
		return nil, errTyp
	}
	if _, ok := m["crit"]; ok {
		return nil, errMalformed // no extension is understood (RFC 7515 §4.1.11)
	}
	if _, ok := m["b64"]; ok {
		return nil, errMalformed
	}
	if json.Unmarshal(m["alg"], &alg) != nil || !slices.Contains(algs, alg) {
		return nil, errAlg
	}
	rawKey, ok := m["jwk"]
	if !ok {
		return nil, errKey
	}
	km, err := refObject(rawKey)
	if err != nil {
		return nil, errKey
	}
	// A private key in a header is a client's mistake that must not be
	// rewarded; jwk.ParseKey would accept it and derive the public half.
	for _, name := range []string{"d", "p", "q", "dp", "dq", "qi", "oth", "k"} {
		if _, ok := km[name]; ok {
			return nil, errKey
		}
	}
	key, err := jwk.ParseKey(rawKey)
	if err != nil {
		return nil, errKey
	}
	var pub any
	if err := jwk.Export(key, &pub); err != nil {
		return nil, errKey
	}
	if !keyFits(alg, pub) {
		return nil, errKey
	}
	tp, err := key.Thumbprint(crypto.SHA256)
	if err != nil {
		return nil, errKey
	}
	sa, ok := jwa.LookupSignatureAlgorithm(alg)
	if !ok {
		return nil, errAlg
	}
	return &proofKey{alg: sa, public: pub, jkt: base64.RawURLEncoding.EncodeToString(tp), fresh: true}, nil
}

// refVerify checks the signature of input with k.
func refVerify(k *proofKey, input, sigEnc string) bool {
	_, err := jws.VerifyCompactFast(k.public, []byte(input+"."+sigEnc), k.alg)
	return err == nil
}

func refParseClaims(enc string) (*claims, error) {
	raw, err := base64.RawURLEncoding.DecodeString(enc)
	if err != nil {
		return nil, errClaims
	}
	m, err := refObject(raw)
	if err != nil {
		return nil, errClaims
	}
	var cl claims
	for _, f := range []struct {
		name     string
		dst      *string
		required bool
	}{{"jti", &cl.jti, true}, {"htm", &cl.htm, true}, {"htu", &cl.htu, true}, {"ath", &cl.ath, false}, {"nonce", &cl.nonce, false}} {
		v, ok := m[f.name]
		if !ok {
			if f.required {
				return nil, errClaims
			}
			continue
		}
		if json.Unmarshal(v, f.dst) != nil || (f.required && *f.dst == "") {
			return nil, errClaims
		}
	}
	if len(cl.jti) > maxJTILength {
		return nil, errClaims
	}
	var iat float64
	if json.Unmarshal(m["iat"], &iat) != nil || iat != math.Trunc(iat) || math.Abs(iat) >= 1<<62 {
		return nil, errClaims
	}
	cl.iat = int64(iat)
	return &cl, nil
}

// refObject decodes a JSON object strictly: unique member names (a classic
// source of disagreement between parsers, which take the first or the
// last), at most maxMembers of them, nothing after it.
func refObject(raw []byte) (map[string]json.RawMessage, error) {
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return nil, errMalformed
	}
	m := make(map[string]json.RawMessage, 8)
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return nil, errMalformed
		}
		name, ok := t.(string)
		if _, dup := m[name]; !ok || dup || len(m) >= maxMembers {
			return nil, errMalformed
		}
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, errMalformed
		}
		m[name] = v
	}
	if t, err := dec.Token(); err != nil || t != json.Delim('}') {
		return nil, errMalformed
	}
	if dec.More() {
		return nil, errMalformed
	}
	if _, err := dec.Token(); err != io.EOF {
		// trailing data. (The reader of 66cb0f6 tested err == nil here,
		// which let through trailing junk that is no JSON token, such as
		// the second brace of {}}; the differential test found it.)
		return nil, errMalformed
	}
	return m, nil
}

// refSplitCompact splits a compact JWS into its three parts, refusing any
// byte outside the base64url alphabet and non-canonical encodings.
func refSplitCompact(tok string) (hdr, payload, sig string, ok bool) {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return "", "", "", false
	}
	for _, p := range parts {
		if p == "" || !refCanonical(p) {
			return "", "", "", false
		}
	}
	return parts[0], parts[1], parts[2], true
}

// refCanonical reports whether s is the one unpadded base64url encoding of
// its bytes.
func refCanonical(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	b, err := base64.RawURLEncoding.Strict().DecodeString(s)
	return err == nil && base64.RawURLEncoding.EncodedLen(len(b)) == len(s)
}

package validator

import (
	"crypto"
	"crypto/elliptic"
	"encoding/base64"
	"fmt"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/tokengate/tokengate/internal/accesstoken"
)

// Attacks of the security review (issue 12, item 6): tokens signed by the
// trusted issuer's key whose claims or encoding mean one thing here and
// another to go-jose or jwx. Each must be refused (401), never accepted.

// signedClaims signs a payload given as raw JSON with the issuer's key.
func signedClaims(t *testing.T, payload string) (*Handler, string) {
	t.Helper()
	iss, _ := newIssuer(t, "ES256")
	h := newLocal(t, iss, nil)
	kid, signer := currentKey(t, iss)
	return h, signRaw(t, signer, "ES256", `{"alg":"ES256","typ":"at+jwt","kid":"`+kid+`"}`, payload)
}

// goodClaims are the members of a valid token of the test issuer at the
// test clock's time, as raw JSON without braces; extra members follow.
func goodClaims(exp string) string {
	return fmt.Sprintf(`"iss":%q,"sub":"reports-client","client_id":"reports-client","aud":%q,"nbf":1800000000,"iat":1800000000,"jti":"j1","exp":%s`,
		testIssuerURL, testIssuerURL, exp)
}

func mustRefuse(t *testing.T, h *Handler, tok string) {
	t.Helper()
	if res := do(h, "Bearer "+tok); res.reached || res.status != 401 {
		t.Errorf("accepted: reached=%v status=%d www=%q", res.reached, res.status, res.www)
	}
}

// The control: the same construction with ordinary claims is accepted, so
// the refusals below are the attacks' doing.
func TestAttackControlAccepted(t *testing.T) {
	h, tok := signedClaims(t, "{"+goodClaims("1800000600")+"}")
	if res := do(h, "Bearer "+tok); !res.reached {
		t.Fatalf("control token refused: %v", res.err)
	}
}

func TestAttackExpBeyondInt64NeverExpires(t *testing.T) {
	for _, exp := range []string{"9223372036854775808", "1e300", "4611686018427387904", "1.8e19"} {
		t.Run(exp, func(t *testing.T) {
			h, tok := signedClaims(t, "{"+goodClaims(exp)+"}")
			mustRefuse(t, h, tok)
		})
	}
	for _, claim := range []string{"nbf", "iat"} {
		t.Run(claim, func(t *testing.T) {
			h, tok := signedClaims(t, "{"+strings.Replace(goodClaims("1800000600"), `"`+claim+`":1800000000`, `"`+claim+`":-1e300`, 1)+"}")
			mustRefuse(t, h, tok)
		})
	}
}

func TestAttackExpAsString(t *testing.T) {
	h, tok := signedClaims(t, "{"+goodClaims(`"1800000600"`)+"}")
	mustRefuse(t, h, tok)
}

func TestAttackDuplicateClaims(t *testing.T) {
	for name, extra := range map[string]string{
		"exp": `"exp":1`,
		"aud": `"aud":"https://elsewhere.example.com"`,
		"iss": `"iss":"https://evil.example.com"`,
		"sub": `"sub":"admin"`,
		// The same name spelled with an escape is the same member.
		"escaped exp": `"\u0065xp":1`,
	} {
		t.Run(name, func(t *testing.T) {
			h, tok := signedClaims(t, "{"+goodClaims("1800000600")+","+extra+"}")
			mustRefuse(t, h, tok)
			h, tok = signedClaims(t, "{"+extra+","+goodClaims("1800000600")+"}")
			mustRefuse(t, h, tok)
		})
	}
}

func TestAttackAudienceWithNull(t *testing.T) {
	for _, aud := range []string{`[%q,null]`, `[null,%q]`, `[%q,1]`} {
		payload := "{" + strings.Replace(goodClaims("1800000600"), fmt.Sprintf(`"aud":%q`, testIssuerURL), `"aud":`+fmt.Sprintf(aud, testIssuerURL), 1) + "}"
		h, tok := signedClaims(t, payload)
		mustRefuse(t, h, tok)
	}
}

// nonCanonical re-spells an unpadded base64url segment with the unused
// low bits of its last character set: it decodes to the same bytes under
// lenient decoders.
func nonCanonical(t *testing.T, seg string) string {
	t.Helper()
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	if len(seg)%4 == 0 {
		t.Fatalf("segment of length %d has no unused bits", len(seg))
	}
	last := strings.IndexByte(alphabet, seg[len(seg)-1])
	v := seg[:len(seg)-1] + string(alphabet[last|1])
	if v == seg {
		t.Fatal("the segment is not canonical to begin with")
	}
	if a, b := mustDecode(t, v), mustDecode(t, seg); string(a) != string(b) {
		t.Fatal("the variant decodes to other bytes")
	}
	return v
}

func TestAttackNonCanonicalBase64(t *testing.T) {
	iss, _ := newIssuer(t, "ES256")
	h := newLocal(t, iss, nil)
	kid, signer := currentKey(t, iss)
	// Lengths that are not multiples of 3 bytes leave unused bits in the
	// last character of each segment (ES256 signatures are 64 bytes).
	header := `{"alg":"ES256","typ":"at+jwt","kid":"` + kid + `"}`
	for len(header)%3 == 0 {
		header = strings.Replace(header, `{"alg"`, `{ "alg"`, 1)
	}
	payload := "{" + goodClaims("1800000600") + "}"
	for len(payload)%3 == 0 {
		payload = strings.Replace(payload, "{", "{ ", 1)
	}
	hdrEnc, payloadEnc := b64(header), b64(payload)
	if tok := signES256(t, signer, hdrEnc, payloadEnc); !do(h, "Bearer "+tok).reached {
		t.Fatal("canonical token refused")
	}
	t.Run("header", func(t *testing.T) {
		mustRefuse(t, h, signES256(t, signer, nonCanonical(t, hdrEnc), payloadEnc))
	})
	t.Run("payload", func(t *testing.T) {
		mustRefuse(t, h, signES256(t, signer, hdrEnc, nonCanonical(t, payloadEnc)))
	})
	t.Run("signature", func(t *testing.T) {
		tok := signES256(t, signer, hdrEnc, payloadEnc)
		i := strings.LastIndexByte(tok, '.')
		mustRefuse(t, h, tok[:i+1]+nonCanonical(t, tok[i+1:]))
	})
}

func signES256(t *testing.T, signer crypto.Signer, hdrEnc, payloadEnc string) string {
	t.Helper()
	return signEncoded(t, signer, "ES256", hdrEnc+"."+payloadEnc)
}

func mustDecode(t *testing.T, s string) []byte {
	t.Helper()
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// highS is the other valid form of an ES256 signature: (r, n-s).
func highS(t *testing.T, tok string) string {
	t.Helper()
	i := strings.LastIndexByte(tok, '.')
	sig := mustDecode(t, tok[i+1:])
	s := new(big.Int).SetBytes(sig[32:])
	s.Sub(elliptic.P256().Params().N, s)
	out := make([]byte, 64)
	copy(out, sig[:32])
	s.FillBytes(out[32:])
	return tok[:i+1] + base64.RawURLEncoding.EncodeToString(out)
}

// TestAttackTokenVariantsFillCache: re-encodings of one token's signature
// (the second ECDSA form, non-canonical base64url) must not each take an
// entry of the verified-token cache.
func TestAttackTokenVariantsFillCache(t *testing.T) {
	iss, _ := newIssuer(t, "ES256")
	h := newLocal(t, iss, nil)
	at, err := iss.Issue(defaultAudClient, nil, iss.DefaultAudience())
	if err != nil {
		t.Fatal(err)
	}
	variants := []string{at.Token, highS(t, at.Token)}
	for b := 1; b < 16; b++ { // the unused low bits of the signature's last character
		const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
		last := strings.IndexByte(alphabet, at.Token[len(at.Token)-1])
		variants = append(variants, at.Token[:len(at.Token)-1]+string(alphabet[last^b]))
	}
	for _, v := range variants {
		do(h, "Bearer "+v)
	}
	for _, v := range variants[:2] {
		if res := do(h, "Bearer "+v); !res.reached {
			t.Errorf("a valid form of the token was refused: %v", res.err)
		}
	}
	if n := cachedEntriesOf(at.Claims.JTI); n != 1 {
		t.Errorf("one token occupies %d cache entries, want 1", n)
	}
}

// TestCacheBoundedByBytes: large tokens fill the cache's byte budget long
// before its entry bound; past the budget nothing more is added, and
// evicted entries give their bytes back.
func TestCacheBoundedByBytes(t *testing.T) {
	src := accesstoken.LocalKeys{}
	exp := time.Now().Add(time.Hour).Unix()
	entry := func() *cachedToken {
		return &cachedToken{src: src, size: MaxCachedBytes / 2, Token: &accesstoken.Token{Claims: &accesstoken.Claims{Expiry: exp}}}
	}
	before := cachedBytes.Load()
	storeCached("bytes-test-1", entry(), time.Now())
	storeCached("bytes-test-2", entry(), time.Now())
	t.Cleanup(func() {
		tokenCache.Delete("bytes-test-1")
		tokenCache.Delete("bytes-test-2")
	})
	_, first := tokenCache.Get("bytes-test-1")
	_, second := tokenCache.Get("bytes-test-2")
	if before == 0 && (!first || second) {
		t.Errorf("with an empty cache, the first half-budget entry must be added (%v) and the second refused (%v)", first, second)
	}
	if first && second {
		t.Error("two half-budget entries over a non-empty cache were both added")
	}
	if got := cachedBytes.Load(); got > MaxCachedBytes {
		t.Errorf("cache holds %d bytes, over its bound %d", got, MaxCachedBytes)
	}
	tokenCache.Delete("bytes-test-1")
	tokenCache.Delete("bytes-test-2")
	if got := cachedBytes.Load(); got != before {
		t.Errorf("after eviction the cache counts %d bytes, want %d", got, before)
	}
}

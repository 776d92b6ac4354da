package dpop

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/asn1"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/tokengate/tokengate/internal/dpoptest"
)

// fixedKey is the fuzz targets' ES256 key: a fixed one, so that seeds made
// by the coordinator verify in the workers.
func fixedKey(f *testing.F) (*ecdsa.PrivateKey, *dpoptest.Key) {
	priv, err := ecdsa.ParseRawPrivateKey(elliptic.P256(), bytes.Repeat([]byte{7}, 32))
	if err != nil {
		f.Fatal(err)
	}
	k, err := dpoptest.FromSigner("ES256", priv)
	if err != nil {
		f.Fatal(err)
	}
	return priv, k
}

// FuzzCheck feeds arbitrary proofs to the checker: it must never panic,
// and whatever it accepts must be a proof the test key signed.
func FuzzCheck(f *testing.F) {
	_, k := fixedKey(f)
	now := time.Unix(1_800_000_000, 0)
	f.Add(k.Proof("GET", testURL, testToken, now))
	f.Add(k.SignPayload([]byte(`{"jti":"a","htm":"GET","htu":"`+testURL+`","iat":1800000000,"ath":"x"}`), map[string]any{"kid": "z"}))
	f.Add("e30.e30.e30")
	c, err := New(Config{Now: func() time.Time { return now }})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, proof string) {
		p, err := c.Check(proof, Request{Method: "GET", URL: testURL, AccessToken: testToken})
		if err == nil && p.JKT != k.JKT() {
			t.Fatalf("accepted a proof of another key: %q", proof)
		}
	})
}

// FuzzReadAgreesWithJWX holds read, the fast path of Check, to the reader
// it replaced (reference_test.go: jwx for key, thumbprint and signature,
// json.Decoder for header and claims): for any header and claims signed
// by the test key, and for any proof string at all, both refuse with the
// same error or both accept with the same key and claims. read runs twice,
// so the second run comes from the key cache when the first verified.
func FuzzReadAgreesWithJWX(f *testing.F) {
	priv, k := fixedKey(f)
	now := time.Unix(1_800_000_000, 0)
	good := k.Proof("GET", testURL, testToken, now)
	hdr, _ := base64.RawURLEncoding.DecodeString(good[:strings.IndexByte(good, '.')])
	jwkJSON, _ := json.Marshal(k.Public())
	for _, h := range []string{
		string(hdr),
		`{"typ":"dpop+jwt","alg":"ES256","jwk":` + string(jwkJSON) + `}`,
		`{"typ":"DPoP+JWT","alg":"ES256","jwk":` + string(jwkJSON) + `,"kid":"x"}`,
		`{"typ":"dpop+jwt","alg":"ES256","alg":"ES256","jwk":` + string(jwkJSON) + `}`,
		`{"typ":"dpop+jwt","alg":"ES256","crit":null,"jwk":` + string(jwkJSON) + `}`,
		`{"typ":"dpop+jwt","alg":"ES256","jwk":{"kty":"EC","crv":"P-256","x":1}}`,
		` {"typ":"dpop\u002bjwt","alg":"ES256","jwk":` + string(jwkJSON) + `} `,
	} {
		for _, p := range []string{
			`{"jti":"a","htm":"GET","htu":"` + testURL + `","iat":1800000000,"ath":"x"}`,
			`{"jti":"a","htm":"GET","htu":"` + testURL + `","iat":1.8e9,"nonce":null}`,
			`{"jti":"a","htm":"GET","htu":"` + testURL + `","iat":1800000000.5}`,
			`{"jti":"\u00e9","htm":"G\u0045T","htu":"` + testURL + `","iat":null,"x":[{"y":"]"}]}`,
			`{"jti":"a","jti":"b","htm":"GET","htu":"` + testURL + `","iat":-0}`,
			`{"JTI":"a","htm":"GET","htu":"` + testURL + `","iat":4611686018427387904}`,
		} {
			f.Add([]byte(h), []byte(p), "")
		}
	}
	f.Add([]byte(nil), []byte(nil), good)
	f.Add([]byte(`{}}`), []byte(`{"jti":"a","htm":"GET","htu":"`+testURL+`","iat":1800000000} ]`), "")
	f.Add([]byte(nil), []byte(nil), "e30.e30.e30")
	f.Add([]byte(nil), []byte(nil), good[:len(good)-2]+"AA")
	c, err := New(Config{Now: func() time.Time { return now }})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, header, payload []byte, raw string) {
		proof := raw
		if proof == "" {
			input := base64.RawURLEncoding.EncodeToString(header) + "." + base64.RawURLEncoding.EncodeToString(payload)
			digest := sha256.Sum256([]byte(input))
			sig, err := ecdsa.SignASN1(rand.Reader, priv, digest[:])
			if err != nil {
				t.Fatal(err)
			}
			var parsed struct{ R, S *big.Int }
			if _, err := asn1.Unmarshal(sig, &parsed); err != nil {
				t.Fatal(err)
			}
			rs := make([]byte, 64)
			parsed.R.FillBytes(rs[:32])
			parsed.S.FillBytes(rs[32:])
			proof = input + "." + base64.RawURLEncoding.EncodeToString(rs)
		}
		wantKey, wantClaims, wantErr := refRead(c.algs, proof)
		for run := range 2 {
			gotKey, gotClaims, gotErr := c.read(proof)
			if gotErr != wantErr {
				t.Fatalf("run %d: read %v, reference %v, for %q", run, gotErr, wantErr, proof)
			}
			if gotErr != nil {
				continue
			}
			if gotKey.jkt != wantKey.jkt || gotKey.alg != wantKey.alg || gotClaims != *wantClaims {
				t.Fatalf("run %d: read %q %v %+v, reference %q %v %+v", run, gotKey.jkt, gotKey.alg, gotClaims, wantKey.jkt, wantKey.alg, *wantClaims)
			}
		}
	})
}

// FuzzSameURL holds sameURL, with its shortcut for URLs already normal, to
// comparing the two URLs normalized.
func FuzzSameURL(f *testing.F) {
	for _, s := range []string{testURL, "http://h:80/", "https://H/a", "https://h:443/a", "https://h:0443/a", "http://h/a%2Fb",
		"https://h/a b", "https://h", "https://h/a?b", "https://h/a#b", "https://[::1]/x", "https://h:/x", "https://u@h/", "https://h/./.."} {
		f.Add(s, s)
		f.Add(s, testURL)
	}
	f.Fuzz(func(t *testing.T, htu, reqURL string) {
		want, okW := normalURL(reqURL)
		got, okG := normalURL(htu)
		if same := sameURL(htu, reqURL); same != (okW && okG && want == got) {
			t.Fatalf("sameURL(%q, %q) = %v; normalized %q %v, %q %v", htu, reqURL, same, got, okG, want, okW)
		}
		if isNormalURL(htu) && (!okG || got != htu) {
			t.Fatalf("isNormalURL(%q), but normalURL gives %q, %v", htu, got, okG)
		}
	})
}

package dpop

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"

	"github.com/tokengate/tokengate/internal/dpoptest"
	"github.com/tokengate/tokengate/internal/testclock"
)

const (
	testURL   = "https://api.example.com/reports/q1"
	testToken = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln"
)

func newChecker(t *testing.T, clock *testclock.Clock, nonces *Nonces) *Checker {
	t.Helper()
	c, err := New(Config{Now: clock.Now, Nonces: nonces})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func newKey(t *testing.T, alg string) *dpoptest.Key {
	t.Helper()
	k, err := dpoptest.NewKey(alg)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func code(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return ""
}

func TestCheckAcceptsEveryAlgorithm(t *testing.T) {
	clock := testclock.New(time.Unix(1_800_000_000, 0))
	c := newChecker(t, clock, nil)
	for _, alg := range []string{"ES256", "ES384", "EdDSA", "RS256", "PS256"} {
		k := newKey(t, alg)
		p, err := c.Check(k.Proof("GET", testURL, testToken, clock.Now()), Request{Method: "GET", URL: testURL, AccessToken: testToken})
		if err != nil {
			t.Fatalf("%s: %v", alg, err)
		}
		if p.JKT != k.JKT() {
			t.Fatalf("%s: jkt %q, want %q", alg, p.JKT, k.JKT())
		}
		// A second proof with the same key comes from the key cache.
		if _, err := c.Check(k.Proof("GET", testURL, testToken, clock.Now()), Request{Method: "GET", URL: testURL, AccessToken: testToken}); err != nil {
			t.Fatalf("%s, second proof: %v", alg, err)
		}
	}
}

func TestCheckRefuses(t *testing.T) {
	clock := testclock.New(time.Unix(1_800_000_000, 0))
	c := newChecker(t, clock, nil)
	k := newKey(t, "ES256")
	other := newKey(t, "ES256")
	now := clock.Now()
	req := Request{Method: "GET", URL: testURL, AccessToken: testToken}
	good := dpoptest.Claims{HTM: "GET", HTU: testURL, IAT: now.Unix(), ATH: dpoptest.ATH(testToken)}
	with := func(f func(*dpoptest.Claims)) dpoptest.Claims { c := good; f(&c); return c }

	// A proof whose signature is another key's.
	forged := func() string {
		p := k.Sign(good, nil)
		q := other.Sign(good, nil)
		return p[:strings.LastIndexByte(p, '.')] + q[strings.LastIndexByte(q, '.'):]
	}()
	// A header naming HS256 with the public key's bytes as the secret.
	hs := func() string {
		hdr := jws.NewHeaders()
		_ = hdr.Set("typ", "dpop+jwt")
		_ = hdr.Set("jwk", k.Public())
		payload, _ := json.Marshal(with(func(c *dpoptest.Claims) { c.JTI = "hs" }))
		s, err := jws.Sign(payload, jws.WithKey(jwa.HS256(), []byte("secret"), jws.WithProtectedHeaders(hdr)))
		if err != nil {
			t.Fatal(err)
		}
		return string(s)
	}()
	// A header carrying the private key.
	private := func() string {
		priv, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		pk, _ := jwk.Import(priv)
		hdr := jws.NewHeaders()
		_ = hdr.Set("typ", "dpop+jwt")
		_ = hdr.Set("jwk", pk)
		payload, _ := json.Marshal(with(func(c *dpoptest.Claims) { c.JTI = "priv" }))
		s, err := jws.Sign(payload, jws.WithKey(jwa.ES256(), priv, jws.WithProtectedHeaders(hdr)))
		if err != nil {
			t.Fatal(err)
		}
		return string(s)
	}()
	// signHeader signs claims under a protected header given as JSON text.
	signHeader := func(header string, c dpoptest.Claims) string {
		p, _ := json.Marshal(c)
		input := base64.RawURLEncoding.EncodeToString([]byte(header)) + "." + base64.RawURLEncoding.EncodeToString(p)
		digest := sha256.Sum256([]byte(input))
		r, s, err := ecdsa.Sign(rand.Reader, k.Private.(*ecdsa.PrivateKey), digest[:])
		if err != nil {
			t.Fatal(err)
		}
		sig := make([]byte, 64)
		r.FillBytes(sig[:32])
		s.FillBytes(sig[32:])
		return input + "." + base64.RawURLEncoding.EncodeToString(sig)
	}
	jk, _ := json.Marshal(k.Public())
	// A header naming EdDSA over an EC key, signed by that key with ES256.
	mislabelled := signHeader(`{"typ":"dpop+jwt","alg":"EdDSA","jwk":`+string(jk)+`}`, with(func(c *dpoptest.Claims) { c.JTI = "mislabelled" }))
	// A header and claims with junk after their object. The reader of
	// 66cb0f6 accepted such claims when the junk was no JSON token itself
	// (" ]"); such a header failed only in jwx's second parse of it.
	junkHeader := signHeader(`{"typ":"dpop+jwt","alg":"ES256","jwk":`+string(jk)+`}}`, with(func(c *dpoptest.Claims) { c.JTI = "junk header" }))
	junkClaims := k.SignPayload([]byte(`{"jti":"junk claims","htm":"GET","htu":"`+testURL+`","iat":1800000000,"ath":"`+dpoptest.ATH(testToken)+`"} ]`), nil)
	none := func() string {
		h := base64.RawURLEncoding.EncodeToString([]byte(`{"typ":"dpop+jwt","alg":"none"}`))
		p, _ := json.Marshal(good)
		return h + "." + base64.RawURLEncoding.EncodeToString(p) + ".AAAA"
	}()

	for _, tc := range []struct {
		name  string
		proof string
		req   Request
		want  error
	}{
		{"wrong htm", k.Sign(with(func(c *dpoptest.Claims) { c.HTM = "POST" }), nil), req, errMethod},
		{"htm lowercase", k.Sign(with(func(c *dpoptest.Claims) { c.HTM = "get" }), nil), req, errMethod},
		{"wrong htu path", k.Sign(with(func(c *dpoptest.Claims) { c.HTU = "https://api.example.com/reports/q2" }), nil), req, errMethod},
		{"wrong htu host", k.Sign(with(func(c *dpoptest.Claims) { c.HTU = "https://evil.example.com/reports/q1" }), nil), req, errURL},
		{"wrong htu scheme", k.Sign(with(func(c *dpoptest.Claims) { c.HTU = "http://api.example.com/reports/q1" }), nil), req, errURL},
		{"stale iat", k.Sign(with(func(c *dpoptest.Claims) { c.IAT = now.Add(-61 * time.Second).Unix() }), nil), req, errIssuedAt},
		{"future iat", k.Sign(with(func(c *dpoptest.Claims) { c.IAT = now.Add(61 * time.Second).Unix() }), nil), req, errIssuedAt},
		{"missing ath", k.Sign(with(func(c *dpoptest.Claims) { c.ATH = "" }), nil), req, errATH},
		{"wrong ath", k.Sign(with(func(c *dpoptest.Claims) { c.ATH = dpoptest.ATH("another") }), nil), req, errATH},
		{"signed by another key", forged, req, errSignature},
		{"typ JWT", k.Sign(good, map[string]any{"typ": "JWT"}), req, errTyp},
		{"no typ", k.Sign(good, map[string]any{"typ": nil}), req, errTyp},
		{"no jwk", k.Sign(good, map[string]any{"jwk": nil}), req, errKey},
		{"HS256 with the public key", hs, req, errAlg},
		{"private key in the header", private, req, errKey},
		{"alg none", none, req, errAlg},
		{"crit", k.Sign(good, map[string]any{"crit": []string{"exp"}}), req, errMalformed},
		{"alg of another key kind", mislabelled, req, errKey},
		{"no jti", k.SignPayload([]byte(`{"htm":"GET","htu":"`+testURL+`","iat":1800000000}`), nil), req, errClaims},
		{"iat a string", k.SignPayload([]byte(`{"jti":"a","htm":"GET","htu":"`+testURL+`","iat":"1800000000"}`), nil), req, errClaims},
		{"duplicate htm", k.SignPayload([]byte(`{"jti":"a","htm":"POST","htm":"GET","htu":"`+testURL+`","iat":1800000000}`), nil), req, errClaims},
		{"too large", strings.Repeat("a", MaxProofSize+1), req, errTooLarge},
		{"two parts", "abc.def", req, errMalformed},
		{"padding", k.Proof("GET", testURL, testToken, now) + "=", req, errMalformed},
		{"junk after the header", junkHeader, req, errMalformed},
		{"junk after the claims", junkClaims, req, errClaims},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := c.Check(tc.proof, tc.req)
			if tc.name == "wrong htu path" {
				tc.want = errURL
			}
			if err != tc.want {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			if code(err) != "invalid_dpop_proof" {
				t.Fatalf("code %q", code(err))
			}
		})
	}
}

func TestCheckReplay(t *testing.T) {
	clock := testclock.New(time.Unix(1_800_000_000, 0))
	c := newChecker(t, clock, nil)
	k := newKey(t, "ES256")
	req := Request{Method: "GET", URL: testURL, AccessToken: testToken}
	p := k.Proof("GET", testURL, testToken, clock.Now())
	if _, err := c.Check(p, req); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Check(p, req); err != errReplayed {
		t.Fatalf("replay: %v", err)
	}
	// Another checker of the process (another route) refuses it too.
	if _, err := newChecker(t, clock, nil).Check(p, req); err != errReplayed {
		t.Fatalf("replay at another route: %v", err)
	}
	// Past the window the replay is refused by its iat, whatever the set.
	clock.Advance(3 * time.Minute)
	if _, err := c.Check(p, req); err != errIssuedAt {
		t.Fatalf("late replay: %v", err)
	}
	// A refused proof uses up nothing: the same jti with a good iat passes
	// once the first attempt failed on htm.
	bad := k.Sign(dpoptest.Claims{JTI: "once", HTM: "PUT", HTU: testURL, IAT: clock.Now().Unix(), ATH: dpoptest.ATH(testToken)}, nil)
	if _, err := c.Check(bad, req); err != errMethod {
		t.Fatal(err)
	}
	ok := k.Sign(dpoptest.Claims{JTI: "once", HTM: "GET", HTU: testURL, IAT: clock.Now().Unix(), ATH: dpoptest.ATH(testToken)}, nil)
	if _, err := c.Check(ok, req); err != nil {
		t.Fatal(err)
	}
}

func TestNonces(t *testing.T) {
	clock := testclock.New(time.Unix(1_800_000_000, 0))
	n := NewNonces(5 * time.Minute)
	c := newChecker(t, clock, n)
	k := newKey(t, "ES256")
	req := Request{Method: "POST", URL: "https://as.example.com/oauth/token"}
	proof := func(nonce string) string {
		return k.Sign(dpoptest.Claims{HTM: "POST", HTU: req.URL, IAT: clock.Now().Unix(), Nonce: nonce}, nil)
	}
	for _, tc := range []struct {
		name  string
		nonce string
	}{
		{"no nonce", ""},
		{"forged nonce", base64.RawURLEncoding.EncodeToString(make([]byte, 24))},
		{"another process's nonce", NewNonces(5 * time.Minute).Issue(clock.Now())},
	} {
		if _, err := c.Check(proof(tc.nonce), req); err != ErrUseNonce || code(err) != "use_dpop_nonce" {
			t.Fatalf("%s: %v", tc.name, err)
		}
	}
	nonce := n.Issue(clock.Now())
	if _, err := c.Check(proof(nonce), req); err != nil {
		t.Fatal(err)
	}
	clock.Advance(5*time.Minute + time.Second)
	if _, err := c.Check(proof(nonce), req); err != ErrUseNonce {
		t.Fatalf("expired nonce: %v", err)
	}
}

func TestNormalURL(t *testing.T) {
	for in, want := range map[string]string{
		"https://API.example.com:443/a?x=1#f": "https://api.example.com/a",
		"HTTP://h:80":                         "http://h/",
		"http://h:8080/a%2Fb":                 "http://h:8080/a%2Fb",
		"https://[::1]:443/x":                 "https://[::1]/x",
		"ftp://h/":                            "",
		"/relative":                           "",
		"https://user@h/":                     "",
	} {
		got, ok := normalURL(in)
		if (want == "") == ok || got != want {
			t.Errorf("normalURL(%q) = %q, %v; want %q", in, got, ok, want)
		}
	}
}

func TestNewRefusesUnknownAlgorithm(t *testing.T) {
	if _, err := New(Config{Algs: []string{"HS256"}}); err == nil {
		t.Fatal("HS256 accepted")
	}
}

// TestPlainJWKMatchesJWX checks plainJWK, the JWK reader of a key's first
// proof, against jwx: the same public key and the same RFC 7638
// thumbprint for the JWK of every curve, and no answer (jwx reads it) for
// JWKs of any other form.
func TestPlainJWKMatchesJWX(t *testing.T) {
	_, ed, _ := ed25519.GenerateKey(rand.Reader)
	keys := []crypto.PublicKey{ed.Public()}
	for _, c := range []elliptic.Curve{elliptic.P256(), elliptic.P384(), elliptic.P521()} {
		k, err := ecdsa.GenerateKey(c, rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, k.Public())
	}
	for _, pub := range keys {
		jk, err := jwk.Import(pub)
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := json.Marshal(jk)
		got, jkt, ok := plainJWK(string(raw))
		tp, _ := jk.Thumbprint(crypto.SHA256)
		if !ok || jkt != base64.RawURLEncoding.EncodeToString(tp) || !got.(interface{ Equal(crypto.PublicKey) bool }).Equal(pub) {
			t.Fatalf("%s: plainJWK %v %q, jwx %q", raw, ok, jkt, base64.RawURLEncoding.EncodeToString(tp))
		}
		var m map[string]any
		_ = json.Unmarshal(raw, &m)
		x := m["x"].(string)
		for name, change := range map[string]func(map[string]any){
			"kid":         func(m map[string]any) { m["kid"] = "a" },
			"short x":     func(m map[string]any) { m["x"] = x[:len(x)-4] },
			"padded x":    func(m map[string]any) { m["x"] = x + "=" },
			"x a number":  func(m map[string]any) { m["x"] = 1 },
			"x null":      func(m map[string]any) { m["x"] = nil },
			"no kty":      func(m map[string]any) { delete(m, "kty") },
			"other curve": func(m map[string]any) { m["crv"] = "P-256K" },
			"off curve": func(m map[string]any) {
				if _, ok := m["y"]; ok {
					m["y"] = x
				} else {
					m["kty"] = "EC"
				}
			},
		} {
			c := maps.Clone(m)
			change(c)
			b, _ := json.Marshal(c)
			if _, _, ok := plainJWK(string(b)); ok {
				t.Errorf("%s: plainJWK read %s", name, b)
			}
		}
	}
}

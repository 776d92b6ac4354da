package validator

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/asn1"
	"encoding/base64"
	"encoding/json"
	"errors"
	"math/big"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/caddyserver/certmagic"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"go.uber.org/zap"

	"github.com/tokengate/tokengate/internal/accesstoken"
	"github.com/tokengate/tokengate/internal/clients"
	"github.com/tokengate/tokengate/internal/issuer"
	"github.com/tokengate/tokengate/internal/testclock"
)

const testIssuerURL = "http://localhost:9080"

// clock is the settable clock of these tests.
type clock = testclock.Clock

func newClock() *clock { return testclock.New(time.Unix(1_800_000_000, 0)) }

// storages maps test issuers to their storage.
var storages sync.Map

// testClient is the client the test issuers know.
var testClient = &clients.Config{ClientID: "reports-client", Secret: "s3cret", Scopes: []string{"reports:read", "reports:write"}, Audience: []string{"https://api.example.com"}}

// defaultAudClient is a client without audience: its tokens carry the
// issuer URL.
var defaultAudClient = &clients.Config{ClientID: "plain-client", Secret: "s3cret", Scopes: []string{"reports:read"}}

// newIssuer builds an issuer with its own storage and a fake clock.
func newIssuer(t testing.TB, alg string) (*issuer.Issuer, *clock) {
	t.Helper()
	clk := newClock()
	cfg := &issuer.Config{Issuer: testIssuerURL, SigningAlg: alg, Clients: []*clients.Config{testClient, defaultAudClient}}
	st := &certmagic.FileStorage{Path: t.TempDir()}
	iss, err := issuer.New(context.Background(), "default", cfg, st, zap.NewNop())
	if err != nil {
		t.Fatalf("issuer.New: %v", err)
	}
	storages.Store(iss, certmagic.Storage(st))
	iss.Now = clk.Now
	return iss, clk
}

// newLocal provisions a handler trusting iss; mod adjusts it first.
func newLocal(t testing.TB, iss *issuer.Issuer, mod func(*Handler)) *Handler {
	t.Helper()
	h := &Handler{}
	if mod != nil {
		mod(h)
	}
	h.audience = append([]string(nil), h.Audience...)
	h.logger = zap.NewNop()
	if err := h.provisionCommon(); err != nil {
		t.Fatalf("provisionCommon: %v", err)
	}
	if err := h.provisionLocal(iss.Local()); err != nil {
		t.Fatalf("provisionLocal: %v", err)
	}
	return h
}

// mint issues a token of testClient for the given scopes.
func mint(t testing.TB, iss *issuer.Issuer, c *clients.Config, scopes ...string) string {
	t.Helper()
	at, err := iss.Issue(c, scopes, iss.Audience(c))
	if err != nil {
		t.Fatalf("Issue: %v", err)
	}
	return at.Token
}

// result is what a request through the handler came to.
type result struct {
	status  int // 0 when the request reached the next handler
	www     string
	reached bool
	repl    *caddy.Replacer
	req     *http.Request
	err     error
}

// do sends a request with the given Authorization header values through h.
func do(h *Handler, auth ...string) result {
	r := httptest.NewRequest(http.MethodGet, "/reports/q1", nil)
	for _, a := range auth {
		r.Header.Add("Authorization", a)
	}
	return doReq(h, r)
}

func doReq(h *Handler, r *http.Request) result {
	repl := caddy.NewReplacer()
	r = r.WithContext(context.WithValue(r.Context(), caddy.ReplacerCtxKey, repl))
	w := httptest.NewRecorder()
	var res result
	res.repl = repl
	next := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		res.reached = true
		res.req = r
		return nil
	})
	res.err = h.ServeHTTP(w, r, next)
	if res.err != nil {
		var he caddyhttp.HandlerError
		if errors.As(res.err, &he) {
			res.status = he.StatusCode
		} else {
			res.status = -1
		}
	}
	res.www = w.Header().Get("WWW-Authenticate")
	return res
}

func b64(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

// newECKey makes a P-256 key (an attacker's, a test IdP's) and its public
// JWK.
func newECKey(t testing.TB) (*ecdsa.PrivateKey, jwk.Key) {
	t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := jwk.Import(priv.Public())
	if err != nil {
		t.Fatal(err)
	}
	return priv, pub
}

func mustJSON(t testing.TB, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// signRaw signs header.payload (both raw JSON) with signer, producing the
// signature form of alg, so tests can craft any header.
func signRaw(t testing.TB, signer crypto.Signer, alg, header, payload string) string {
	t.Helper()
	return signEncoded(t, signer, alg, b64(header)+"."+b64(payload))
}

// signEncoded signs an encoded header.payload through the key's
// crypto.Signer and appends the JWS signature.
func signEncoded(t testing.TB, signer crypto.Signer, alg, input string) string {
	t.Helper()
	msg, opts := []byte(input), crypto.Hash(0) // EdDSA signs the message itself
	if alg != "EdDSA" {
		sum := sha256.Sum256(msg)
		msg, opts = sum[:], crypto.SHA256
	}
	sig, err := signer.Sign(rand.Reader, msg, opts)
	if err != nil {
		t.Fatal(err)
	}
	if alg == "ES256" {
		// JWS wants r and s as 32-byte big-endian integers, not ASN.1.
		var rs struct{ R, S *big.Int }
		if _, err := asn1.Unmarshal(sig, &rs); err != nil {
			t.Fatal(err)
		}
		sig = make([]byte, 64)
		rs.R.FillBytes(sig[:32])
		rs.S.FillBytes(sig[32:])
	}
	return input + "." + base64.RawURLEncoding.EncodeToString(sig)
}

// claimsFor are the claims of a good token of iss at its clock's time.
func claimsFor(iss *issuer.Issuer, aud any) map[string]any {
	now := iss.Now().Unix()
	return map[string]any{
		"iss": iss.Config.Issuer, "sub": "reports-client", "client_id": "reports-client",
		"aud": aud, "exp": now + 600, "nbf": now, "iat": now, "jti": "jti-1", "scope": "reports:read",
	}
}

// currentKey returns the issuer's signing key.
func currentKey(t testing.TB, iss *issuer.Issuer) (kid string, signer crypto.Signer) {
	t.Helper()
	k, err := iss.Keys.Current()
	if err != nil {
		t.Fatal(err)
	}
	return k.KID, k.Signer
}

// fakeRevocation revokes the listed jtis.
type fakeRevocation map[string]bool

func (f fakeRevocation) IsRevoked(jti string) bool { return f[jti] }

// revokedBy is how iss's tokens are verified, with revoked's revocations
// instead of the issuer's.
func revokedBy(iss *issuer.Issuer, revoked fakeRevocation) accesstoken.VerifierConfig {
	cfg := iss.VerifierConfig()
	cfg.Revoked = revoked.IsRevoked
	return cfg
}

// tamper changes one character in the middle of a token's signature.
func tamper(tok string) string {
	i := len(tok) - 10
	c := byte('A')
	if tok[i] == 'A' {
		c = 'B'
	}
	return tok[:i] + string(c) + tok[i+1:]
}

// cachedEntriesOf counts the verified-token cache entries of the token
// with this jti.
func cachedEntriesOf(jti string) int {
	n := 0
	for _, it := range tokenCache.Items() {
		if it.Object.(*cachedToken).Claims.JTI == jti {
			n++
		}
	}
	return n
}

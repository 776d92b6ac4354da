package clientauth

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"
	"github.com/lestrrat-go/jwx/v3/jwt"
	"go.uber.org/zap"

	"github.com/tokengate/tokengate/internal/clients"
)

const testAud = "https://auth.example.com/oauth/token"

// jwksServer serves a client's public keys at its jwks_uri.
type jwksServer struct {
	srv  *httptest.Server
	mu   sync.Mutex
	set  jwk.Set
	fail bool
	hits atomic.Int64
}

func newJWKSServer(t *testing.T) *jwksServer {
	t.Helper()
	s := &jwksServer{set: jwk.NewSet()}
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.hits.Add(1)
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.fail {
			http.Error(w, "down", http.StatusInternalServerError)
			return
		}
		_ = json.NewEncoder(w).Encode(s.set)
	}))
	t.Cleanup(s.srv.Close)
	return s
}

// publish adds the public half of key under kid (and alg, when not "").
func (s *jwksServer) publish(t *testing.T, kid, alg string, key any) {
	t.Helper()
	pub, err := jwk.Import(key)
	if err != nil {
		t.Fatal(err)
	}
	if pub, err = pub.PublicKey(); err != nil {
		t.Fatal(err)
	}
	_ = pub.Set(jwk.KeyIDKey, kid)
	if alg != "" {
		_ = pub.Set(jwk.AlgorithmKey, alg)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	_ = s.set.AddKey(pub)
}

// remoteVerifier is a Verifier for one client registering only a jwks_uri.
func remoteVerifier(t *testing.T, id, uri string) *Verifier {
	t.Helper()
	cfgs := []*clients.Config{{ClientID: id, JWKSURI: uri}}
	if err := clients.ValidateList(cfgs, true); err != nil {
		t.Fatal(err)
	}
	v, err := NewVerifier(cfgs, []string{testAud}, &memSeen{seen: map[string]bool{}}, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	if err := v.FetchClientKeys(cfgs, zap.NewNop()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(v.Close)
	return v
}

// memSeen is a SeenOnce of this process, for tests of one Verifier.
type memSeen struct {
	mu   sync.Mutex
	seen map[string]bool
}

func (m *memSeen) Claim(_ context.Context, key string, _ time.Time) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	first := !m.seen[key]
	m.seen[key] = true
	return first, nil
}

// waitFetched waits for the background first fetch of a client's set, so
// that a test's fetch counts do not depend on whether an assertion or the
// start-up fetch came first.
func waitFetched(t *testing.T, v *Verifier, id, kid string) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !v.keys[id].Published(kid); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the JWK set of %q was not fetched at start", id)
		}
	}
}

func signAssertion(t *testing.T, id, kid string, alg jwa.SignatureAlgorithm, key any) string {
	t.Helper()
	now := time.Now()
	tok, err := jwt.NewBuilder().Issuer(id).Subject(id).Audience([]string{testAud}).
		IssuedAt(now).Expiration(now.Add(time.Minute)).JwtID(rand.Text()).Build()
	if err != nil {
		t.Fatal(err)
	}
	hdr := jws.NewHeaders()
	_ = hdr.Set(jws.KeyIDKey, kid)
	signed, err := jwt.Sign(tok, jwt.WithKey(alg, key, jws.WithProtectedHeaders(hdr)))
	if err != nil {
		t.Fatal(err)
	}
	return string(signed)
}

// TestJWKSURIRotation: an assertion signed by a key only in the client's
// JWK set is accepted; a key the client rotates in later (new kid) is
// fetched at the first assertion naming it; a key it never published is
// refused.
func TestJWKSURIRotation(t *testing.T) {
	s := newJWKSServer(t)
	k1, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	s.publish(t, "k1", "", k1)
	v := remoteVerifier(t, "svc", s.srv.URL+"/jwks.json")
	waitFetched(t, v, "svc", "k1")
	if err := v.Verify(t.Context(), "svc", signAssertion(t, "svc", "k1", jwa.ES256(), k1)); err != nil {
		t.Fatalf("assertion by the published key: %v", err)
	}
	k2, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	s.publish(t, "k2", "", k2)
	before := s.hits.Load()
	if err := v.Verify(t.Context(), "svc", signAssertion(t, "svc", "k2", jwa.ES384(), k2)); err != nil {
		t.Fatalf("assertion by a key rotated in: %v", err)
	}
	if n := s.hits.Load() - before; n != 1 {
		t.Errorf("%d fetches for the rotated-in kid, want 1", n)
	}
	k3, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err := v.Verify(t.Context(), "svc", signAssertion(t, "svc", "k3", jwa.ES256(), k3)); !errors.Is(err, ErrInvalid) {
		t.Errorf("assertion by an unpublished key: %v", err)
	}
	// Algorithm from the key: the P-384 key signs ES384 only.
	if err := v.Verify(t.Context(), "svc", signAssertion(t, "svc", "k2", jwa.ES256(), k1)); !errors.Is(err, ErrInvalid) {
		t.Errorf("assertion naming another algorithm than the key's: %v", err)
	}
}

// TestJWKSURIUnknownKidFlood: assertions naming random kids cost a
// handful of fetches, not one each.
func TestJWKSURIUnknownKidFlood(t *testing.T) {
	s := newJWKSServer(t)
	k1, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	s.publish(t, "k1", "", k1)
	v := remoteVerifier(t, "svc", s.srv.URL)
	waitFetched(t, v, "svc", "k1")
	before := s.hits.Load()
	for range 200 {
		if err := v.Verify(t.Context(), "svc", signAssertion(t, "svc", rand.Text(), jwa.ES256(), k1)); !errors.Is(err, ErrInvalid) {
			t.Fatalf("random kid: %v", err)
		}
	}
	if n := s.hits.Load() - before; n > 2 {
		t.Errorf("%d fetches for 200 random kids, want at most 2", n)
	}
}

// TestJWKSURINeverFetched: while the client's set was never fetched an
// assertion is ErrKeysUnavailable (the endpoint answers 503), not a bare
// invalid_client.
func TestJWKSURINeverFetched(t *testing.T) {
	s := newJWKSServer(t)
	s.fail = true
	k1, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	s.publish(t, "k1", "", k1)
	v := remoteVerifier(t, "svc", s.srv.URL)
	err := v.Verify(t.Context(), "svc", signAssertion(t, "svc", "k1", jwa.ES256(), k1))
	if !errors.Is(err, ErrKeysUnavailable) || !errors.Is(err, ErrInvalid) {
		t.Fatalf("assertion with no set fetched: %v, want ErrKeysUnavailable", err)
	}
}

// TestJWKSURIAlgorithms: a fetched key of an algorithm clients may not
// sign with (RS512 here) is not used, even though bearer_auth's fetcher
// accepts it from an issuer.
func TestJWKSURIAlgorithms(t *testing.T) {
	s := newJWKSServer(t)
	rk, _ := rsa.GenerateKey(rand.Reader, 2048)
	s.publish(t, "r1", "RS512", rk)
	v := remoteVerifier(t, "svc", s.srv.URL)
	err := v.Verify(t.Context(), "svc", signAssertion(t, "svc", "r1", jwa.RS512(), rk))
	if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "not one of") {
		t.Fatalf("RS512 assertion: %v", err)
	}
}

// TestJWKSURIPool: verifiers of two configs (a reload) share the fetcher,
// which stops with the last one.
func TestJWKSURIPool(t *testing.T) {
	s := newJWKSServer(t)
	k1, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	s.publish(t, "k1", "", k1)
	a := remoteVerifier(t, "svc", s.srv.URL)
	b := remoteVerifier(t, "svc", s.srv.URL)
	if a.keys["svc"] != b.keys["svc"] {
		t.Error("two configs got two fetchers for one client jwks_uri")
	}
	key := remoteKey{clientID: "svc", url: s.srv.URL}
	a.Close()
	if n, ok := remotePool.References(key); !ok || n != 1 {
		t.Errorf("after one Close: %d references (%v)", n, ok)
	}
	b.Close()
	if _, ok := remotePool.References(key); ok {
		t.Error("fetcher still pooled after the last Close")
	}
}

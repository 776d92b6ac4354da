package tokenhandler_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jwt"

	"github.com/tokengate/tokengate/internal/remotekeys"
	"github.com/tokengate/tokengate/internal/testcaddy"
)

const (
	juBase     = "http://localhost:9631"
	juTokenURL = juBase + "/oauth/token"
)

// clientKeyServer is a client's own HTTPS server publishing its JWK set.
type clientKeyServer struct {
	srv *httptest.Server

	mu   sync.Mutex
	keys []jwk.Key // public keys at /jwks
	hits sync.Map  // path -> *atomic.Int64
}

func newClientKeyServer(t *testing.T) *clientKeyServer {
	t.Helper()
	s := &clientKeyServer{}
	s.srv = httptest.NewTLSServer(http.HandlerFunc(s.serve))
	t.Cleanup(s.srv.Close)
	return s
}

func (s *clientKeyServer) serve(w http.ResponseWriter, r *http.Request) {
	n, _ := s.hits.LoadOrStore(r.URL.Path, new(atomic.Int64))
	n.(*atomic.Int64).Add(1)
	s.mu.Lock()
	set := jwk.NewSet()
	for _, k := range s.keys {
		_ = set.AddKey(k)
	}
	s.mu.Unlock()
	body, _ := json.Marshal(set)
	switch r.URL.Path {
	case "/jwks": // the client's set
		_, _ = w.Write(body)
	case "/moved": // a redirect to the very same set
		http.Redirect(w, r, s.srv.URL+"/moved-target", http.StatusFound)
	case "/moved-target":
		_, _ = w.Write(body)
	case "/big": // the set, padded past the fetcher's bound
		pad := strings.Repeat(" ", remotekeys.MaxFetchSize)
		_, _ = w.Write(append(body[:len(body)-1:len(body)-1], []byte(pad+"}")...))
	default:
		http.Error(w, "down", http.StatusInternalServerError)
	}
}

func (s *clientKeyServer) hitCount(path string) int64 {
	n, ok := s.hits.Load(path)
	if !ok {
		return 0
	}
	return n.(*atomic.Int64).Load()
}

// publish generates a P-256 key named kid, publishes its public half and
// returns the private JWK (with the kid, so signatures name it).
func (s *clientKeyServer) publish(t *testing.T, kid string) jwk.Key {
	t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	sk, err := jwk.Import(priv)
	if err != nil {
		t.Fatal(err)
	}
	_ = sk.Set(jwk.KeyIDKey, kid)
	pk, err := sk.PublicKey()
	if err != nil {
		t.Fatal(err)
	}
	s.mu.Lock()
	s.keys = append(s.keys, pk)
	s.mu.Unlock()
	return sk
}

// trustTestCA makes the process trust the TLS server's certificate for
// the requests the issuer makes: the fetcher uses http.DefaultTransport.
// Registered before Caddy starts, it is undone after Caddy stops.
func trustTestCA(t *testing.T, srv *httptest.Server) {
	t.Helper()
	pool := x509.NewCertPool()
	pool.AddCert(srv.Certificate())
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{RootCAs: pool}
	old := http.DefaultTransport
	http.DefaultTransport = tr
	t.Cleanup(func() { http.DefaultTransport = old })
}

// signedAssertion is a client assertion of client signed by key, with
// audience aud.
func signedAssertion(t *testing.T, key jwk.Key, client, aud string) string {
	t.Helper()
	now := time.Now()
	tok, err := jwt.NewBuilder().Issuer(client).Subject(client).Audience([]string{aud}).
		IssuedAt(now).Expiration(now.Add(time.Minute)).JwtID(randomJTI()).Build()
	if err != nil {
		t.Fatal(err)
	}
	signed, err := jwt.Sign(tok, jwt.WithKey(jwa.ES256(), key))
	if err != nil {
		t.Fatal(err)
	}
	return string(signed)
}

func assertionForm(a string, extra ...string) string {
	form := url.Values{"client_assertion_type": {jwtBearer}, "client_assertion": {a}}
	for i := 0; i+1 < len(extra); i += 2 {
		form.Set(extra[i], extra[i+1])
	}
	return form.Encode()
}

// TestJWKSURI runs an issuer whose clients publish their keys at a
// jwks_uri on a real HTTPS server: a token for an assertion signed by a
// key found only there, a key rotated in and picked up, revocation and
// introspection authenticated the same way, and the sets the fetcher must
// refuse (a redirect, an oversized set, a failing server) answered 503
// since nothing usable was ever fetched.
func TestJWKSURI(t *testing.T) {
	ks := newClientKeyServer(t)
	k1 := ks.publish(t, "k1")
	trustTestCA(t, ks.srv)
	testcaddy.Start(t, fmt.Sprintf(`{
	admin off
	%s
	oauth_issuer {
		issuer %s
		client reports {
			jwks_uri %s/jwks
			token_endpoint_auth_methods private_key_jwt
			scopes reports:read
		}
		client redirected {
			jwks_uri %[3]s/moved
		}
		client oversized {
			jwks_uri %[3]s/big
		}
		client down {
			jwks_uri %[3]s/down
		}
	}
}

:9631 {
	oauth_token
}
`, testcaddy.Storage(t.TempDir()), juBase, ks.srv.URL))

	// The sets are fetched in the background at start. Waiting for it
	// keeps the rotation below from falling within a second of an
	// unknown-kid refetch made by a first request that came before it.
	for deadline := time.Now().Add(5 * time.Second); ks.hitCount("/jwks") == 0; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the client's set was not fetched at start")
		}
	}
	a := post(t, juTokenURL, assertionForm(signedAssertion(t, k1, "reports", juTokenURL), "grant_type", "client_credentials"))
	if a.status != http.StatusOK {
		t.Fatalf("token for an assertion by the jwks_uri's key: %d %s", a.status, a.raw)
	}
	access, _ := a.body["access_token"].(string)

	// Rotation: the client publishes k2 and signs with it at once.
	k2 := ks.publish(t, "k2")
	if a := post(t, juTokenURL, assertionForm(signedAssertion(t, k2, "reports", juTokenURL), "grant_type", "client_credentials")); a.status != http.StatusOK {
		t.Fatalf("token for an assertion by a key rotated in: %d %s", a.status, a.raw)
	}
	// A key the client never published is refused.
	other := (&clientKeyServer{}).publish(t, "k3")
	if a := post(t, juTokenURL, assertionForm(signedAssertion(t, other, "reports", juTokenURL), "grant_type", "client_credentials")); a.status != 401 || a.body["error"] != "invalid_client" {
		t.Fatalf("assertion by an unpublished key: %d %s", a.status, a.raw)
	}

	// Introspection and revocation take the same client authentication;
	// aud may be the issuer URL.
	in := post(t, juBase+"/oauth/introspect", assertionForm(signedAssertion(t, k1, "reports", juBase), "token", access))
	if in.status != http.StatusOK || in.body["active"] != true || in.body["sub"] != "reports" || in.body["scope"] != "reports:read" {
		t.Fatalf("introspection by assertion: %d %s", in.status, in.raw)
	}
	if rv := post(t, juBase+"/oauth/revoke", assertionForm(signedAssertion(t, k2, "reports", juBase), "token", access)); rv.status != http.StatusOK {
		t.Fatalf("revocation by assertion: %d %s", rv.status, rv.raw)
	}
	in = post(t, juBase+"/oauth/introspect", assertionForm(signedAssertion(t, k1, "reports", juBase), "token", access))
	if in.status != http.StatusOK || in.body["active"] != false {
		t.Fatalf("introspection after revocation: %d %s", in.status, in.raw)
	}

	// Sets the fetcher refuses leave the client with no keys: 503, the
	// keys in them never used.
	for _, client := range []string{"redirected", "oversized", "down"} {
		a := post(t, juTokenURL, assertionForm(signedAssertion(t, k1, client, juTokenURL), "grant_type", "client_credentials"))
		if a.status != http.StatusServiceUnavailable || a.body["error"] != "temporarily_unavailable" || a.header.Get("Retry-After") == "" {
			t.Errorf("%s: %d %s, want 503 temporarily_unavailable with Retry-After", client, a.status, a.raw)
		}
	}
	if n := ks.hitCount("/moved-target"); n != 0 {
		t.Errorf("the redirect was followed %d times", n)
	}
	if ks.hitCount("/moved") == 0 || ks.hitCount("/big") == 0 {
		t.Error("the refused sets were never fetched: the test proves nothing")
	}

	md := do(t, mustReq(t, http.MethodGet, juBase+"/.well-known/oauth-authorization-server"))
	for _, ep := range []string{"token", "revocation", "introspection"} {
		methods := fmt.Sprint(md.body[ep+"_endpoint_auth_methods_supported"])
		algs, _ := md.body[ep+"_endpoint_auth_signing_alg_values_supported"].([]any)
		if !strings.Contains(methods, "private_key_jwt") || len(algs) == 0 {
			t.Errorf("metadata for the %s endpoint: %s, algorithms %v", ep, methods, algs)
		}
	}
}

package validator_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tokengate/tokengate/internal/testcaddy"
)

// The mTLS tests run one Caddy with TLS client_auth on :9618 and a plain
// HTTP site on :9619.
const (
	mtlsBase  = "https://localhost:9618"
	plainBase = "http://localhost:9619"
)

// testCert is a certificate and its key, as a tls.Certificate.
type testCert struct {
	cert *x509.Certificate
	tls  tls.Certificate
}

// makeCert makes a certificate for cn, signed by parent (self-signed when
// parent is nil); ca makes it a CA.
func makeCert(t *testing.T, cn string, parent *testCert, ca bool) *testCert {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{
		SerialNumber: serial, Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		IsCA:        ca, BasicConstraintsValid: true,
	}
	signer, signerKey := tmpl, any(key)
	if parent != nil {
		signer, signerKey = parent.cert, parent.tls.PrivateKey
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, signer, &key.PublicKey, signerKey)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &testCert{cert: cert, tls: tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: cert}}
}

func writePEM(t *testing.T, path string, certs ...*testCert) string {
	t.Helper()
	var b []byte
	for _, c := range certs {
		b = append(b, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.cert.Raw})...)
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// tlsClient is an HTTP client presenting cert (none when nil); the
// server's certificate (Caddy's internal CA) is not checked in this test.
func tlsClient(cert *testCert) *http.Client {
	cfg := &tls.Config{InsecureSkipVerify: true} //nolint:gosec // test against Caddy's internal CA
	if cert != nil {
		cfg.Certificates = []tls.Certificate{cert.tls}
	}
	return &http.Client{Transport: &http.Transport{TLSClientConfig: cfg}, Timeout: 10 * time.Second}
}

func x5t(c *testCert) string {
	sum := sha256.Sum256(c.cert.Raw)
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// doWith sends a request with client c (dpopDo uses the default client).
func doWith(t *testing.T, c *http.Client, method, u, form string, hdr map[string]string) dpopAnswer {
	t.Helper()
	req, err := http.NewRequest(method, u, strings.NewReader(form))
	if err != nil {
		t.Fatal(err)
	}
	if form != "" {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	a := dpopAnswer{status: resp.StatusCode, header: resp.Header, body: string(raw)}
	_ = json.Unmarshal(raw, &a.json)
	return a
}

// TestMTLSEndToEnd runs RFC 8705 against a running instance: both client
// authentication methods, certificate-bound tokens, and every refusal of
// issue 16's list that concerns mTLS.
func TestMTLSEndToEnd(t *testing.T) {
	dir := t.TempDir()
	ca := makeCert(t, "test CA", nil, true)
	caClient := makeCert(t, "mtls-client", ca, false)
	self := makeCert(t, "self-client", nil, false)
	stranger := makeCert(t, "mtls-client", nil, false) // same CN, not from the CA, not registered
	testcaddy.Start(t, fmt.Sprintf(`{
	admin off
	%s
	local_certs
	skip_install_trust
	auto_https disable_redirects
	oauth_issuer {
		issuer %s
		client ca-client {
			tls_client_auth_subject_dn CN=mtls-client
			scopes reports:read
		}
		client self-client {
			tls_certificate %s
			scopes reports:read
		}
		client secret-client {
			secret s3cret
			scopes reports:read
		}
	}
}

%s {
	tls internal {
		client_auth {
			mode verify_if_given
			trust_pool file %s
		}
	}
	oauth_token
	handle /api/* {
		bearer_auth {
			scopes reports:read
		}
		respond "hello {http.auth.user.id}"
	}
	handle /mtls-only/* {
		bearer_auth {
			require mtls
		}
		respond "bound"
	}
}

%s {
	handle /api/* {
		bearer_auth {
			issuer default
		}
		respond "plain"
	}
}
`, testcaddy.Storage(dir), mtlsBase, writePEM(t, filepath.Join(dir, "self.pem"), self), mtlsBase,
		writePEM(t, filepath.Join(dir, "pool.pem"), ca, self), plainBase))

	// Caddy makes its internal certificate for localhost in the background.
	for i := 0; ; i++ {
		resp, err := tlsClient(nil).Get(mtlsBase + "/.well-known/jwks.json")
		if err == nil {
			resp.Body.Close()
			break
		}
		if i == 100 {
			t.Fatalf("no TLS on %s: %v", mtlsBase, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	token := func(c *http.Client, form url.Values) dpopAnswer {
		return doWith(t, c, "POST", mtlsBase+"/oauth/token", form.Encode(), nil)
	}
	with := func(id string) url.Values {
		v := url.Values{"client_id": {id}}
		v.Set("grant_type", "client_credentials")
		return v
	}

	// tls_client_auth: a certificate from the CA with the registered DN.
	a := token(tlsClient(caClient), with("ca-client"))
	if a.status != 200 || a.json["token_type"] != "Bearer" {
		t.Fatalf("tls_client_auth: %d %s", a.status, a.body)
	}
	tok := a.json["access_token"].(string)
	if cnf, _ := decodeSegment(t, strings.Split(tok, ".")[1])["cnf"].(map[string]any); cnf["x5t#S256"] != x5t(caClient) {
		t.Fatalf("cnf %v, want x5t#S256 %s", cnf, x5t(caClient))
	}
	auth := map[string]string{"Authorization": "Bearer " + tok}
	if r := doWith(t, tlsClient(caClient), "GET", mtlsBase+"/api/x", "", auth); r.status != 200 || r.body != "hello ca-client" {
		t.Fatalf("bound token with its certificate: %d %s", r.status, r.body)
	}
	if r := doWith(t, tlsClient(caClient), "GET", mtlsBase+"/mtls-only/x", "", auth); r.status != 200 {
		t.Fatalf("bound token at the mtls-only route: %d %s", r.status, r.body)
	}

	// self_signed_tls_client_auth: the registered certificate.
	if s := token(tlsClient(self), with("self-client")); s.status != 200 {
		t.Fatalf("self_signed_tls_client_auth: %d %s", s.status, s.body)
	}

	// Refusals at the token endpoint: invalid_client.
	for name, tc := range map[string]struct {
		c    *http.Client
		form url.Values
	}{
		"tls_client_auth, certificate of another subject": {tlsClient(self), with("ca-client")},
		"self-signed client, another certificate":         {tlsClient(caClient), with("self-client")},
		"secret client by certificate alone":              {tlsClient(caClient), with("secret-client")},
		"unknown client":                                  {tlsClient(caClient), with("nobody")},
	} {
		if r := token(tc.c, tc.form); r.status != 401 || r.json["error"] != "invalid_client" {
			t.Errorf("%s: %d %s, want 401 invalid_client", name, r.status, r.body)
		}
	}
	if r := token(tlsClient(nil), with("ca-client")); r.status != 401 {
		t.Errorf("no certificate: %d %s", r.status, r.body)
	}

	// Refusals at the gate: invalid_token.
	for name, r := range map[string]dpopAnswer{
		"another certificate":   doWith(t, tlsClient(self), "GET", mtlsBase+"/api/x", "", auth),
		"no client certificate": doWith(t, tlsClient(nil), "GET", mtlsBase+"/api/x", "", auth),
		"without TLS":           doWith(t, http.DefaultClient, "GET", plainBase+"/api/x", "", auth),
	} {
		if r.status != 401 || !strings.Contains(r.header.Get("WWW-Authenticate"), `error="invalid_token"`) {
			t.Errorf("%s: %d %q, want 401 invalid_token", name, r.status, r.header.Get("WWW-Authenticate"))
		}
	}
	if r := doWith(t, tlsClient(stranger), "GET", mtlsBase+"/api/x", "", auth); r.status != 401 {
		// Caddy refuses the handshake or the gate the token; either way no 200.
		t.Errorf("a certificate with the same subject: %d", r.status)
	}

	// A secret client gets a bearer token even over mTLS; the mtls-only
	// route refuses it.
	b := token(tlsClient(caClient), url.Values{"grant_type": {"client_credentials"}, "client_id": {"secret-client"}, "client_secret": {"s3cret"}})
	if b.status != 200 {
		t.Fatalf("secret client: %d %s", b.status, b.body)
	}
	if r := doWith(t, tlsClient(caClient), "GET", mtlsBase+"/mtls-only/x", "", map[string]string{"Authorization": "Bearer " + b.json["access_token"].(string)}); r.status != 401 {
		t.Fatalf("bearer token at the mtls-only route: %d", r.status)
	}

	md := doWith(t, tlsClient(nil), "GET", mtlsBase+"/.well-known/oauth-authorization-server", "", nil)
	methods := fmt.Sprint(md.json["token_endpoint_auth_methods_supported"])
	if md.json["tls_client_certificate_bound_access_tokens"] != true || !strings.Contains(methods, "tls_client_auth") || !strings.Contains(methods, "self_signed_tls_client_auth") {
		t.Fatalf("metadata: %s", md.body)
	}

	// Introspection and revocation authenticate the client by its
	// certificate too, and the metadata says so.
	for _, ep := range []string{"revocation", "introspection"} {
		if m := fmt.Sprint(md.json[ep+"_endpoint_auth_methods_supported"]); m != methods {
			t.Errorf("%s_endpoint_auth_methods_supported %s, want the token endpoint's %s", ep, m, methods)
		}
	}
	lifecycle := func(path string) dpopAnswer {
		return doWith(t, tlsClient(caClient), "POST", mtlsBase+path, url.Values{"client_id": {"ca-client"}, "token": {tok}}.Encode(), nil)
	}
	if r := lifecycle("/oauth/introspect"); r.status != 200 || r.json["active"] != true {
		t.Fatalf("introspection by tls_client_auth: %d %s", r.status, r.body)
	}
	if r := lifecycle("/oauth/revoke"); r.status != 200 {
		t.Fatalf("revocation by tls_client_auth: %d %s", r.status, r.body)
	}
	if r := lifecycle("/oauth/introspect"); r.status != 200 || r.json["active"] != false {
		t.Fatalf("introspection after revocation by tls_client_auth: %d %s", r.status, r.body)
	}
}

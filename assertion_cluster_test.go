package tokengate_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jwt"

	"github.com/tokengate/tokengate/internal/testcaddy"
	"github.com/tokengate/tokengate/internal/testredis"
	"github.com/tokengate/tokengate/internal/testsync"
)

// assertionClient is a private_key_jwt client of a test cluster: its
// issuer line (client pkj, registering its public key inline) and a maker
// of fresh assertions.
type assertionClient struct {
	key *ecdsa.PrivateKey
}

func newAssertionClient(t *testing.T) *assertionClient {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return &assertionClient{key: key}
}

func (c *assertionClient) issuerLine(t *testing.T) string {
	pub, err := jwk.Import(c.key.Public())
	if err != nil {
		t.Fatal(err)
	}
	set := jwk.NewSet()
	_ = set.AddKey(pub)
	jwks, _ := json.Marshal(set)
	return "client pkj {\n\t\t\tjwks `" + string(jwks) + "`\n\t\t\tscopes read\n\t\t\taudience api\n\t\t}"
}

// assertion signs a fresh assertion for the cluster's token endpoint.
func (c *assertionClient) assertion(t *testing.T) string {
	t.Helper()
	now := time.Now()
	jti := make([]byte, 12)
	_, _ = rand.Read(jti)
	tok, err := jwt.NewBuilder().Issuer("pkj").Subject("pkj").Audience([]string{"http://tokengate.test/oauth/token"}).
		IssuedAt(now).Expiration(now.Add(time.Minute)).JwtID(base64.RawURLEncoding.EncodeToString(jti)).Build()
	if err != nil {
		t.Fatal(err)
	}
	signed, err := jwt.Sign(tok, jwt.WithKey(jwa.ES256(), c.key))
	if err != nil {
		t.Fatal(err)
	}
	return string(signed)
}

func assertionForm(assertion string) string {
	return url.Values{
		"grant_type":            {"client_credentials"},
		"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"},
		"client_assertion":      {assertion},
	}.Encode()
}

func assertionGrant(t *testing.T, in *instance, assertion string) (int, string) {
	t.Helper()
	status, body := httpDo(t, http.MethodPost, in.base+"/oauth/token", assertionForm(assertion))
	return status, string(body)
}

// checkAssertionOnceAcrossInstances: an assertion accepted at one instance
// is refused at the other with invalid_client, both ways; and of the same
// assertion sent to both at the same moment, exactly one is accepted.
func checkAssertionOnceAcrossInstances(t *testing.T, c *assertionClient, a, b *instance) {
	for _, pair := range [][2]*instance{{a, b}, {b, a}} {
		as := c.assertion(t)
		if status, body := assertionGrant(t, pair[0], as); status != 200 {
			t.Fatalf("assertion at %s: %d %s", pair[0].base, status, body)
		}
		if status, body := assertionGrant(t, pair[1], as); status != 401 || !strings.Contains(body, `"invalid_client"`) {
			t.Fatalf("the assertion accepted at %s, replayed at %s: %d %s; want 401 invalid_client", pair[0].base, pair[1].base, status, body)
		}
	}
	const rounds = 8
	assertions := make([]string, rounds)
	for i := range assertions {
		assertions[i] = c.assertion(t)
	}
	var mu sync.Mutex
	accepted := make([]int, rounds)
	testsync.AtOnce(2*rounds, func(k int) {
		i, in := k/2, []*instance{a, b}[k%2]
		status, body := assertionGrant(t, in, assertions[i])
		switch {
		case status == 200:
			mu.Lock()
			accepted[i]++
			mu.Unlock()
		case status == 401 && strings.Contains(body, `"invalid_client"`):
		default:
			t.Errorf("round %d at %s: %d %s", i, in.base, status, body)
		}
	})
	for i, n := range accepted {
		if n != 1 {
			t.Errorf("round %d: the same assertion sent to both instances at once was accepted %d times; want exactly 1", i, n)
		}
	}
}

// TestAssertionOnceAcrossInstances: two Caddy processes on one storage
// directory accept a client assertion once between them (its jti is
// claimed in the storage, not in each process).
func TestAssertionOnceAcrossInstances(t *testing.T) {
	c := newAssertionClient(t)
	up := newUpstream(t)
	ins := startClusterWith(t, t.TempDir(), up.URL, []string{c.issuerLine(t)}, freePorts(t, 2)...)
	checkAssertionOnceAcrossInstances(t, c, ins[0], ins[1])
}

// TestAssertionOnceAcrossInstancesOnRedis: the same with Redis as all the
// two processes share; with Redis down an assertion is answered 503
// temporarily_unavailable (never 200: its jti cannot be claimed), and is
// accepted once Redis is back.
func TestAssertionOnceAcrossInstancesOnRedis(t *testing.T) {
	c := newAssertionClient(t)
	up := newUpstream(t)
	srv := testredis.StartWith(t, testredis.Options{Persist: true})
	ins := startOnRedis(t, []string{srv.Addr()}, up.URL, []string{c.issuerLine(t)}, freePorts(t, 2)...)
	checkAssertionOnceAcrossInstances(t, c, ins[0], ins[1])

	as := c.assertion(t)
	srv.Stop()
	status, body, hdr := testcaddy.Send(t, http.MethodPost, ins[0].base+"/oauth/token", assertionForm(as))
	srv.Start()
	if status != 503 || !strings.Contains(string(body), `"temporarily_unavailable"`) || hdr.Get("Retry-After") == "" {
		t.Fatalf("assertion with redis down: %d %s (Retry-After %q); want 503 temporarily_unavailable", status, body, hdr.Get("Retry-After"))
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		status, body := assertionGrant(t, ins[1], as)
		if status == 200 {
			break
		}
		if status != 503 || time.Now().After(deadline) {
			t.Fatalf("the assertion refused while redis was down, once it is back: %d %s", status, body)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if status, body := assertionGrant(t, ins[0], as); status != 401 {
		t.Fatalf("the assertion replayed after redis came back: %d %s", status, body)
	}
}

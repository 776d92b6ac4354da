package tokengate_test

import (
	"bytes"
	"encoding/base64"
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

	"github.com/tokengate/tokengate/internal/testcaddy"
	"github.com/tokengate/tokengate/internal/testsync"
)

// upstream is a stand-in legacy service: it counts requests and answers
// with the identity it was handed.
type upstream struct {
	*httptest.Server
	hits atomic.Int64
}

func newUpstream(t *testing.T) *upstream {
	u := new(upstream)
	u.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.hits.Add(1)
		fmt.Fprintf(w, "hello %s", r.Header.Get("X-Client-Id"))
	}))
	t.Cleanup(u.Close)
	return u
}

// instance is one Caddy process of a cluster.
type instance struct {
	base string
	cfg  string
	proc *testcaddy.Process
}

func clusterConfig(port int, storage, upstreamURL string, issuerLines ...string) string {
	return clusterCaddyfile(port, "off", storage, fmt.Sprintf(`reverse_proxy %s {
			header_up X-Client-Id {http.auth.user.id}
		}`, strings.TrimPrefix(upstreamURL, "http://")), issuerLines...)
}

// clusterCaddyfile is the Caddyfile of one instance of a test cluster: an
// issuer on storage with the client svc (secret svc-secret, scope read,
// audience api, refresh allowed), its token endpoint, and /api/* behind
// bearer_auth answered by handler.
func clusterCaddyfile(port int, admin, storage, handler string, issuerLines ...string) string {
	return fmt.Sprintf(`{
	admin %s
	%s
	oauth_issuer {
		issuer http://tokengate.test
		revocation_sync 1s
		%s
		client svc {
			secret svc-secret
			scopes read
			audience api
			grant_types client_credentials refresh_token
		}
	}
}

:%d {
	oauth_token
	handle /api/* {
		bearer_auth {
			audience api
		}
		%s
	}
}
`, admin, testcaddy.Storage(storage), strings.Join(issuerLines, "\n\t\t"), port, handler)
}

// startCluster starts one instance per port on one storage directory, all
// at the same moment (so they race to make the first signing key).
func startCluster(t *testing.T, storage, upstreamURL string, ports ...int) []*instance {
	return startClusterWith(t, storage, upstreamURL, nil, ports...)
}

// startClusterWith starts a cluster whose issuer has these extra lines.
func startClusterWith(t *testing.T, storage, upstreamURL string, issuerLines []string, ports ...int) []*instance {
	t.Helper()
	testcaddy.Binary(t)
	var out []*instance
	for _, p := range ports {
		in := &instance{base: fmt.Sprintf("http://localhost:%d", p), cfg: clusterConfig(p, storage, upstreamURL, issuerLines...)}
		in.proc = testcaddy.SpawnProcess(t, in.cfg)
		out = append(out, in)
	}
	for _, in := range out {
		in.proc.WaitReady(in.base + "/.well-known/jwks.json")
	}
	return out
}

func (in *instance) restart(t *testing.T) {
	t.Helper()
	in.proc.Stop()
	in.proc = testcaddy.StartProcess(t, in.cfg, in.base+"/.well-known/jwks.json")
}

var svcBasic = "Basic " + base64.StdEncoding.EncodeToString([]byte("svc:svc-secret"))

// httpDo is testcaddy.Send without the answer's header.
func httpDo(t *testing.T, method, u, body string, hdr ...string) (int, []byte) {
	t.Helper()
	status, b, _ := testcaddy.Send(t, method, u, body, hdr...)
	return status, b
}

func (in *instance) token(t *testing.T) (access, refresh string) {
	t.Helper()
	status, body := httpDo(t, http.MethodPost, in.base+"/oauth/token?grant_type=client_credentials", "", "Authorization", svcBasic)
	var ans map[string]any
	if status != 200 || json.Unmarshal(body, &ans) != nil {
		t.Fatalf("token from %s: %d %s", in.base, status, body)
	}
	return ans["access_token"].(string), ans["refresh_token"].(string)
}

func (in *instance) call(t *testing.T, token string) (int, string) {
	t.Helper()
	status, body := httpDo(t, http.MethodGet, in.base+"/api/x", "", "Authorization", "Bearer "+token)
	return status, string(body)
}

func (in *instance) jwks(t *testing.T) []byte {
	t.Helper()
	status, body := httpDo(t, http.MethodGet, in.base+"/.well-known/jwks.json", "")
	if status != 200 {
		t.Fatalf("jwks of %s: %d", in.base, status)
	}
	return body
}

// TestTwoInstancesAreOneIssuer runs two Caddy processes on one storage
// directory and checks they behave as one issuer.
func TestTwoInstancesAreOneIssuer(t *testing.T) {
	storage := t.TempDir()
	up := newUpstream(t)
	ins := startCluster(t, storage, up.URL, 9391, 9392)
	a, b := ins[0], ins[1]

	// One key, made once although both started together.
	ja, jb := a.jwks(t), b.jwks(t)
	var set struct{ Keys []map[string]any }
	if err := json.Unmarshal(ja, &set); err != nil || len(set.Keys) != 1 {
		t.Fatalf("JWKS of a: %s (%v), want exactly one key", ja, err)
	}
	if !bytes.Equal(ja, jb) {
		t.Fatalf("the instances publish different keys:\n%s\n%s", ja, jb)
	}

	// Tokens from either are valid at both.
	atA, _ := a.token(t)
	atB, _ := b.token(t)
	for _, c := range []struct {
		in  *instance
		tok string
	}{{a, atB}, {b, atA}, {a, atA}, {b, atB}} {
		if status, body := c.in.call(t, c.tok); status != 200 || body != "hello svc" {
			t.Errorf("token at %s: %d %q", c.in.base, status, body)
		}
	}

	// A revocation at a is refused by a at once and by b within the
	// documented delay (revocation_sync 1s).
	status, body := httpDo(t, http.MethodPost, a.base+"/oauth/revoke", "token="+url.QueryEscape(atB), "Authorization", svcBasic)
	if status != 200 {
		t.Fatalf("revoke at a: %d %s", status, body)
	}
	revokedAt := time.Now()
	if status, _ := a.call(t, atB); status != 401 {
		t.Fatalf("revoking instance accepted the revoked token: %d", status)
	}
	var seenAfter time.Duration
	for {
		if status, _ := b.call(t, atB); status == 401 {
			seenAfter = time.Since(revokedAt)
			break
		}
		if time.Since(revokedAt) > 5*time.Second {
			t.Fatal("the other instance still accepts the revoked token after 5s (revocation_sync is 1s)")
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("revocation seen by the other instance after %v", seenAfter.Round(10*time.Millisecond))
	if status, _ := b.call(t, atA); status != 200 {
		t.Errorf("an unrevoked token is refused after the revocation: %d", status)
	}
	// From then on the revoked token never reaches the upstream.
	hits := up.hits.Load()
	for _, in := range []*instance{a, b, a, b} {
		if status, _ := in.call(t, atB); status != 401 {
			t.Errorf("revoked token at %s: %d", in.base, status)
		}
	}
	if got := up.hits.Load(); got != hits {
		t.Errorf("a revoked token reached the upstream %d times", got-hits)
	}
}

// TestConcurrentRefreshOneWinner sends the same refresh token to two
// instances at the same moment, many times: the family gets exactly one new
// state each time. With the reuse interval off exactly one request wins and
// the other is a reuse; with the default interval both get the same answer
// (the one new refresh token), which then works at either instance.
func TestConcurrentRefreshOneWinner(t *testing.T) {
	for _, tc := range []struct {
		name  string
		lines []string
		ports []int
	}{
		{"reuse interval off", []string{"refresh_reuse_interval off"}, []int{9393, 9394}},
		{"default reuse interval", nil, []int{9397, 9398}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			up := newUpstream(t)
			ins := startClusterWith(t, t.TempDir(), up.URL, tc.lines, tc.ports...)
			const rounds = 16
			tokens := make([]string, rounds)
			for i := range tokens {
				_, tokens[i] = ins[i%2].token(t)
			}
			var mu sync.Mutex
			answers := make([]map[string]int, rounds) // new refresh token -> 200 answers with it
			for i := range answers {
				answers[i] = map[string]int{}
			}
			testsync.AtOnce(rounds*len(ins), func(k int) {
				i, in := k/len(ins), ins[k%len(ins)]
				status, body := httpDo(t, http.MethodPost, in.base+"/oauth/token", "grant_type=refresh_token&refresh_token="+tokens[i], "Authorization", svcBasic)
				var ans struct {
					RefreshToken string `json:"refresh_token"`
				}
				switch {
				case status == 200 && json.Unmarshal(body, &ans) == nil && ans.RefreshToken != "":
					mu.Lock()
					answers[i][ans.RefreshToken]++
					mu.Unlock()
				case status == 400 && strings.Contains(string(body), `"invalid_grant"`) && tc.lines != nil:
				default:
					t.Errorf("round %d at %s: %d %s", i, in.base, status, body)
				}
			})
			for i, a := range answers {
				if len(a) != 1 {
					t.Errorf("round %d: %d distinct new refresh tokens, want exactly 1: %v", i, len(a), a)
					continue
				}
				for next, n := range a {
					switch {
					case tc.lines != nil && n != 1:
						t.Errorf("round %d: %d winners, want exactly 1", i, n)
					case tc.lines == nil && n != 2:
						t.Errorf("round %d: %d of 2 retries within the interval got the answer", i, n)
					}
					// The loser's reuse revoked the family; a retry's did not.
					status, _ := httpDo(t, http.MethodPost, ins[(i+1)%2].base+"/oauth/token", "grant_type=refresh_token&refresh_token="+next, "Authorization", svcBasic)
					if want := map[bool]int{true: 400, false: 200}[tc.lines != nil]; status != want {
						t.Errorf("round %d: the new refresh token answered %d, want %d", i, status, want)
					}
				}
			}
		})
	}
}

// TestStateSurvivesProcessRestart restarts an instance on the same storage:
// same keys, revocations still refused, refresh tokens still redeemable.
func TestStateSurvivesProcessRestart(t *testing.T) {
	storage := t.TempDir()
	up := newUpstream(t)
	a := startCluster(t, storage, up.URL, 9395)[0]
	keys := a.jwks(t)
	live, rt := a.token(t)
	dead, _ := a.token(t)
	if status, body := httpDo(t, http.MethodPost, a.base+"/oauth/revoke", "token="+dead, "Authorization", svcBasic); status != 200 {
		t.Fatalf("revoke: %d %s", status, body)
	}
	a.restart(t)
	if got := a.jwks(t); !bytes.Equal(got, keys) {
		t.Fatalf("keys changed across a restart:\n%s\n%s", keys, got)
	}
	if status, _ := a.call(t, live); status != 200 {
		t.Errorf("token from before the restart: %d", status)
	}
	if status, _ := a.call(t, dead); status != 401 {
		t.Errorf("revoked token accepted after the restart: %d", status)
	}
	if status, body := httpDo(t, http.MethodPost, a.base+"/oauth/token", "grant_type=refresh_token&refresh_token="+rt, "Authorization", svcBasic); status != 200 {
		t.Errorf("refresh token from before the restart: %d %s", status, body)
	}
}

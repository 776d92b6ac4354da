package tokengate_test

import (
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/tokengate/tokengate/internal/testcaddy"
	"github.com/tokengate/tokengate/internal/testredis"
)

// startOnRedisBlock starts one Caddy instance per port whose issuer has
// the state line given (state redis … { … }), each with a storage
// directory of its own.
func startOnRedisBlock(t *testing.T, stateLine, upstreamURL string, ports ...int) []*instance {
	t.Helper()
	testcaddy.Binary(t)
	var out []*instance
	for _, p := range ports {
		in := &instance{base: fmt.Sprintf("http://localhost:%d", p), cfg: clusterConfig(p, t.TempDir(), upstreamURL, stateLine)}
		in.proc = testcaddy.SpawnProcess(t, in.cfg)
		out = append(out, in)
	}
	for _, in := range out {
		in.proc.WaitReady(in.base + "/.well-known/jwks.json")
	}
	return out
}

// refreshTokenOf reads the refresh token of a token endpoint answer.
func refreshTokenOf(t *testing.T, body []byte) string {
	t.Helper()
	var ans struct {
		RefreshToken string `json:"refresh_token"`
	}
	if err := json.Unmarshal(body, &ans); err != nil || ans.RefreshToken == "" {
		t.Fatalf("no refresh token in %s", body)
	}
	return ans.RefreshToken
}

// throughRedis checks the issuer on a Redis deployment end to end: a token
// issued at a is valid at b; its refresh token is redeemed at b; revoked at
// a, it is refused at b. It returns the refresh token b answered with.
func throughRedis(t *testing.T, a, b *instance) string {
	t.Helper()
	at, rt := a.token(t)
	if status, body := b.call(t, at); status != 200 || body != "hello svc" {
		t.Fatalf("a's token at b: %d %q", status, body)
	}
	status, body := redeem(t, b, rt)
	if status != 200 {
		t.Fatalf("refresh at b: %d %s", status, body)
	}
	if status, body := revoke(t, a, at); status != 200 {
		t.Fatalf("revoke at a: %d %s", status, body)
	}
	waitStatus(t, "the token revoked at a, at b", 401, func() (int, []byte) { s, body := b.call(t, at); return s, []byte(body) })
	return refreshTokenOf(t, body)
}

// untilOK retries f until it answers 200, allowing only 503 meanwhile, and
// returns the 200 answer's body and how many 503 came before it.
func untilOK(t *testing.T, what string, f func() (int, []byte)) ([]byte, int) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	n503 := 0
	for {
		status, body := f()
		switch {
		case status == 200:
			return body, n503
		case status != 503:
			t.Fatalf("%s: %d %s; want 200, or 503 until it is 200", what, status, body)
		case time.Now().After(deadline):
			t.Fatalf("%s: still 503 after 15s: %s", what, body)
		}
		n503++
		time.Sleep(50 * time.Millisecond)
	}
}

// TestRedisSentinel: two Caddy instances on Redis through Sentinels
// (master_name and two Sentinels' addresses) issue, refresh and revoke;
// the Sentinels then promote the replica, and refresh and revocation work
// again (at most a few 503 meanwhile) with nothing lost: a token revoked
// before the failover stays refused, a refresh token issued before it is
// redeemed after it.
func TestRedisSentinel(t *testing.T) {
	ss := testredis.StartSentinels(t, 2)
	up := newUpstream(t)
	stateLine := fmt.Sprintf("state redis %s {\n\t\t\tmaster_name %s\n\t\t\ttimeout 300ms\n\t\t\tdial_timeout 300ms\n\t\t}",
		strings.Join(ss.Addrs(), " "), ss.Name)
	ins := startOnRedisBlock(t, stateLine, up.URL, freePorts(t, 2)...)
	a, b := ins[0], ins[1]
	rt := throughRedis(t, a, b)
	revokedBefore, _ := b.token(t)
	if status, body := revoke(t, b, revokedBefore); status != 200 {
		t.Fatalf("revoke: %d %s", status, body)
	}
	live, _ := a.token(t)

	oldMaster := ss.Master.Addr()
	ss.Failover()
	t.Logf("sentinels promoted %s over %s", ss.Master.Addr(), oldMaster)
	body, n := untilOK(t, "refresh at a after the failover", func() (int, []byte) { return redeem(t, a, rt) })
	t.Logf("refresh after the failover: 200 after %d answers 503", n)
	refreshTokenOf(t, body)
	_, n = untilOK(t, "revoke at b after the failover", func() (int, []byte) {
		s, body := revoke(t, b, live)
		return s, []byte(body)
	})
	t.Logf("revoke after the failover: 200 after %d answers 503", n)
	waitStatus(t, "the token revoked at b after the failover, at a", 401, func() (int, []byte) { s, body := a.call(t, live); return s, []byte(body) })
	for _, in := range ins {
		if status, _ := in.call(t, revokedBefore); status != 401 {
			t.Errorf("a token revoked before the failover, at %s after it: %d", in.base, status)
		}
	}
	if v, err := ss.Master.Do("KEYS tokengate:*:files"); err != nil || v == "" {
		t.Errorf("no signing keys on the new master: %q, %v", v, err)
	}
	throughRedis(t, b, a)
}

// TestRedisTLS: two Caddy instances on a Redis that speaks only TLS and
// asks for a client certificate (tls <ca> and tls_client <cert> <key>)
// issue, refresh and revoke; an instance configured with another CA does
// not talk to it: its token endpoint answers 503 and its log names the
// certificate error.
func TestRedisTLS(t *testing.T) {
	srv := testredis.StartWith(t, testredis.Options{TLS: true, ClientAuth: true})
	up := newUpstream(t)
	stateLine := func(ca string) string {
		return fmt.Sprintf("state redis %s {\n\t\t\ttls %s\n\t\t\ttls_client %s %s\n\t\t\ttimeout 300ms\n\t\t\tdial_timeout 300ms\n\t\t}",
			srv.Addr(), ca, srv.TLS.ClientCert, srv.TLS.ClientKey)
	}
	ins := startOnRedisBlock(t, stateLine(srv.TLS.CA), up.URL, freePorts(t, 2)...)
	throughRedis(t, ins[0], ins[1])

	wrong := startOnRedisBlock(t, stateLine(testredis.MakeCA(t, t.TempDir(), "another-ca")), up.URL, freePorts(t, 1)...)[0]
	status, body, hdr := post(t, wrong.base+"/oauth/token", "grant_type=client_credentials")
	is503(t, "token with a wrong CA", status, body, hdr)
	if out := wrong.proc.Output(); !strings.Contains(out, "certificate signed by unknown authority") {
		t.Errorf("the log of an instance with a wrong CA does not name the certificate error:\n%s", out)
	}
}

// TestRedisSentinelAuth: Sentinels that require an ACL user and password.
// An instance with sentinel_username and sentinel_password (from
// {env.*}) issues a token and redeems its refresh token; an instance with
// a wrong password, and one with none, answer 503 on the token endpoint
// and on a refresh (never 200), and their logs say why (WRONGPASS,
// NOAUTH). No password appears in any instance's output.
func TestRedisSentinelAuth(t *testing.T) {
	const secret, wrongSecret = "Sentinel-Pass-4a7f", "Wrong-Pass-91c2"
	ss := testredis.StartSentinelsWith(t, 2, testredis.SentinelOptions{User: "tokengate", Password: secret})
	t.Setenv("TG_TEST_SENTINEL_PASSWORD", secret)
	up := newUpstream(t)
	stateLine := func(auth string) string {
		return fmt.Sprintf("state redis %s {\n\t\t\tmaster_name %s\n%s\t\t\ttimeout 300ms\n\t\t\tdial_timeout 300ms\n\t\t}",
			strings.Join(ss.Addrs(), " "), ss.Name, auth)
	}
	good := startOnRedisBlock(t, stateLine("\t\t\tsentinel_username tokengate\n\t\t\tsentinel_password {env.TG_TEST_SENTINEL_PASSWORD}\n"), up.URL, freePorts(t, 1)...)[0]
	_, rt := good.token(t)
	status, body := redeem(t, good, rt)
	if status != 200 {
		t.Fatalf("refresh through Sentinels with their password: %d %s", status, body)
	}
	rt = refreshTokenOf(t, body)

	for _, bad := range []struct{ name, auth, why string }{
		{"wrong password", "\t\t\tsentinel_username tokengate\n\t\t\tsentinel_password " + wrongSecret + "\n", "WRONGPASS"},
		{"no password", "", "NOAUTH"},
	} {
		in := startOnRedisBlock(t, stateLine(bad.auth), up.URL, freePorts(t, 1)...)[0]
		status, body, hdr := post(t, in.base+"/oauth/token", "grant_type=client_credentials")
		is503(t, bad.name+": token", status, body, hdr)
		status, body, hdr = post(t, in.base+"/oauth/token", "grant_type=refresh_token&refresh_token="+url.QueryEscape(rt))
		is503(t, bad.name+": refresh", status, body, hdr)
		out := in.proc.Output()
		if !strings.Contains(out, bad.why) || !strings.Contains(out, "issuer state unavailable") {
			t.Errorf("%s: the log does not say why the state is unavailable (%s):\n%s", bad.name, bad.why, out)
		}
		if strings.Contains(out, secret) || strings.Contains(out, wrongSecret) {
			t.Errorf("%s: a password in the log:\n%s", bad.name, out)
		}
	}
	// The good instance still redeems: the refused ones consumed nothing.
	if status, body := redeem(t, good, rt); status != 200 {
		t.Fatalf("refresh after the refused instances: %d %s", status, body)
	}
	if out := good.proc.Output(); strings.Contains(out, secret) {
		t.Errorf("the password in the log of the instance using it:\n%s", out)
	}
}

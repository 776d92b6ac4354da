package tokengate_test

import (
	"bytes"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tokengate/tokengate/internal/testcaddy"
	"github.com/tokengate/tokengate/internal/testredis"
)

// waitStatus polls f until it answers want, failing after 10s.
func waitStatus(t *testing.T, what string, want int, f func() (int, []byte)) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		status, body := f()
		if status == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %d %s after 10s; want %d", what, status, body, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// is503 checks an answer of an endpoint that needs Redis while it is away.
func is503(t *testing.T, what string, status int, body []byte, hdr http.Header) {
	t.Helper()
	if status != 503 || !strings.Contains(string(body), `"temporarily_unavailable"`) || hdr.Get("Retry-After") == "" {
		t.Errorf("%s with redis away: %d %s (Retry-After %q); want 503 temporarily_unavailable with Retry-After", what, status, body, hdr.Get("Retry-After"))
	}
}

// post sends a form as the client svc.
func post(t *testing.T, u, body string) (int, []byte, http.Header) {
	t.Helper()
	return testcaddy.Send(t, http.MethodPost, u, body, "Authorization", svcBasic)
}

// TestRedisUnreachableAtStart: Caddy starts without Redis; the token
// endpoint answers 503 until Redis is there, then works.
func TestRedisUnreachableAtStart(t *testing.T) {
	srv := testredis.Start(t)
	srv.Stop()
	up := newUpstream(t)
	a := startOnRedis(t, []string{srv.Addr()}, up.URL, nil, freePorts(t, 1)...)[0]
	status, body, hdr := post(t, a.base+"/oauth/token", "grant_type=client_credentials")
	is503(t, "token", status, body, hdr)
	srv.Start()
	waitStatus(t, "token once redis is up", 200, func() (int, []byte) {
		s, b, _ := post(t, a.base+"/oauth/token", "grant_type=client_credentials")
		return s, b
	})
	at, _ := a.token(t)
	if status, _ := a.call(t, at); status != 200 {
		t.Errorf("token after redis came up: %d", status)
	}
}

// TestRedisLostMidRun: with Redis gone, bearer_auth keeps validating with
// what it holds (a revoked token stays refused), refresh and revoke answer
// 503; when Redis is back, both work again and the other instance catches
// up with a revocation made then.
func TestRedisLostMidRun(t *testing.T) {
	srv := testredis.StartWith(t, testredis.Options{Persist: true})
	up := newUpstream(t)
	ins := startOnRedis(t, []string{srv.Addr()}, up.URL, nil, freePorts(t, 2)...)
	a, b := ins[0], ins[1]
	live, rt := a.token(t)
	dead, _ := a.token(t)
	if status, body := revoke(t, a, dead); status != 200 {
		t.Fatalf("revoke: %d %s", status, body)
	}
	waitStatus(t, "revoked token at b", 401, func() (int, []byte) { s, body := b.call(t, dead); return s, []byte(body) })

	srv.Stop()
	for _, in := range ins {
		if status, _ := in.call(t, live); status != 200 {
			t.Errorf("a valid token at %s with redis away: %d", in.base, status)
		}
		if status, _ := in.call(t, dead); status != 401 {
			t.Errorf("a revoked token at %s with redis away: %d", in.base, status)
		}
	}
	status, body, hdr := post(t, a.base+"/oauth/token", "grant_type=refresh_token&refresh_token="+rt)
	is503(t, "refresh", status, body, hdr)
	status, body, hdr = post(t, b.base+"/oauth/revoke", "token="+live)
	is503(t, "revoke", status, body, hdr)
	if status, _ := a.call(t, live); status != 200 {
		t.Errorf("a revocation answered 503 was held as done: %d", status)
	}

	srv.Start()
	waitStatus(t, "revoke once redis is back", 200, func() (int, []byte) {
		s, b, _ := post(t, b.base+"/oauth/revoke", "token="+live)
		return s, b
	})
	waitStatus(t, "the revocation made at b after redis came back, at a", 401, func() (int, []byte) { s, body := a.call(t, live); return s, []byte(body) })
	if status, body := redeem(t, a, rt); status != 200 {
		t.Errorf("refresh once redis is back: %d %s", status, body)
	}
	// What was answered 200 before the loss holds everywhere after it, also
	// at an instance that starts now: the same keys, the revocation.
	c := startOnRedis(t, []string{srv.Addr()}, up.URL, nil, freePorts(t, 1)...)[0]
	if !bytes.Equal(c.jwks(t), a.jwks(t)) {
		t.Errorf("an instance started after redis came back publishes other keys")
	}
	for _, in := range []*instance{a, b, c} {
		if status, _ := in.call(t, dead); status != 401 {
			t.Errorf("a token revoked before redis was lost, at %s after it came back: %d", in.base, status)
		}
	}
}

// TestRedisRestartedEmpty: Redis comes back without its data; the running
// instance writes back its keys and revocations, so a new instance signs
// with the same key and refuses the same tokens.
func TestRedisRestartedEmpty(t *testing.T) {
	srv := testredis.Start(t)
	up := newUpstream(t)
	a := startOnRedis(t, []string{srv.Addr()}, up.URL, nil, freePorts(t, 1)...)[0]
	keys := a.jwks(t)
	live, _ := a.token(t)
	dead, _ := a.token(t)
	if status, body := revoke(t, a, dead); status != 200 {
		t.Fatalf("revoke: %d %s", status, body)
	}
	srv.Stop()
	srv.Wipe()
	srv.Start()
	waitStatus(t, "keys written back to redis", 200, func() (int, []byte) {
		if out, err := srv.Do("KEYS tokengate:*:files"); err != nil || out == "" {
			return 0, []byte(out)
		}
		return 200, nil
	})
	c := startOnRedis(t, []string{srv.Addr()}, up.URL, nil, freePorts(t, 1)...)[0]
	if got := c.jwks(t); !bytes.Equal(got, keys) {
		t.Fatalf("a new instance after redis restarted empty publishes other keys:\n%s\n%s", keys, got)
	}
	if status, _ := c.call(t, live); status != 200 {
		t.Errorf("a token of the first instance at the new one: %d", status)
	}
	waitStatus(t, "the revocation written back, at the new instance", 401, func() (int, []byte) { s, body := c.call(t, dead); return s, []byte(body) })
}

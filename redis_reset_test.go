package tokengate_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/tokengate/tokengate/internal/testredis"
)

// redeemed redeems a refresh token that must work, returning the new pair.
func redeemed(t *testing.T, in *instance, rt string) (access, refresh string) {
	t.Helper()
	status, body := redeem(t, in, rt)
	var m map[string]any
	if status != 200 || json.Unmarshal(body, &m) != nil {
		t.Fatalf("redeeming at %s: %d %s", in.base, status, body)
	}
	access, _ = m["access_token"].(string)
	refresh, _ = m["refresh_token"].(string)
	if access == "" || refresh == "" {
		t.Fatalf("redeeming at %s: %s; want an access and a refresh token", in.base, body)
	}
	return access, refresh
}

// refusedGrant checks that a refresh token is refused with invalid_grant
// (while Redis reconnects, 503 is waited out: it is never a success).
func refusedGrant(t *testing.T, what string, in *instance, rt string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		status, body := redeem(t, in, rt)
		if status == 503 && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
			continue
		}
		if status != 400 || !strings.Contains(string(body), `"invalid_grant"`) {
			t.Errorf("%s at %s after redis restarted empty: %d %s; want 400 invalid_grant", what, in.base, status, body)
		}
		return
	}
}

// TestRedisRestartedEmptyRefreshTokens: Redis restarts without its data
// and the refresh token families' records are lost with it. A refresh token
// redeemed before (generation 0, whose family now has no record, as a
// never-redeemed one has none) must not be redeemed again, at any
// instance: the refresh token keys are not written back, so every refresh
// token made before the loss is refused with invalid_grant (not a 200, not
// a 500), its successor too. The access tokens stay valid (the signing keys
// are written back), and a client's new client_credentials token comes
// with a refresh token that works at every instance.
func TestRedisRestartedEmptyRefreshTokens(t *testing.T) {
	srv := testredis.Start(t)
	up := newUpstream(t)
	ins := startOnRedis(t, []string{srv.Addr()}, up.URL, nil, freePorts(t, 2)...)
	a, b := ins[0], ins[1]
	at0, rt0 := a.token(t)
	at1, rt1 := redeemed(t, a, rt0)
	_, never := b.token(t)

	srv.Stop()
	srv.Wipe()
	srv.Start()
	waitStatus(t, "an instance noticed the loss (a new epoch)", 200, func() (int, []byte) {
		if out, err := srv.Do("KEYS tokengate:*:epoch"); err != nil || out == "" {
			return 0, []byte(out)
		}
		return 200, nil
	})

	refusedGrant(t, "the refresh token redeemed before, replayed", b, rt0)
	refusedGrant(t, "the refresh token redeemed before, replayed where it was redeemed", a, rt0)
	refusedGrant(t, "its successor", a, rt1)
	refusedGrant(t, "its successor", b, rt1)
	refusedGrant(t, "a refresh token never redeemed", a, never)
	for _, in := range ins {
		for _, at := range []string{at0, at1} {
			if status, body := in.call(t, at); status != 200 || body != "hello svc" {
				t.Errorf("an access token of before at %s: %d %q", in.base, status, body)
			}
		}
	}

	// The client starts over with client_credentials.
	_, rt := a.token(t)
	_, rt = redeemed(t, b, rt)
	redeemed(t, a, rt)
	_, rt = b.token(t)
	redeemed(t, a, rt)
}

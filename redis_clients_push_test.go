package tokengate_test

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tokengate/tokengate/internal/testcaddy"
	"github.com/tokengate/tokengate/internal/testredis"
)

// TestRedisClientChangesPushed: on Redis, client changes made through one
// instance's admin API are pushed to the other, not polled: with
// revocation_sync at one minute, a client made at A is known at B, and a
// client disabled at A has its token refused by B's gate, each well within
// a second (p50/p99 over 50 clients printed, p99 < 1s asserted).
func TestRedisClientChangesPushed(t *testing.T) {
	srv := testredis.Start(t)
	testcaddy.Binary(t)
	line := "state redis " + srv.Addr()
	var ins []*apiInstance
	ports := freePorts(t, 4)
	for i, p := range ports[:2] {
		admin := ports[2+i]
		cfg := clusterCaddyfile(p, fmt.Sprintf("localhost:%d", admin), t.TempDir(), `respond "hello {http.auth.user.id}"`, line)
		// Polling alone would take up to a minute.
		cfg = strings.Replace(cfg, "revocation_sync 1s", "revocation_sync 1m", 1)
		if !strings.Contains(cfg, "revocation_sync 1m") {
			t.Fatal("the config's revocation_sync line was not found")
		}
		in := &apiInstance{instance: instance{base: fmt.Sprintf("http://localhost:%d", p), cfg: cfg}, admin: fmt.Sprintf("http://localhost:%d", admin)}
		in.proc = testcaddy.SpawnProcess(t, in.cfg)
		ins = append(ins, in)
	}
	for _, in := range ins {
		in.proc.WaitReady(in.base + "/.well-known/jwks.json")
	}
	a, b := ins[0], ins[1]
	// Measured from both instances' subscriptions on: a change made
	// before would be read by the log read that follows subscribing.
	waitStatus(t, "both instances subscribed to client changes", 200, func() (int, []byte) {
		ch, err := srv.Do("PUBSUB CHANNELS tokengate:*:clients")
		if err != nil || ch == "" {
			return 0, []byte(ch)
		}
		out, err := srv.Do("PUBSUB NUMSUB " + ch)
		if err != nil || !strings.HasSuffix(out, "\n2") {
			return 0, []byte(out)
		}
		return 200, nil
	})

	const n = 50
	var created, disabled []time.Duration
	wait := func(what string, ok func() bool) time.Duration {
		t.Helper()
		start := time.Now()
		for !ok() {
			if time.Since(start) > 5*time.Second {
				t.Fatalf("not within 5s: %s", what)
			}
			time.Sleep(time.Millisecond)
		}
		return time.Since(start)
	}
	for i := range n {
		id := fmt.Sprintf("push%d", i)
		status, ans := a.api(t, http.MethodPost, "", `{"client_id":"`+id+`","scopes":["read"],"audience":["api"]}`)
		secret, _ := ans["client_secret"].(string)
		if status != 201 || secret == "" {
			t.Fatalf("create %s at A: %d %v", id, status, ans)
		}
		created = append(created, wait(id+" known at B", func() bool { s, _ := b.api(t, http.MethodGet, "/"+id, ""); return s == 200 }))
		status, tok, _ := b.tokenFor(t, id, secret)
		if status != 200 {
			t.Fatalf("token at B for %s made at A: %d", id, status)
		}
		if status, body := b.call(t, tok); status != 200 || body != "hello "+id {
			t.Fatalf("B's gate with %s's token: %d %q", id, status, body)
		}
		if status, ans := a.api(t, http.MethodPost, "/"+id+"/disable", ""); status != 200 || ans["disabled"] != true {
			t.Fatalf("disable %s at A: %d %v", id, status, ans)
		}
		disabled = append(disabled, wait(id+"'s token refused at B", func() bool { s, _ := b.call(t, tok); return s == 401 }))
		// A few only: each refusal counts against the address's throttle.
		if i%10 == 0 {
			if s, _, _ := b.tokenFor(t, id, secret); s != 401 {
				t.Fatalf("B's token endpoint for %s disabled at A: %d, want 401", id, s)
			}
		}
	}
	for _, m := range []struct {
		what string
		lat  []time.Duration
	}{{"client made at A known at B", created}, {"client disabled at A refused by B's gate", disabled}} {
		slices.Sort(m.lat)
		p50, p99 := m.lat[n/2], m.lat[n*99/100-1]
		t.Logf("%s, over %d clients: p50 %v, p99 %v, max %v", m.what, n, p50, p99, m.lat[n-1])
		fmt.Printf("redis client push: %s, over %d clients: p50 %v p99 %v max %v\n", m.what, n, p50, p99, m.lat[n-1])
		if p99 >= time.Second {
			t.Errorf("%s: p99 %v, want well under 1s", m.what, p99)
		}
	}
}

package tokengate_test

import (
	"bytes"
	"net/http"
	"syscall"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/tokengate/tokengate/internal/testredis"
)

// settleGrace is internal/state/redis' settleGrace: how long a Redis found
// without its epoch (new, or restarted empty) gets no first signing key.
const settleGrace = 3 * time.Second

// answers reports whether u answers 200.
func answers(u string) bool {
	resp, err := http.Get(u)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == 200
}

// TestRedisRestartedEmptyNewInstance: Redis restarts empty and an instance
// starts before the running one has written its keys back (the running
// one is paused until the new one has found Redis empty). The new one must
// not make a key of its own, which the write-back would not overwrite and
// which would replace the key in use everywhere within a minute: it waits
// for the key written back, publishes and signs with it, and accepts the
// tokens signed before. One key is made in all: the first one.
func TestRedisRestartedEmptyNewInstance(t *testing.T) {
	srv := testredis.Start(t)
	up := newUpstream(t)
	ports := freePorts(t, 2)
	a := startOnRedis(t, []string{srv.Addr()}, up.URL, nil, ports[0])[0]
	keys := a.jwks(t)
	kids := jwksKIDs(t, keys)
	if len(kids) != 1 {
		t.Fatalf("JWKS after start: %s; want one key", keys)
	}
	live, _ := a.token(t)

	if err := a.proc.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	paused := true
	resume := func() {
		if paused {
			paused = false
			if err := a.proc.Signal(syscall.SIGCONT); err != nil {
				t.Error(err)
			}
		}
	}
	t.Cleanup(resume)
	srv.Stop()
	srv.Wipe()
	srv.Start()

	b := spawnOnRedis(t, []string{srv.Addr()}, up.URL, nil, ports[1])[0]
	// Resume a once b has found Redis empty (it set the epoch and the
	// settling mark), or once b is up, whichever comes first.
	deadline := time.Now().Add(20 * time.Second)
	for {
		if out, err := srv.Do("KEYS tokengate:*:settling"); err == nil && out != "" {
			break
		}
		if answers(b.base + "/.well-known/jwks.json") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the new instance neither started nor looked at redis in 20s:\n%s", b.proc.Output())
		}
		time.Sleep(10 * time.Millisecond)
	}
	resume()
	b.proc.WaitReady(b.base + "/.well-known/jwks.json")

	if got := b.jwks(t); !bytes.Equal(got, keys) {
		t.Errorf("the instance started while redis was empty publishes other keys:\n%s\nwant\n%s", got, keys)
	}
	at, _ := b.token(t)
	if kid := tokenKID(t, at); kid != kids[0] {
		t.Errorf("the new instance signs with %s; want the key in use, %s", kid, kids[0])
	}
	if status, _ := b.call(t, live); status != 200 {
		t.Errorf("a token signed before the restart, at the new instance: %d", status)
	}
	if status, _ := a.call(t, at); status != 200 {
		t.Errorf("a token of the new instance at the running one: %d", status)
	}
	if got := a.jwks(t); !bytes.Equal(got, keys) {
		t.Errorf("the running instance publishes other keys after the restart:\n%s", got)
	}
	if n, logs := keysMade([]*instance{a, b}); n != 1 {
		t.Errorf("%d signing keys made; want 1 (the first, before the restart):\n%s", n, logs)
	}
}

// TestRedisNewStoreFirstKey: on a brand-new Redis (which nothing tells
// from one restarted empty) the first instance makes the first key once
// the grace is over, and only one.
func TestRedisNewStoreFirstKey(t *testing.T) {
	srv := testredis.Start(t)
	up := newUpstream(t)
	start := time.Now()
	a := startOnRedis(t, []string{srv.Addr()}, up.URL, nil, freePorts(t, 1)...)[0]
	rc := goredis.NewClient(&goredis.Options{Addr: srv.Addr()})
	t.Cleanup(func() { _ = rc.Close() })
	ks := storedKeys(t, rc, redisKeysOf("http://tokengate.test"))
	if len(ks) != 1 {
		t.Fatalf("stored keys %v; want one", ks)
	}
	// The key signs from when it was made: not before the grace.
	if made := ks[0].Activates.Sub(start); made < settleGrace-100*time.Millisecond {
		t.Errorf("the first key was made %v after start; want after the grace (%v)", made, settleGrace)
	}
	at, _ := a.token(t)
	if kid := tokenKID(t, at); kid != ks[0].KID {
		t.Errorf("signed with %s; want %s", kid, ks[0].KID)
	}
	if status, _ := a.call(t, at); status != 200 {
		t.Errorf("a token at its instance: %d", status)
	}
	if n, logs := keysMade([]*instance{a}); n != 1 {
		t.Errorf("%d signing keys made; want 1:\n%s", n, logs)
	}
}

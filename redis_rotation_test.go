package tokengate_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"path"
	"slices"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/tokengate/tokengate/internal/issuer"
	"github.com/tokengate/tokengate/internal/testredis"
)

// The rotation test runs with the shortest key_rotation allowed: a new
// key is due 30s after the current one started signing (rotation minus the
// lead), is published 30s ahead of use, and every instance checks every
// 15s (keys.Manager.CheckInterval).
const (
	testRotation = time.Minute
	testLead     = testRotation / 2
	testCheck    = 15 * time.Second
)

// issuerKeys is where the issuer of the test clusters keeps its signing
// keys and takes its rotation lock on Redis (internal/state/redis): the
// hash of its files, the field of keys.json, the lock's key.
type issuerKeys struct {
	files, field, lock string
}

func redisKeysOf(issuerURL string) issuerKeys {
	prefix := issuer.StoragePrefix(issuerURL)
	tag := "tokengate:{" + path.Base(prefix) + "}:"
	return issuerKeys{files: tag + "files", field: prefix + "/keys.json", lock: tag + "lock:" + prefix + "/keys"}
}

type storedKey struct {
	KID       string    `json:"kid"`
	Activates time.Time `json:"activates"`
}

// storedKeys reads the signing keys as stored in Redis (after the 8 bytes
// of the file's modification time).
func storedKeys(t *testing.T, rc goredis.UniversalClient, k issuerKeys) []storedKey {
	t.Helper()
	v, err := rc.HGet(context.Background(), k.files, k.field).Bytes()
	if err != nil || len(v) < 8 {
		t.Fatalf("reading the stored signing keys: %v (%d bytes)", err, len(v))
	}
	var set struct{ Keys []storedKey }
	if err := json.Unmarshal(v[8:], &set); err != nil {
		t.Fatal(err)
	}
	return set.Keys
}

// jwksKIDs are the kids of a published JWKS, in its order.
func jwksKIDs(t *testing.T, j []byte) []string {
	t.Helper()
	var set struct {
		Keys []struct {
			KID string `json:"kid"`
		}
	}
	if err := json.Unmarshal(j, &set); err != nil {
		t.Fatalf("JWKS %s: %v", j, err)
	}
	var out []string
	for _, k := range set.Keys {
		out = append(out, k.KID)
	}
	return out
}

// tokenKID is the kid in a JWT's protected header.
func tokenKID(t *testing.T, jwt string) string {
	t.Helper()
	h, _, _ := strings.Cut(jwt, ".")
	raw, err := base64.RawURLEncoding.DecodeString(h)
	var hdr struct {
		KID string `json:"kid"`
	}
	if err != nil || json.Unmarshal(raw, &hdr) != nil {
		t.Fatalf("token header %q: %v", h, err)
	}
	return hdr.KID
}

// keysMade counts the keys every instance says it made.
func keysMade(ins []*instance) (n int, logs string) {
	var all strings.Builder
	for _, in := range ins {
		out := in.proc.Output()
		n += strings.Count(out, "signing key created")
		all.WriteString(out)
	}
	return n, all.String()
}

// TestOneRotationOnRedis: three Caddy processes on one Redis (and on a
// 3-master Redis Cluster) with key_rotation 1m rotate once, together.
//
// The rotation lock is proven to be Redis' and not each process's own:
// the test holds it in Redis itself from before the rotation is due until
// every process has found it due, and no process may mint a key
// meanwhile (with a lock of each process's own, each would mint one, and
// the last write would drop the others' keys). Released, the three
// processes wait on it together: exactly one new key is minted, all three
// publish the same two keys, and once the new key signs, a token of any
// process is valid at the other two.
func TestOneRotationOnRedis(t *testing.T) {
	for _, tc := range []struct {
		name  string
		addrs func(t *testing.T) []string
	}{
		{"standalone", func(t *testing.T) []string { return []string{testredis.Start(t).Addr()} }},
		{"cluster", func(t *testing.T) []string { return testredis.StartCluster(t).Addrs() }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel() // each waits for a minute and a half, mostly idle
			addrs := tc.addrs(t)
			up := newUpstream(t)
			ins := startOnRedis(t, addrs, up.URL, []string{"key_rotation 1m"}, freePorts(t, 3)...)
			rc := goredis.NewUniversalClient(&goredis.UniversalOptions{Addrs: addrs, IsClusterMode: len(addrs) > 1})
			t.Cleanup(func() { _ = rc.Close() })
			ctx := context.Background()
			rk := redisKeysOf("http://tokengate.test")

			// Hold the rotation lock as a fourth party, the way a slow
			// instance would.
			deadline := time.Now().Add(10 * time.Second)
			for {
				ok, err := rc.SetNX(ctx, rk.lock, "test-holder", 3*time.Minute).Result()
				if err != nil {
					t.Fatal(err)
				}
				if ok {
					break
				}
				if time.Now().After(deadline) {
					t.Fatal("the rotation lock stayed taken for 10s after start")
				}
				time.Sleep(10 * time.Millisecond)
			}
			first := storedKeys(t, rc, rk)
			if len(first) != 1 {
				t.Fatalf("stored keys after start: %v; want one", first)
			}
			k1 := first[0].KID
			j1 := ins[0].jwks(t)
			if kids := jwksKIDs(t, j1); !slices.Equal(kids, []string{k1}) {
				t.Fatalf("JWKS after start: %v; want [%s]", kids, k1)
			}

			// The rotation is due at k1's activation + rotation - lead;
			// by one check interval later every process has met the lock.
			held := first[0].Activates.Add(testRotation - testLead + testCheck + 3*time.Second)
			t.Logf("holding the rotation lock until %v (%v from now)", held.Format(time.TimeOnly), time.Until(held).Round(time.Second))
			for time.Now().Before(held) {
				for _, in := range ins {
					if got := in.jwks(t); !bytes.Equal(got, j1) {
						t.Fatalf("%s rotated while the lock was held in redis:\n%s", in.base, got)
					}
				}
				if ks := storedKeys(t, rc, rk); len(ks) != 1 {
					t.Fatalf("a key was stored while the lock was held in redis: %v", ks)
				}
				time.Sleep(time.Second)
			}
			if n, logs := keysMade(ins); n != 1 {
				t.Fatalf("%d signing keys made before the rotation; want 1:\n%s", n, logs)
			}

			// Released: the three waiting processes take it in turn.
			if err := rc.Del(ctx, rk.lock).Err(); err != nil {
				t.Fatal(err)
			}
			// Each process has met the lock and takes it in turn; one that
			// had not would reread the keys at its next check.
			var j2 []byte
			deadline = time.Now().Add(testCheck + 5*time.Second)
			for {
				j2 = ins[0].jwks(t)
				same := len(jwksKIDs(t, j2)) == 2
				for _, in := range ins[1:] {
					same = same && bytes.Equal(in.jwks(t), j2)
				}
				if same {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("the instances do not publish the same two keys %v after the lock was released: %s", testCheck+5*time.Second, j2)
				}
				time.Sleep(100 * time.Millisecond)
			}
			kids := jwksKIDs(t, j2)
			if kids[0] != k1 {
				t.Fatalf("JWKS after the rotation %v: the old key %s is gone", kids, k1)
			}
			k2 := kids[1]
			stored := storedKeys(t, rc, rk)
			if len(stored) != 2 || stored[0].KID != k1 || stored[1].KID != k2 {
				t.Fatalf("stored keys %v; want %s then %s", stored, k1, k2)
			}
			// Give a competing mint time to show, then count: one key at
			// start, one at the rotation, across all three processes.
			time.Sleep(2 * time.Second)
			if n, logs := keysMade(ins); n != 2 || !strings.Contains(logs, k2) {
				t.Fatalf("%d signing keys made (want 2: the first and %s):\n%s", n, k2, logs)
			}

			// Once k2 signs, a token of any process carries it and is
			// valid at the other two.
			if wait := time.Until(stored[1].Activates); wait > 0 {
				t.Logf("waiting %v for the new key to sign", wait.Round(time.Second))
				time.Sleep(wait)
			}
			for _, from := range ins {
				at, _ := from.token(t)
				if kid := tokenKID(t, at); kid != k2 {
					t.Errorf("a token of %s after the rotation is signed by %s; want %s", from.base, kid, k2)
				}
				for _, other := range ins {
					if status, body := other.call(t, at); status != 200 || body != "hello svc" {
						t.Errorf("a token of %s after the rotation, at %s: %d %q", from.base, other.base, status, body)
					}
				}
			}
			for _, in := range ins {
				if got := in.jwks(t); !bytes.Equal(got, j2) {
					t.Errorf("%s publishes other keys after the rotation:\n%s\n%s", in.base, j2, got)
				}
			}
			if n, _ := keysMade(ins); n != 2 {
				t.Errorf("%d signing keys made by the end; want 2", n)
			}
		})
	}
}

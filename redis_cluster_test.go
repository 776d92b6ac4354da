package tokengate_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tokengate/tokengate/internal/testcaddy"
	"github.com/tokengate/tokengate/internal/testredis"
	"github.com/tokengate/tokengate/internal/testsync"
)

// startOnRedis starts one Caddy instance per port, each with a storage
// directory of its own: Redis (state redis <addrs>) is all they share.
func startOnRedis(t *testing.T, addrs []string, upstreamURL string, extra []string, ports ...int) []*instance {
	t.Helper()
	out := spawnOnRedis(t, addrs, upstreamURL, extra, ports...)
	for _, in := range out {
		in.proc.WaitReady(in.base + "/.well-known/jwks.json")
	}
	return out
}

// spawnOnRedis is startOnRedis without waiting for the instances.
func spawnOnRedis(t *testing.T, addrs []string, upstreamURL string, extra []string, ports ...int) []*instance {
	t.Helper()
	testcaddy.Binary(t)
	lines := append([]string{"state redis " + strings.Join(addrs, " ") + " {\n\t\t\ttimeout 300ms\n\t\t\tdial_timeout 300ms\n\t\t}"}, extra...)
	var out []*instance
	for _, p := range ports {
		in := &instance{base: fmt.Sprintf("http://localhost:%d", p), cfg: clusterConfig(p, t.TempDir(), upstreamURL, lines...)}
		in.proc = testcaddy.SpawnProcess(t, in.cfg)
		out = append(out, in)
	}
	return out
}

// freePorts picks n free loopback ports, so that test runs sharing a
// machine do not meet on fixed ones.
func freePorts(t *testing.T, n int) []int {
	t.Helper()
	var out []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		out = append(out, l.Addr().(*net.TCPAddr).Port)
	}
	return out
}

func revoke(t *testing.T, in *instance, token string) (int, string) {
	t.Helper()
	status, body := httpDo(t, http.MethodPost, in.base+"/oauth/revoke", "token="+url.QueryEscape(token), "Authorization", svcBasic)
	return status, string(body)
}

func redeem(t *testing.T, in *instance, rt string) (int, []byte) {
	t.Helper()
	return httpDo(t, http.MethodPost, in.base+"/oauth/token", "grant_type=refresh_token&refresh_token="+url.QueryEscape(rt), "Authorization", svcBasic)
}

// TestThreeInstancesOnRedis: three Caddy processes on one Redis, and again
// on a 3-master Redis Cluster, act as one issuer: one JWKS, a token from
// any instance valid at all, a revocation at one refused at the others
// within 100 ms at p99 (over 200 revocations), and of 3 × 16 concurrent
// redemptions of one refresh token exactly one wins.
func TestThreeInstancesOnRedis(t *testing.T) {
	for _, tc := range []struct {
		name  string
		addrs func(t *testing.T) []string
	}{
		{"standalone", func(t *testing.T) []string { return []string{testredis.Start(t).Addr()} }},
		{"cluster", func(t *testing.T) []string { return testredis.StartCluster(t).Addrs() }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			up := newUpstream(t)
			ins := startOnRedis(t, tc.addrs(t), up.URL, []string{"refresh_reuse_interval off"}, freePorts(t, 3)...)

			// One key, made once although all started together.
			j := ins[0].jwks(t)
			var set struct{ Keys []map[string]any }
			if err := json.Unmarshal(j, &set); err != nil || len(set.Keys) != 1 {
				t.Fatalf("JWKS: %s (%v), want exactly one key", j, err)
			}
			for _, in := range ins[1:] {
				if got := in.jwks(t); !bytes.Equal(got, j) {
					t.Fatalf("the instances publish different keys:\n%s\n%s", j, got)
				}
			}

			// A token from any instance is valid at all.
			for _, from := range ins {
				at, _ := from.token(t)
				for _, at2 := range ins {
					if status, body := at2.call(t, at); status != 200 || body != "hello svc" {
						t.Errorf("token of %s at %s: %d %q", from.base, at2.base, status, body)
					}
				}
			}

			// Revocation latency: from the revoking instance's answer until
			// both others refuse the token.
			const n = 200
			lat := make([]time.Duration, 0, n)
			for i := range n {
				src := ins[i%3]
				at, _ := src.token(t)
				if status, body := revoke(t, src, at); status != 200 {
					t.Fatalf("revoke: %d %s", status, body)
				}
				done := time.Now()
				var worst time.Duration
				for _, other := range ins {
					if other == src {
						continue
					}
					for {
						if status, _ := other.call(t, at); status == 401 {
							worst = max(worst, time.Since(done))
							break
						}
						if time.Since(done) > 5*time.Second {
							t.Fatalf("revocation %d not refused at %s after 5s", i, other.base)
						}
						time.Sleep(time.Millisecond)
					}
				}
				lat = append(lat, worst)
			}
			slices.Sort(lat)
			p50, p99, maxLat := lat[n/2], lat[n*99/100-1], lat[n-1]
			t.Logf("revocation seen at both other instances over %d revocations: p50 %v, p99 %v, max %v", n, p50, p99, maxLat)
			fmt.Printf("redis %s: revocation propagation over %d revocations: p50 %v p99 %v max %v\n", tc.name, n, p50, p99, maxLat)
			if p99 > 100*time.Millisecond {
				t.Errorf("p99 revocation propagation %v > 100ms", p99)
			}

			// 3 × 16 concurrent redemptions of one refresh token.
			_, rt := ins[0].token(t)
			var mu sync.Mutex
			statuses := map[int]int{}
			testsync.AtOnce(48, func(i int) {
				status, body := redeem(t, ins[i%3], rt)
				if status != 200 && !(status == 400 && strings.Contains(string(body), "invalid_grant")) {
					t.Errorf("redemption: %d %s", status, body)
				}
				mu.Lock()
				statuses[status]++
				mu.Unlock()
			})
			if statuses[200] != 1 || statuses[400] != 47 {
				t.Errorf("48 concurrent redemptions: %v; want exactly one 200 and 47 invalid_grant", statuses)
			}
		})
	}
}

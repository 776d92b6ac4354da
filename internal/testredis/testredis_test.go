package testredis

import (
	"strings"
	"testing"
)

func TestServerStopStartWipe(t *testing.T) {
	s := StartWith(t, Options{Persist: true})
	if _, err := s.Do("SET k v"); err != nil {
		t.Fatal(err)
	}
	s.Stop()
	if _, err := s.Do("PING"); err == nil {
		t.Fatal("a stopped server answered")
	}
	s.Start()
	if v, err := s.Do("GET k"); err != nil || v != "v" {
		t.Fatalf("after a restart with persistence: %q, %v", v, err)
	}
	s.Stop()
	s.Wipe()
	s.Start()
	if v, err := s.Do("EXISTS k"); err != nil || v != "0" {
		t.Fatalf("after a wiped restart: %q, %v", v, err)
	}
}

func TestCluster(t *testing.T) {
	c := StartCluster(t)
	info, err := Command(c.Servers[0].Addr(), "CLUSTER", "INFO")
	if err != nil || !strings.Contains(info, "cluster_known_nodes:3") || !strings.Contains(info, "cluster_size:3") {
		t.Fatalf("cluster info: %v\n%s", err, info)
	}
}

func TestSentinelsFailover(t *testing.T) {
	s := StartSentinels(t, 2)
	first := s.Master.Addr()
	if got := s.MasterAddr(); got != first {
		t.Fatalf("the sentinel names %s as master, want %s", got, first)
	}
	if _, err := s.Master.Do("SET k v"); err != nil {
		t.Fatal(err)
	}
	s.Failover()
	if s.Master.Addr() == first || s.MasterAddr() != s.Master.Addr() {
		t.Fatalf("after a failover the master is %s (sentinel: %s), was %s", s.Master.Addr(), s.MasterAddr(), first)
	}
	if v, err := s.Master.Do("GET k"); err != nil || v != "v" {
		t.Fatalf("the promoted replica has %q, %v", v, err)
	}
	if _, err := s.Master.Do("SET k2 v"); err != nil {
		t.Fatalf("the promoted replica refuses writes: %v", err)
	}
}

func TestTLS(t *testing.T) {
	for _, auth := range []bool{false, true} {
		s := StartWith(t, Options{TLS: true, ClientAuth: auth})
		if v, err := s.Do("PING"); err != nil || v != "PONG" {
			t.Fatalf("PING over TLS (client auth %v): %q, %v", auth, v, err)
		}
		if _, err := Command(s.Addr(), "PING"); err == nil {
			t.Fatalf("the TLS server (client auth %v) answered a plain-text PING", auth)
		}
	}
}

// TestSentinelsAuth: Sentinels that require a password (requirepass, or an
// ACL user) refuse a client without it, answer the helper's commands
// (which authenticate) and promote the replica.
func TestSentinelsAuth(t *testing.T) {
	for _, opts := range []SentinelOptions{{Password: "sentinel-secret"}, {User: "watcher", Password: "sentinel-secret"}} {
		t.Run("user="+opts.User, func(t *testing.T) {
			s := StartSentinelsWith(t, 2, opts)
			for _, sn := range s.Sentinels {
				if _, err := Command(sn.Addr(), "SENTINEL", "GET-MASTER-ADDR-BY-NAME", s.Name); err == nil || !strings.Contains(err.Error(), "NOAUTH") {
					t.Fatalf("a Sentinel answered a client that did not authenticate: %v", err)
				}
			}
			first := s.Master.Addr()
			if got := s.MasterAddr(); got != first {
				t.Fatalf("the sentinel names %s as master, want %s", got, first)
			}
			s.Failover()
			if s.Master.Addr() == first || s.MasterAddr() != s.Master.Addr() {
				t.Fatalf("after a failover the master is %s (sentinel: %s), was %s", s.Master.Addr(), s.MasterAddr(), first)
			}
		})
	}
}

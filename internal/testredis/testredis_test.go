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

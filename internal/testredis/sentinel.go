package testredis

import (
	"net"
	"strings"
	"testing"
	"time"
)

// Sentinels are a master, a replica of it, and Sentinels (redis-server
// --sentinel, from the same binary) watching the master under Name with a
// quorum of one.
type Sentinels struct {
	t    testing.TB
	Name string
	// Master and Replica are the servers in their current roles: Failover
	// swaps them.
	Master, Replica *Server
	Sentinels       []*Server
}

// StartSentinels runs a master, its replica, and n Sentinels, and waits
// until the replica is in sync and every Sentinel knows it, so that a
// failover can promote it.
func StartSentinels(t testing.TB, n int) *Sentinels {
	t.Helper()
	s := &Sentinels{t: t, Name: "tokengate-test"}
	s.Master = Start(t)
	s.Replica = StartWith(t, Options{ReplicaOf: s.Master.Addr()})
	s.wait("the replica in sync", func() bool {
		info, err := s.Replica.Do("INFO replication")
		return err == nil && strings.Contains(info, "master_link_status:up")
	})
	for range n {
		s.Sentinels = append(s.Sentinels, StartWith(t, Options{sentinel: &monitor{s.Name, s.Master.Addr()}}))
	}
	s.wait("every Sentinel knowing the replica", func() bool {
		for _, sn := range s.Sentinels {
			out, err := sn.Do("SENTINEL REPLICAS " + s.Name)
			if err != nil || !strings.Contains(out, "\n"+s.Replica.Addr()+"\n") || !strings.Contains(out, "flags\nslave\n") {
				return false
			}
		}
		return true
	})
	return s
}

// Addrs are the Sentinels' addresses.
func (s *Sentinels) Addrs() []string {
	out := make([]string, len(s.Sentinels))
	for i, sn := range s.Sentinels {
		out[i] = sn.Addr()
	}
	return out
}

// MasterAddr is the master's address as the first Sentinel reports it.
func (s *Sentinels) MasterAddr() string {
	s.t.Helper()
	out, err := s.Sentinels[0].Do("SENTINEL GET-MASTER-ADDR-BY-NAME " + s.Name)
	if err != nil {
		s.t.Fatalf("asking the sentinel for the master: %v", err)
	}
	host, port, _ := strings.Cut(out, "\n")
	return net.JoinHostPort(host, port)
}

// Failover has the Sentinels promote the replica (SENTINEL FAILOVER) and
// waits until every Sentinel names it as master and it acts as one.
func (s *Sentinels) Failover() {
	s.t.Helper()
	old, next := s.Master, s.Replica
	s.wait("SENTINEL FAILOVER accepted", func() bool {
		// NOGOODSLAVE or INPROG are answered while a Sentinel is still
		// catching up with the replica: ask again.
		_, err := s.Sentinels[0].Do("SENTINEL FAILOVER " + s.Name)
		return err == nil
	})
	s.awaitPromotion(next)
	s.Master, s.Replica = next, old
}

// KillMaster kills the master (as a crash would) and waits until the
// Sentinels, finding it down (after 1s), have promoted the replica. The
// old master stays stopped: Replica is then a stopped server.
func (s *Sentinels) KillMaster() {
	s.t.Helper()
	old, next := s.Master, s.Replica
	old.Stop()
	s.awaitPromotion(next)
	s.Master, s.Replica = next, old
}

// awaitPromotion waits until every Sentinel names next as master and it
// acts as one.
func (s *Sentinels) awaitPromotion(next *Server) {
	s.t.Helper()
	s.wait("every Sentinel naming the promoted replica", func() bool {
		for _, sn := range s.Sentinels {
			out, err := sn.Do("SENTINEL GET-MASTER-ADDR-BY-NAME " + s.Name)
			host, port, _ := strings.Cut(out, "\n")
			if err != nil || net.JoinHostPort(host, port) != next.Addr() {
				return false
			}
		}
		role, err := next.Do("ROLE")
		return err == nil && strings.HasPrefix(role, "master\n")
	})
}

func (s *Sentinels) wait(what string, ok func() bool) {
	s.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			s.t.Fatalf("testredis: not within 30s: %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

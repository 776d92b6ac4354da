package testredis

import (
	"fmt"
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
	// User and Password are what the Sentinels require (SentinelOptions).
	User, Password string
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
	return StartSentinelsWith(t, n, SentinelOptions{})
}

// SentinelOptions change how the Sentinels run; the master and replica
// require no password either way.
type SentinelOptions struct {
	// Password makes the Sentinels require it from their clients: alone,
	// as requirepass; with User, as that ACL user's password (user <User>
	// on ><Password> ~* &* +@all), the default user being off. The
	// Sentinels authenticate to each other with them (sentinel
	// sentinel-user, sentinel-pass), and so do the Sentinels' Do.
	User, Password string
}

// StartSentinelsWith is StartSentinels with opts.
func StartSentinelsWith(t testing.TB, n int, opts SentinelOptions) *Sentinels {
	t.Helper()
	s := &Sentinels{t: t, Name: "tokengate-test", User: opts.User, Password: opts.Password}
	s.Master = Start(t)
	s.Replica = StartWith(t, Options{ReplicaOf: s.Master.Addr()})
	s.wait("the replica in sync", func() bool {
		info, err := s.Replica.Do("INFO replication")
		return err == nil && strings.Contains(info, "master_link_status:up")
	})
	for range n {
		s.Sentinels = append(s.Sentinels, StartWith(t, Options{sentinel: &monitor{s.Name, s.Master.Addr(), opts.User, opts.Password}}))
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

// authConfig is the part of a Sentinel's config file that makes it
// require the monitor's user and password, and use them with the other
// Sentinels.
func (m *monitor) authConfig() string {
	switch {
	case m.password == "":
		return ""
	case m.user == "":
		return fmt.Sprintf("requirepass %[1]s\nsentinel sentinel-pass %[1]s\n", m.password)
	default:
		return fmt.Sprintf("user default off\nuser %[1]s on >%[2]s ~* &* +@all\n"+
			"sentinel sentinel-user %[1]s\nsentinel sentinel-pass %[2]s\n", m.user, m.password)
	}
}

// authArgs are the arguments of the AUTH that Do sends first.
func (m *monitor) authArgs() []string {
	switch {
	case m.password == "":
		return nil
	case m.user == "":
		return []string{m.password}
	default:
		return []string{m.user, m.password}
	}
}

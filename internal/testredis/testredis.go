// Package testredis starts real redis-server processes for tests: a
// standalone server, a server that speaks only TLS, a master with a replica
// watched by Sentinels (redis-server --sentinel), or a Redis Cluster of
// three masters, each on free loopback ports in a temporary directory of
// its own, stopped when the test ends. Faults are made by doing them: Stop
// kills a server, Start brings it back on the same port (empty unless it
// was started with persistence), Failover has the Sentinels promote the
// replica.
//
// The binaries are looked up with exec.LookPath: when they are missing a
// test is skipped on a developer's machine but fails when CI=true, so CI
// never passes by skipping (.ci/run installs Debian's redis-server).
package testredis

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// binary finds a Redis binary, skipping (or, on CI, failing) the test
// when it is not installed.
func binary(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s not found (CI=true: install Debian's redis-server package): %v", name, err)
		}
		t.Skipf("%s not installed: %v", name, err)
	}
	return p
}

// Options change how a Server runs.
type Options struct {
	// Persist turns the append-only file on (appendfsync always), so a
	// restarted server comes back with its data.
	Persist bool
	// Cluster runs the server with cluster-enabled yes; its cluster bus
	// port (Port+10000) is free too.
	Cluster bool
	// ReplicaOf makes the server a replica of the server at this address.
	ReplicaOf string
	// TLS makes the server speak TLS only (--port 0, --tls-port Port), with
	// a certificate for 127.0.0.1 from a CA made for it (Server.TLS).
	TLS bool
	// ClientAuth, with TLS, makes the server require a client certificate
	// signed by that CA (tls-auth-clients yes).
	ClientAuth bool

	// sentinel, when set, runs a Sentinel watching this master.
	sentinel *monitor
}

// monitor is what a Sentinel watches, and the user and password it
// requires (none when Password is empty).
type monitor struct {
	name, addr     string
	user, password string
}

// Server is one redis-server process.
type Server struct {
	t    testing.TB
	bin  string
	Port int
	Dir  string
	opts Options
	// TLS are the server's certificate files, when it speaks TLS.
	TLS *TLSFiles
	// auth are the AUTH arguments Do sends first, for a server that
	// requires a password.
	auth []string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
}

// Start runs a standalone redis-server on a free loopback port, without
// persistence, and waits until it answers PING.
func Start(t testing.TB) *Server { return StartWith(t, Options{}) }

// StartWith runs a redis-server with opts.
func StartWith(t testing.TB, opts Options) *Server {
	t.Helper()
	s := &Server{t: t, bin: binary(t, "redis-server"), Dir: t.TempDir(), opts: opts}
	s.Port = freePort(t, opts.Cluster)
	if opts.TLS {
		s.TLS = makeTLSFiles(t, s.Dir)
	}
	if opts.sentinel != nil {
		s.auth = opts.sentinel.authArgs()
	}
	s.Start()
	t.Cleanup(s.Stop)
	return s
}

// Addr is the server's host:port.
func (s *Server) Addr() string { return "127.0.0.1:" + strconv.Itoa(s.Port) }

// Start (re)starts the server on its port and waits until it answers PING.
func (s *Server) Start() {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		s.t.Fatal("testredis: server already running")
	}
	args := s.args()
	cmd := exec.Command(s.bin, args...)
	dieWithParent(cmd)
	if err := cmd.Start(); err != nil {
		s.t.Fatalf("starting redis-server: %v", err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	s.cmd, s.done = cmd, done
	deadline := time.Now().Add(10 * time.Second)
	for {
		if reply, err := s.command("PING"); err == nil && reply == "PONG" {
			return
		}
		select {
		case <-done:
			s.cmd = nil
			s.t.Fatalf("redis-server exited at start:\n%s", s.Log())
		default:
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("redis-server did not answer PING within 10s:\n%s", s.Log())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// args are the server's command line.
func (s *Server) args() []string {
	args := []string{"--port", strconv.Itoa(s.Port), "--bind", "127.0.0.1", "--dir", s.Dir,
		"--daemonize", "no", "--protected-mode", "no", "--logfile", "redis.log"}
	if m := s.opts.sentinel; m != nil {
		// Sentinel rewrites its config file as it learns: one of its own,
		// made once, so that a restart keeps what it learnt.
		conf := filepath.Join(s.Dir, "sentinel.conf")
		if _, err := os.Stat(conf); err != nil {
			host, port, _ := net.SplitHostPort(m.addr)
			text := fmt.Sprintf("sentinel monitor %[1]s %[2]s %[3]s 1\n"+
				"sentinel down-after-milliseconds %[1]s 1000\nsentinel failover-timeout %[1]s 3000\n", m.name, host, port)
			text += m.authConfig()
			if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
				s.t.Fatal(err)
			}
		}
		return append([]string{conf, "--sentinel"}, args...)
	}
	args = append(args, "--save", "")
	if s.TLS != nil {
		auth := "no"
		if s.opts.ClientAuth {
			auth = "yes"
		}
		args = append(args, "--port", "0", "--tls-port", strconv.Itoa(s.Port),
			"--tls-cert-file", s.TLS.Cert, "--tls-key-file", s.TLS.Key, "--tls-ca-cert-file", s.TLS.CA,
			"--tls-auth-clients", auth)
	}
	if s.opts.ReplicaOf != "" {
		host, port, _ := net.SplitHostPort(s.opts.ReplicaOf)
		args = append(args, "--replicaof", host, port)
	}
	if s.opts.Persist {
		args = append(args, "--appendonly", "yes", "--appendfsync", "always")
	} else {
		args = append(args, "--appendonly", "no")
	}
	if s.opts.Cluster {
		args = append(args, "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf", "--cluster-node-timeout", "2000")
	}
	return args
}

// Stop kills the server (as a crash would: nothing is saved on the way
// out) and waits until it is gone. Stopping a stopped server does nothing.
func (s *Server) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	<-s.done
	s.cmd = nil
}

// Wipe deletes the server's data files; with Stop and Start it makes a
// server that comes back empty.
func (s *Server) Wipe() {
	s.t.Helper()
	for _, name := range []string{"appendonlydir", "dump.rdb"} {
		if err := os.RemoveAll(filepath.Join(s.Dir, name)); err != nil {
			s.t.Fatal(err)
		}
	}
}

// Log is the server's log so far, for failure messages.
func (s *Server) Log() string {
	b, _ := os.ReadFile(filepath.Join(s.Dir, "redis.log"))
	return string(b)
}

// Do runs one command on the server (space-separated words, no quoting)
// and returns its reply as text.
func (s *Server) Do(cmd string) (string, error) { return s.command(strings.Fields(cmd)...) }

// command runs one command on the server, over TLS (with the client
// certificate) when the server speaks TLS.
func (s *Server) command(args ...string) (string, error) {
	dial := func() (net.Conn, error) { return net.DialTimeout("tcp", s.Addr(), time.Second) }
	if s.TLS != nil {
		dial = func() (net.Conn, error) {
			d := &net.Dialer{Timeout: time.Second}
			return tls.DialWithDialer(d, "tcp", s.Addr(), s.TLS.ClientConfig())
		}
	}
	return commandAuth(dial, s.auth, args...)
}

// Cluster is a Redis Cluster of three masters without replicas.
type Cluster struct {
	Servers []*Server
}

// StartCluster runs three cluster-enabled servers, joins them with
// `redis-cli --cluster create` and waits until every node reports
// cluster_state:ok.
func StartCluster(t testing.TB) *Cluster {
	t.Helper()
	cli := binary(t, "redis-cli")
	c := &Cluster{}
	args := []string{"--cluster", "create"}
	for range 3 {
		s := StartWith(t, Options{Cluster: true})
		c.Servers = append(c.Servers, s)
		args = append(args, s.Addr())
	}
	args = append(args, "--cluster-replicas", "0", "--cluster-yes")
	if out, err := exec.Command(cli, args...).CombinedOutput(); err != nil {
		t.Fatalf("redis-cli --cluster create: %v\n%s", err, out)
	}
	deadline := time.Now().Add(20 * time.Second)
	for _, s := range c.Servers {
		for {
			info, err := Command(s.Addr(), "CLUSTER", "INFO")
			if err == nil && strings.Contains(info, "cluster_state:ok") {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("redis cluster not ok within 20s: %v\n%s", err, info)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	return c
}

// Addrs are the addresses of the cluster's nodes.
func (c *Cluster) Addrs() []string {
	out := make([]string, len(c.Servers))
	for i, s := range c.Servers {
		out[i] = s.Addr()
	}
	return out
}

// freePort finds a free loopback port; with bus, its cluster bus port
// (port+10000) is free too.
func freePort(t testing.TB, bus bool) int {
	t.Helper()
	for range 100 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		_ = l.Close()
		if !bus {
			return port
		}
		if port+10000 > 65535 {
			continue
		}
		if l2, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port+10000)); err == nil {
			_ = l2.Close()
			return port
		}
	}
	t.Fatal("no free port pair for a cluster node")
	return 0
}

// Command sends one command to addr in RESP and reads one reply: a simple
// string, error, integer or bulk string (as text), or an array (its
// elements joined by newlines). It is enough to wait for a server and to
// poke it in tests without a client library.
func Command(addr string, args ...string) (string, error) {
	return commandAuth(func() (net.Conn, error) { return net.DialTimeout("tcp", addr, time.Second) }, nil, args...)
}

// commandAuth runs AUTH with auth first when it is not empty, then the
// command, on one connection.
func commandAuth(dial func() (net.Conn, error), auth []string, args ...string) (string, error) {
	conn, err := dial()
	if err != nil {
		return "", err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	r := bufio.NewReader(conn)
	if len(auth) > 0 {
		if _, err := conn.Write(resp(append([]string{"AUTH"}, auth...))); err != nil {
			return "", err
		}
		if _, err := readReply(r); err != nil {
			return "", fmt.Errorf("AUTH: %v", err)
		}
	}
	if _, err := conn.Write(resp(args)); err != nil {
		return "", err
	}
	return readReply(r)
}

// resp is a command in RESP.
func resp(args []string) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	return []byte(b.String())
}

func readReply(r *bufio.Reader) (string, error) {
	line, err := r.ReadString('\n')
	if err != nil {
		return "", err
	}
	line = strings.TrimRight(line, "\r\n")
	if line == "" {
		return "", fmt.Errorf("empty reply")
	}
	switch line[0] {
	case '+', ':':
		return line[1:], nil
	case '-':
		return "", fmt.Errorf("redis: %s", line[1:])
	case '$':
		n, err := strconv.Atoi(line[1:])
		if err != nil || n < 0 {
			return "", err
		}
		buf := make([]byte, n+2)
		if _, err := io.ReadFull(r, buf); err != nil {
			return "", err
		}
		return string(buf[:n]), nil
	case '*':
		n, err := strconv.Atoi(line[1:])
		if err != nil {
			return "", err
		}
		parts := make([]string, 0, max(n, 0))
		for range n {
			p, err := readReply(r)
			if err != nil {
				return "", err
			}
			parts = append(parts, p)
		}
		return strings.Join(parts, "\n"), nil
	}
	return "", fmt.Errorf("unexpected reply %q", line)
}

// Package testnginx runs Debian's nginx for tests: one process per call, on
// a free loopback port, with a configuration and prefix directory of its
// own, stopped when the test ends.
//
// When nginx is not installed the test is skipped on a developer machine
// and fails when CI=true, so CI can never pass by skipping (.ci/run
// installs it).
package testnginx

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Binary returns the path of nginx, skipping or failing the test when it
// is missing.
func Binary(t testing.TB) string {
	t.Helper()
	p, err := exec.LookPath("nginx")
	if err != nil {
		for _, dir := range []string{"/usr/sbin", "/usr/local/sbin"} {
			if _, serr := os.Stat(filepath.Join(dir, "nginx")); serr == nil {
				return filepath.Join(dir, "nginx")
			}
		}
		if os.Getenv("CI") == "true" {
			t.Fatal("nginx is not installed (apt-get install -y nginx); CI needs it")
		}
		t.Skip("nginx is not installed (apt-get install -y nginx)")
	}
	return p
}

// FreePort returns a loopback port nothing listens on at the moment.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// Server is a running nginx.
type Server struct {
	// URL is http://127.0.0.1:<port>.
	URL string
}

// Start runs nginx with the given server block (the contents of one
// `server { … }`, without its `listen` line) listening on a free loopback
// port, waits until it answers and stops it when the test ends. nginx
// runs in the foreground as a single process (daemon off, master_process
// off), with its logs, pid and temporary files in a directory of the test.
func Start(t testing.TB, server string) *Server {
	t.Helper()
	bin := Binary(t)
	prefix := t.TempDir()
	for _, d := range []string{"logs", "tmp"} {
		if err := os.Mkdir(filepath.Join(prefix, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	port := FreePort(t)
	conf := fmt.Sprintf(`daemon off;
master_process off;
worker_processes 1;
pid %[1]s/logs/nginx.pid;
error_log %[1]s/logs/error.log warn;
events { worker_connections 64; }
http {
	access_log %[1]s/logs/access.log;
	client_body_temp_path %[1]s/tmp/body;
	proxy_temp_path %[1]s/tmp/proxy;
	fastcgi_temp_path %[1]s/tmp/fastcgi;
	uwsgi_temp_path %[1]s/tmp/uwsgi;
	scgi_temp_path %[1]s/tmp/scgi;
	server {
		listen 127.0.0.1:%[2]d;
%[3]s
	}
}
`, prefix, port, server)
	confPath := filepath.Join(prefix, "nginx.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	errorLog := filepath.Join(prefix, "logs", "error.log")
	out, err := os.Create(filepath.Join(prefix, "logs", "output"))
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	output := func() string {
		o, _ := os.ReadFile(out.Name())
		l, _ := os.ReadFile(errorLog)
		return strings.TrimSpace(string(o)) + "\n" + strings.TrimSpace(string(l))
	}
	cmd := exec.Command(bin, "-p", prefix, "-c", confPath, "-e", errorLog)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting nginx: %v", err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("nginx output and error.log:\n%s", output())
		}
	})
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	deadline := time.Now().Add(10 * time.Second)
	for {
		select {
		case <-done:
			t.Fatalf("nginx exited at start:\n%s", output())
		default:
		}
		if c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond); err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("nginx did not listen on %s within 10s:\n%s", addr, output())
		}
		time.Sleep(20 * time.Millisecond)
	}
	return &Server{URL: "http://" + addr}
}

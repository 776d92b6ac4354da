package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"
)

var stateBackend = flag.String("state", "caddy_storage", "issuer state: caddy_storage (the default, a file_system storage) or redis (a redis-server started by the bench, appendonly yes, appendfsync everysec)")

// extraEnv is added to Caddy's environment (TG_BENCH_STATE: the issuer's
// state line).
var extraEnv []string

// startState prepares the issuer's state backend named by -state and
// returns what stops it.
func startState(ctx context.Context, tmp string) (func(), error) {
	switch *stateBackend {
	case "caddy_storage":
		return func() {}, nil
	case "redis":
	default:
		return nil, fmt.Errorf("unknown -state %q (caddy_storage, redis)", *stateBackend)
	}
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, fmt.Errorf("-state redis: %v (install Debian's redis-server)", err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	dir := filepath.Join(tmp, "redis")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	// Persistence as docs/clusters.md recommends for production.
	cmd := exec.CommandContext(ctx, bin, "--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--dir", dir,
		"--save", "", "--appendonly", "yes", "--appendfsync", "everysec", "--logfile", "redis.log")
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting redis-server: %v", err)
	}
	stop := func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }
	addr := "127.0.0.1:" + strconv.Itoa(port)
	deadline := time.Now().Add(10 * time.Second)
	for {
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			stop()
			return nil, fmt.Errorf("redis-server did not listen on %s in time", addr)
		}
		time.Sleep(20 * time.Millisecond)
	}
	extraEnv = append(extraEnv, "TG_BENCH_STATE=state redis "+addr)
	fmt.Printf("state: redis-server at %s (appendonly yes, appendfsync everysec)\n", addr)
	return stop, nil
}

// checkPortsFree refuses to start when something already listens on the
// bench's ports: Caddy binds with SO_REUSEPORT, so a second bench running
// at the same time would share the ports and mix two issuers' answers
// (refresh tokens of one redeemed at the other) without a word.
func checkPortsFree() error {
	for _, addr := range []string{respondAddr, tokenAddr, proxyAddr, guardAddr} {
		if c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond); err == nil {
			c.Close()
			return fmt.Errorf("something already listens on %s (another bench run?); stop it first", addr)
		}
	}
	return nil
}

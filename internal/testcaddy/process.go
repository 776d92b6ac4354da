package testcaddy

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"syscall"
	"testing"
	"time"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// Binary builds ./cmd/caddy once per test process (with the race detector
// when the tests have it, so the build reuses their compiled packages) and
// returns its path.
func Binary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		_, file, _, _ := runtime.Caller(0)
		root := filepath.Join(filepath.Dir(file), "..", "..")
		dir, err := os.MkdirTemp("", "tokengate-caddy-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "caddy")
		args := []string{"build", "-o", binPath}
		if raceEnabled {
			args = append(args, "-race")
		}
		cmd := exec.Command("go", append(args, "./cmd/caddy")...)
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build ./cmd/caddy: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// Process is a Caddy instance running in a process of its own.
type Process struct {
	cmd  *exec.Cmd
	out  *lockedBuffer
	done chan struct{}
	t    testing.TB
}

// StartProcess runs the built binary with the Caddyfile and waits until
// healthURL answers. The process is stopped when the test ends.
func StartProcess(t testing.TB, caddyfile, healthURL string) *Process {
	t.Helper()
	p := SpawnProcess(t, caddyfile)
	p.WaitReady(healthURL)
	return p
}

// SpawnProcess starts the built binary with the Caddyfile without waiting
// for it, so several instances can start at the same moment. Call Binary
// first from the test goroutine, and WaitReady afterwards.
func SpawnProcess(t testing.TB, caddyfile string) *Process {
	t.Helper()
	cfg := filepath.Join(t.TempDir(), "Caddyfile")
	if err := os.WriteFile(cfg, []byte(caddyfile), 0o600); err != nil {
		t.Fatal(err)
	}
	return Spawn(t, "", nil, "run", "--config", cfg, "--adapter", "caddyfile")
}

// Spawn starts the built binary with args in the directory dir ("" for
// the test's own), with a HOME and XDG directories of its own and env
// added to the test's environment (a later entry wins), without waiting.
func Spawn(t testing.TB, dir string, env []string, args ...string) *Process {
	t.Helper()
	bin := Binary(t)
	p := &Process{out: new(lockedBuffer), done: make(chan struct{}), t: t}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Dir = dir
	p.cmd.Env = append(os.Environ(), "HOME="+t.TempDir(), "XDG_DATA_HOME="+t.TempDir(), "XDG_CONFIG_HOME="+t.TempDir())
	p.cmd.Env = append(p.cmd.Env, env...)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(p.Stop)
	return p
}

// WaitReady waits until healthURL answers, failing the test if the
// process exits or does not answer within 20s.
func (p *Process) WaitReady(healthURL string) {
	p.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		select {
		case <-p.done:
			p.t.Fatalf("caddy exited at start:\n%s", p.out)
		default:
		}
		if ping(healthURL) {
			return
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("caddy did not answer %s within 20s:\n%s", healthURL, p.out)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Signal sends sig to the process: SIGSTOP and SIGCONT pause and resume
// it, as an instance too slow to notice something would be.
func (p *Process) Signal(sig os.Signal) error { return p.cmd.Process.Signal(sig) }

// Stop ends the process gracefully (SIGINT) and waits for it.
func (p *Process) Stop() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
		p.t.Errorf("caddy did not stop on SIGINT within 10s")
	}
}

// Output is what the process logged so far.
func (p *Process) Output() string { return p.out.String() }

// lockedBuffer collects a process's output; exec writes it from its own
// goroutine while the test may read it.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

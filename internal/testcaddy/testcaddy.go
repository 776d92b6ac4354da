// Package testcaddy runs Caddy in the test process from a Caddyfile, with
// every tokengate module registered.
//
// It is used instead of caddytest because caddytest skips a test (rather
// than failing it) when its admin endpoint cannot start, and a skipped
// end-to-end test must never pass for a green one. Configs given here turn
// the admin endpoint off; tests in one package must not run in parallel
// with each other (Caddy runs one config per process).
package testcaddy

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	_ "github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	_ "github.com/caddyserver/caddy/v2/modules/standard"

	_ "github.com/tokengate/tokengate"
)

// Adapt turns a Caddyfile into JSON, failing the test on error or warning.
func Adapt(t testing.TB, caddyfile string) []byte {
	t.Helper()
	cfg, err := AdaptErr(caddyfile)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// AdaptErr turns a Caddyfile into JSON.
func AdaptErr(caddyfile string) ([]byte, error) {
	adapter := caddyconfig.GetAdapter("caddyfile")
	cfg, warns, err := adapter.Adapt([]byte(caddyfile), map[string]any{"filename": "Caddyfile"})
	if err != nil {
		return nil, fmt.Errorf("adapting Caddyfile: %v", err)
	}
	for _, w := range warns {
		// Test configs are written inline and indented for Go, not caddy fmt.
		if !strings.Contains(w.Message, "not formatted") {
			return nil, fmt.Errorf("adapting Caddyfile: warning: %v", w)
		}
	}
	return cfg, nil
}

// Load runs the config (replacing any running one); it returns the error
// of loading, so tests can assert on config errors.
func Load(caddyfile string) error {
	cfg, err := AdaptErr(caddyfile)
	if err != nil {
		return err
	}
	return caddy.Load(cfg, true)
}

// Start runs the Caddyfile and stops Caddy when the test ends. The
// Caddyfile should have `admin off` and a `storage file_system` of the
// test's own in its global options.
func Start(t testing.TB, caddyfile string) {
	t.Helper()
	if err := Load(caddyfile); err != nil {
		t.Fatalf("loading config: %v", err)
	}
	t.Cleanup(func() {
		if err := caddy.Stop(); err != nil {
			t.Errorf("stopping caddy: %v", err)
		}
	})
}

func ping(url string) bool {
	c := http.Client{Timeout: time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return true
}

// Storage returns a `storage` global option line for dir.
func Storage(dir string) string {
	return "storage file_system " + strings.ReplaceAll(dir, " ", `\ `)
}

// StopNow stops the running config, failing the test on error.
func StopNow(t testing.TB) {
	t.Helper()
	if err := caddy.Stop(); err != nil {
		t.Fatalf("stopping caddy: %v", err)
	}
}

// RaceEnabled reports whether the tests run with the race detector, which
// makes everything several times slower: timing figures mean little then.
const RaceEnabled = raceEnabled

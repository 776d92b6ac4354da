package testcaddy

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Exclusive runs a package's tests while holding a lock named after the
// package, machine-wide: the tests listen on fixed ports, and Caddy binds
// with SO_REUSEPORT, so two runs of one package at once (two checkouts on
// one machine) would answer each other's requests instead of failing to
// start. Runs of different packages, which use different ports, still go
// side by side. Use it from TestMain: os.Exit(testcaddy.Exclusive(m, "validator")).
func Exclusive(m *testing.M, pkg string) int {
	if fuzzWorker() {
		// Started by `go test -fuzz`'s coordinator, which holds the lock
		// and listens on nothing while it fuzzes.
		return m.Run()
	}
	name := filepath.Join(os.TempDir(), "tokengate-test-"+pkg+".lock")
	unlock, err := lockFile(name)
	if err != nil {
		fmt.Fprintf(os.Stderr, "testcaddy: taking %s: %v\n", name, err)
		return 1
	}
	defer unlock()
	return m.Run()
}

// fuzzWorker reports whether this process is a fuzzing worker, run by the
// test binary that already took the lock.
func fuzzWorker() bool {
	for _, a := range os.Args[1:] {
		if strings.HasPrefix(a, "-test.fuzzworker") {
			return true
		}
	}
	return false
}

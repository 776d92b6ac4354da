// Command xcaddy-build builds Caddy with xcaddy, as xcaddy.json describes:
//
//	go run ./scripts/xcaddy-build [-o <output>] [-n]
//
// xcaddy.json, at the repository's root, names the xcaddy version (run with
// `go run`, nothing is installed), the Caddy version and the plugins, each
// a Go module with a version and, for a local copy, a replacement path
// relative to xcaddy.json. The build uses the Go toolchain named by the
// `toolchain` line of go.mod (GOTOOLCHAIN), so the binary is built as the
// tests are. The output defaults to ./caddy at the root; -n prints the
// command instead of running it.
//
// A local copy needs a version too: xcaddy v0.4.5 resolves a plugin
// through the module proxy before applying its replacement, which fails
// for an unpublished module unless the version is given. The zero
// pseudo-version v0.0.0-00010101000000-000000000000 is the usual stand-in.
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// Manifest is xcaddy.json.
type Manifest struct {
	XcaddyVersion string       `json:"xcaddy_version"`
	CaddyVersion  string       `json:"caddy_version"`
	Dependencies  []Dependency `json:"dependencies"`
}

// Dependency is one plugin (a Go module) of the build.
type Dependency struct {
	Module  string `json:"module"`
	Version string `json:"version,omitempty"`
	// Replacement is a local directory to build the module from, relative
	// to xcaddy.json.
	Replacement string `json:"replacement,omitempty"`
}

func main() {
	output := flag.String("o", "", "the binary to write (default: caddy at the repository's root)")
	dryRun := flag.Bool("n", false, "print the xcaddy command without running it")
	flag.Parse()
	if err := run(*output, *dryRun); err != nil {
		fmt.Fprintln(os.Stderr, "xcaddy-build:", err)
		os.Exit(1)
	}
}

func run(output string, dryRun bool) error {
	if output != "" {
		abs, err := filepath.Abs(output)
		if err != nil {
			return err
		}
		output = abs
	}
	root, err := findRoot()
	if err != nil {
		return err
	}
	m, err := readManifest(filepath.Join(root, "xcaddy.json"))
	if err != nil {
		return err
	}
	toolchain, err := goModToolchain(filepath.Join(root, "go.mod"))
	if err != nil {
		return err
	}
	args := m.Args(output)
	fmt.Printf("GOTOOLCHAIN=%s go %s\n", toolchain, strings.Join(args, " "))
	if dryRun {
		return nil
	}
	cmd := exec.Command("go", args...)
	cmd.Dir = root // replacements are relative to xcaddy.json
	cmd.Env = append(os.Environ(), "GOTOOLCHAIN="+toolchain)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = nil, os.Stdout, os.Stderr
	return cmd.Run()
}

// Args is the `go` command line that runs xcaddy for this manifest; an
// empty output leaves xcaddy's default (./caddy).
func (m *Manifest) Args(output string) []string {
	args := []string{"run", "github.com/caddyserver/xcaddy/cmd/xcaddy@" + m.XcaddyVersion, "build", m.CaddyVersion}
	if output != "" {
		args = append(args, "--output", output)
	}
	for _, d := range m.Dependencies {
		with := d.Module
		if d.Version != "" {
			with += "@" + d.Version
		}
		if d.Replacement != "" {
			with += "=" + d.Replacement
		}
		args = append(args, "--with", with)
	}
	return args
}

func readManifest(path string) (*Manifest, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var m Manifest
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("%s: %v", path, err)
	}
	return &m, m.check()
}

// check refuses what xcaddy would otherwise guess: a floating Caddy or
// xcaddy version, or a local copy without a version.
func (m *Manifest) check() error {
	if !strings.HasPrefix(m.XcaddyVersion, "v") {
		return fmt.Errorf("xcaddy.json: xcaddy_version %q must be a release such as v0.4.5", m.XcaddyVersion)
	}
	if !strings.HasPrefix(m.CaddyVersion, "v2.") {
		return fmt.Errorf("xcaddy.json: caddy_version %q must be a Caddy v2 release such as v2.11.9", m.CaddyVersion)
	}
	if len(m.Dependencies) == 0 {
		return errors.New("xcaddy.json: no dependencies (plugins) listed")
	}
	for _, d := range m.Dependencies {
		if d.Module == "" || strings.ContainsAny(d.Module, "@= ") {
			return fmt.Errorf("xcaddy.json: bad module %q", d.Module)
		}
		if d.Replacement != "" && d.Version == "" {
			return fmt.Errorf("xcaddy.json: %s has a replacement but no version; xcaddy then looks the module up in the module proxy first (use v0.0.0-00010101000000-000000000000)", d.Module)
		}
	}
	return nil
}

// findRoot is the nearest directory, from the working directory up, that
// holds xcaddy.json.
func findRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "xcaddy.json")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no xcaddy.json in this directory or above it")
		}
		dir = parent
	}
}

// goModToolchain reads the toolchain go.mod names (e.g. go1.26.11).
func goModToolchain(path string) (string, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if rest, ok := strings.CutPrefix(line, "toolchain "); ok {
			return strings.TrimSpace(rest), nil
		}
	}
	return "", fmt.Errorf("%s has no toolchain line", path)
}

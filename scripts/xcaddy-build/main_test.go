package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// goModRequire reads the module path and the version go.mod requires of
// dep.
func goModRequire(t *testing.T, dep string) (module, version string) {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("..", "..", "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(raw), "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) == 2 && f[0] == "module":
			module = f[1]
		case len(f) >= 2 && f[0] == dep:
			version = f[1]
		}
	}
	return module, version
}

// TestManifest: xcaddy.json builds this checkout with the Caddy version the
// tests use, and the README shows the command the script runs.
func TestManifest(t *testing.T) {
	m, err := readManifest(filepath.Join("..", "..", "xcaddy.json"))
	if err != nil {
		t.Fatal(err)
	}
	module, caddyVersion := goModRequire(t, "github.com/caddyserver/caddy/v2")
	if m.CaddyVersion != caddyVersion {
		t.Errorf("xcaddy.json builds Caddy %s, go.mod requires %s", m.CaddyVersion, caddyVersion)
	}
	var self *Dependency
	for i, d := range m.Dependencies {
		if d.Module == module {
			self = &m.Dependencies[i]
		}
	}
	if self == nil || self.Replacement != "." || self.Version != "v0.0.0-00010101000000-000000000000" {
		t.Fatalf("xcaddy.json does not build this checkout (%s@v0.0.0-00010101000000-000000000000=.): %+v", module, m.Dependencies)
	}
	readme, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	line := "go " + strings.Join(m.Args(""), " ")
	if !strings.Contains(string(readme), line) {
		t.Errorf("README.md does not show the command the script runs:\n%s", line)
	}
}

func TestArgs(t *testing.T) {
	m := Manifest{XcaddyVersion: "v0.4.5", CaddyVersion: "v2.11.9", Dependencies: []Dependency{
		{Module: "github.com/tokengate/tokengate", Version: "v0.0.0-00010101000000-000000000000", Replacement: "."},
		{Module: "github.com/mholt/caddy-l4", Version: "v0.1.2"},
		{Module: "github.com/example/latest"},
	}}
	got := strings.Join(m.Args("/tmp/caddy"), " ")
	want := "run github.com/caddyserver/xcaddy/cmd/xcaddy@v0.4.5 build v2.11.9 --output /tmp/caddy" +
		" --with github.com/tokengate/tokengate@v0.0.0-00010101000000-000000000000=." +
		" --with github.com/mholt/caddy-l4@v0.1.2 --with github.com/example/latest"
	if got != want {
		t.Errorf("Args:\n got %s\nwant %s", got, want)
	}
}

func TestManifestCheck(t *testing.T) {
	ok := Dependency{Module: "github.com/tokengate/tokengate", Version: "v1.0.0"}
	for name, tc := range map[string]struct {
		m    Manifest
		want string
	}{
		"floating xcaddy":          {Manifest{XcaddyVersion: "latest", CaddyVersion: "v2.11.9", Dependencies: []Dependency{ok}}, "xcaddy_version"},
		"floating caddy":           {Manifest{XcaddyVersion: "v0.4.5", CaddyVersion: "master", Dependencies: []Dependency{ok}}, "caddy_version"},
		"no plugins":               {Manifest{XcaddyVersion: "v0.4.5", CaddyVersion: "v2.11.9"}, "no dependencies"},
		"bad module":               {Manifest{XcaddyVersion: "v0.4.5", CaddyVersion: "v2.11.9", Dependencies: []Dependency{{Module: "x@v1"}}}, "bad module"},
		"replacement, no version":  {Manifest{XcaddyVersion: "v0.4.5", CaddyVersion: "v2.11.9", Dependencies: []Dependency{{Module: "example.com/p", Replacement: "."}}}, "no version"},
		"replacement with version": {Manifest{XcaddyVersion: "v0.4.5", CaddyVersion: "v2.11.9", Dependencies: []Dependency{{Module: "example.com/p", Version: "v0.0.0-00010101000000-000000000000", Replacement: "."}}}, ""},
	} {
		err := tc.m.check()
		if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%s: check = %v, want %q", name, err, tc.want)
		}
	}
}

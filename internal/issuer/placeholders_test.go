package issuer

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddyserver/certmagic"
	"go.uber.org/zap"
	"golang.org/x/crypto/bcrypt"
)

// TestSecretEnvDefault: a client secret written {env.NAME:default} takes the
// variable when it is set and not empty, the default otherwise; the config
// itself keeps the placeholder.
func TestSecretEnvDefault(t *testing.T) {
	t.Setenv("TOKENGATE_TEST_SET", "from-env")
	t.Setenv("TOKENGATE_TEST_EMPTY", "")
	t.Setenv("TOKENGATE_TEST_UNSET", "") // restored when the test ends
	os.Unsetenv("TOKENGATE_TEST_UNSET")
	file := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(file, []byte("from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		secret, want string
	}{
		{"{env.TOKENGATE_TEST_UNSET:demo-secret}", "demo-secret"},
		{"{env.TOKENGATE_TEST_EMPTY:demo-secret}", "demo-secret"},
		{"{env.TOKENGATE_TEST_SET:demo-secret}", "from-env"},
		{"{env.TOKENGATE_TEST_UNSET:a:b/c=d}", "a:b/c=d"}, // split at the first colon
		{"pre-{env.TOKENGATE_TEST_UNSET:x}-{env.TOKENGATE_TEST_SET}", "pre-x-from-env"},
		{"{file." + file + "}", "from-file"},
	}
	for _, tt := range tests {
		t.Run(tt.secret, func(t *testing.T) {
			cfg := baseConfig()
			cfg.Clients[0].Secret = tt.secret
			iss, _ := newIssuer(t, cfg, &certmagic.FileStorage{Path: t.TempDir()})
			if got := iss.Config.Clients[0].Secret; got != tt.want {
				t.Fatalf("resolved secret = %q, want %q", got, tt.want)
			}
			if _, err := iss.Clients.Authenticate("reports", tt.want, nil); err != nil {
				t.Fatalf("the resolved secret does not authenticate: %v", err)
			}
			if cfg.Clients[0].Secret != tt.secret {
				t.Fatalf("New modified the given config: %q", cfg.Clients[0].Secret)
			}
		})
	}

	t.Run("secret_hash", func(t *testing.T) {
		hash, err := bcrypt.GenerateFromPassword([]byte("hashed-default"), bcrypt.MinCost)
		if err != nil {
			t.Fatal(err)
		}
		cfg := baseConfig()
		cfg.Clients[0].Secret, cfg.Clients[0].SecretHash = "", "{env.TOKENGATE_TEST_UNSET:"+string(hash)+"}"
		iss, _ := newIssuer(t, cfg, &certmagic.FileStorage{Path: t.TempDir()})
		if _, err := iss.Clients.Authenticate("reports", "hashed-default", nil); err != nil {
			t.Fatalf("the default hash does not authenticate its secret: %v", err)
		}
	})
}

// TestSecretEnvDefaultErrors: an empty default is no secret, and the
// default form is a client-secret feature only: elsewhere Caddy's replacer
// reads it as a variable named "NAME:default", unset, and the option fails
// rather than silently using the default.
func TestSecretEnvDefaultErrors(t *testing.T) {
	t.Setenv("TOKENGATE_TEST_UNSET", "") // restored when the test ends
	os.Unsetenv("TOKENGATE_TEST_UNSET")
	tests := []struct {
		name   string
		mutate func(c *Config)
		want   string
	}{
		{"empty default", func(c *Config) { c.Clients[0].Secret = "{env.TOKENGATE_TEST_UNSET:}" }, `client "reports": secret`},
		{"secret_hash default not a hash", func(c *Config) {
			c.Clients[0].Secret, c.Clients[0].SecretHash = "", "{env.TOKENGATE_TEST_UNSET:plaintext}"
		}, `client "reports": secret_hash: not a bcrypt or argon2id hash`},
		{"issuer takes no default", func(c *Config) { c.Issuer = "{env.TOKENGATE_TEST_UNSET:http://localhost}" }, "issuer:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := baseConfig()
			tt.mutate(cfg)
			_, err := New(context.Background(), DefaultName, cfg, &certmagic.FileStorage{Path: t.TempDir()}, zap.NewNop())
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("New = %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

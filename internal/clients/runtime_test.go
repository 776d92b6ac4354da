package clients

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/caddyserver/certmagic"

	"github.com/tokengate/tokengate/internal/state/caddystorage"
)

func runtimeRegistry(t testing.TB, now *time.Time) *Registry {
	t.Helper()
	r, err := NewRegistry([]*Config{{ClientID: "cfg", Secret: "cfg-secret"}})
	if err != nil {
		t.Fatal(err)
	}
	r.State = caddystorage.NewClients(&certmagic.FileStorage{Path: t.TempDir()}, "p", nil)
	r.Now = func() time.Time { return *now }
	r.MaxTokenTTL = time.Hour
	if err := r.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	return r
}

// TestRotationGrace: after a rotation both secrets work until the grace
// ends, then only the new one (the clock is the registry's).
func TestRotationGrace(t *testing.T) {
	ctx := context.Background()
	now := time.Unix(1_800_000_000, 0)
	r := runtimeRegistry(t, &now)
	old, err := r.Create(ctx, &Config{ClientID: "app", Scopes: []string{"read"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Authenticate("app", old, nil); err != nil {
		t.Fatalf("new client: %v", err)
	}
	if _, err := r.Authenticate("app", old+"x", nil); !errors.Is(err, ErrInvalidClient) {
		t.Fatalf("wrong secret: %v", err)
	}
	fresh, err := r.RotateSecret(ctx, "app", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{old, fresh} {
		if _, err := r.Authenticate("app", s, nil); err != nil {
			t.Errorf("during the grace: %v", err)
		}
	}
	now = now.Add(time.Hour)
	if _, err := r.Authenticate("app", old, nil); !errors.Is(err, ErrInvalidClient) {
		t.Errorf("old secret after the grace: %v", err)
	}
	if _, err := r.Authenticate("app", fresh, nil); err != nil {
		t.Errorf("new secret: %v", err)
	}
	// grace 0 ends the old secret at once.
	third, err := r.RotateSecret(ctx, "app", 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Authenticate("app", fresh, nil); !errors.Is(err, ErrInvalidClient) {
		t.Errorf("secret rotated with no grace: %v", err)
	}
	if _, err := r.Authenticate("app", third, nil); err != nil {
		t.Error(err)
	}
}

// TestRuntimeRules: conflicts with configured clients, unknown clients,
// a token_ttl over the config's, and the cut-off of each operation.
func TestRuntimeRules(t *testing.T) {
	ctx := context.Background()
	now := time.Unix(1_800_000_000, 0)
	r := runtimeRegistry(t, &now)
	if _, err := r.Create(ctx, &Config{ClientID: "cfg"}); !errors.Is(err, ErrConfigured) {
		t.Errorf("create over a configured client: %v", err)
	}
	if err := r.Replace(ctx, &Config{ClientID: "nobody"}); !errors.Is(err, ErrNotFound) {
		t.Errorf("replace unknown: %v", err)
	}
	var oe *OptionError
	if _, err := r.Create(ctx, &Config{ClientID: "long", TokenTTL: 2 * 3600 * 1e9}); !errors.As(err, &oe) || oe.Option != "token_ttl" {
		t.Errorf("token_ttl over the config's: %v", err)
	}
	for _, c := range []*Config{
		{ClientID: "keys", JWKSURI: "https://keys.example/jwks.json"},
		{ClientID: "keys", JWKS: []byte(`{"keys":[]}`)},
		{ClientID: "keys", TLSClientAuthSubjectDN: "CN=keys"},
	} {
		if _, err := r.Create(ctx, c); !errors.As(err, &oe) || oe.Option == "" {
			t.Errorf("runtime client with keys %+v: %v, want refused naming the option", c, err)
		}
	}
	iat := now.Unix()
	if r.CutOff("cfg", iat) {
		t.Fatal("cut-off before any")
	}
	if err := r.Disable(ctx, "cfg"); err != nil {
		t.Fatal(err)
	}
	if !r.CutOff("cfg", iat) {
		t.Error("disabled client's token accepted")
	}
	if _, err := r.Authenticate("cfg", "cfg-secret", nil); !errors.Is(err, ErrInvalidClient) {
		t.Errorf("disabled configured client authenticated: %v", err)
	}
	if err := r.Enable(ctx, "cfg"); err != nil {
		t.Fatal(err)
	}
	if !r.CutOff("cfg", iat) || r.CutOff("cfg", iat+1) {
		t.Error("enable: tokens before the disable must stay refused, later ones pass")
	}
	secret, err := r.Create(ctx, &Config{ClientID: "app"})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Delete(ctx, "app"); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Authenticate("app", secret, nil); !errors.Is(err, ErrInvalidClient) {
		t.Errorf("deleted client authenticated: %v", err)
	}
	if !r.CutOff("app", iat) {
		t.Error("deleted client's token accepted")
	}
	if _, ok := r.View("app"); ok {
		t.Error("deleted client listed")
	}
	// Its id can be used again; the old tokens stay refused.
	if _, err := r.Create(ctx, &Config{ClientID: "app"}); err != nil {
		t.Fatal(err)
	}
	if !r.CutOff("app", iat) {
		t.Error("re-created client revived old tokens")
	}
}

package validator

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/caddyserver/certmagic"
	"go.uber.org/zap"
)

// The nonce key is made once per storage and read by every later load; a
// damaged one is made again; a storage that cannot be read leaves the
// process's own nonces.
func TestNonceKeyShared(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	st := &certmagic.FileStorage{Path: dir}
	k1, err := loadNonceKey(ctx, st)
	if err != nil {
		t.Fatal(err)
	}
	k2, err := loadNonceKey(ctx, &certmagic.FileStorage{Path: dir})
	if err != nil || k2 != k1 {
		t.Fatalf("a second load read another key (%v)", err)
	}
	if k3, _ := loadNonceKey(ctx, &certmagic.FileStorage{Path: t.TempDir()}); k3 == k1 {
		t.Fatal("another storage has the same key")
	}
	// Two sources made from the same storage make the same nonces.
	now := time.Now()
	a, b := sharedNonces(ctx, st, zap.NewNop()), sharedNonces(ctx, st, zap.NewNop())
	if a == routeNonces() || a.Issue(now) != b.Issue(now) {
		t.Fatal("nonces made with the stored key are not accepted by another source of it")
	}
	if err := st.Store(ctx, nonceKeyFile, []byte("short")); err != nil {
		t.Fatal(err)
	}
	if k4, err := loadNonceKey(ctx, st); err != nil || k4 == k1 || k4 == [32]byte{} {
		t.Fatalf("a damaged key was not made again (%v)", err)
	}
	broken := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(broken, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if got := sharedNonces(ctx, &certmagic.FileStorage{Path: broken}, zap.NewNop()); got != routeNonces() {
		t.Fatal("an unreadable storage did not leave the process's own nonces")
	}
}

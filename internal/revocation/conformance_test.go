package revocation

import (
	"testing"
	"time"

	"github.com/caddyserver/certmagic"

	"github.com/tokengate/tokengate/internal/state"
	"github.com/tokengate/tokengate/internal/statetest"
)

// TestConformance runs the state backends' suite on Caddy's file storage.
func TestConformance(t *testing.T) {
	st := &certmagic.FileStorage{Path: t.TempDir()}
	statetest.Revocations(t, MaxLeeway, func(t *testing.T, now func() time.Time) state.Revocations {
		return New(Config{Storage: st, Prefix: "tg", Now: now})
	})
}

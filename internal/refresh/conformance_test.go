package refresh

import (
	"context"
	"testing"

	"github.com/caddyserver/certmagic"
	"go.uber.org/zap"

	"github.com/tokengate/tokengate/internal/state"
	"github.com/tokengate/tokengate/internal/statetest"
)

// TestConformance runs the state backends' suite on Caddy's file storage.
func TestConformance(t *testing.T) {
	st := &certmagic.FileStorage{Path: t.TempDir()}
	open := func(t *testing.T) state.Families {
		return &storageFamilies{storage: st, prefix: prefix, logger: zap.NewNop()}
	}
	corrupt := func(t *testing.T, id string) {
		if err := st.Store(context.Background(), prefix+"/refresh_families/"+id, []byte("{")); err != nil {
			t.Fatal(err)
		}
	}
	statetest.Families(t, open, corrupt)
}

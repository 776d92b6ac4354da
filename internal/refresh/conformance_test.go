package refresh

import (
	"context"
	"testing"

	"github.com/caddyserver/certmagic"
	"go.uber.org/zap"

	"github.com/tokengate/tokengate/internal/state"
	"github.com/tokengate/tokengate/internal/statetest"
)

// TestConformance runs the state backends' suite on Caddy's file storage,
// spoken to directly (internal/state/filestorage), and on a storage seen
// only through certmagic.Storage (any other storage module).
func TestConformance(t *testing.T) {
	for _, direct := range []bool{true, false} {
		name := map[bool]string{true: "file storage, direct", false: "through certmagic.Storage"}[direct]
		t.Run(name, func(t *testing.T) {
			fs := &certmagic.FileStorage{Path: t.TempDir()}
			var st certmagic.Storage = fs
			if !direct {
				st = &statetest.CountingStorage{Storage: fs}
			}
			open := func(t *testing.T) state.Families {
				f := newStorageFamilies(st, prefix, zap.NewNop())
				if (f.file != nil) != direct {
					t.Fatalf("direct file access: %v, want %v", f.file != nil, direct)
				}
				return f
			}
			corrupt := func(t *testing.T, id string) {
				if err := st.Store(context.Background(), prefix+"/refresh_families/"+id, []byte("{")); err != nil {
					t.Fatal(err)
				}
			}
			statetest.Families(t, open, corrupt)
		})
	}
}

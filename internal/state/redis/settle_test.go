package redis

import (
	"context"
	"testing"

	"github.com/tokengate/tokengate/internal/state"
	"github.com/tokengate/tokengate/internal/testredis"
)

// A store found without its epoch is settling for settleGrace; an
// instance that finds the epoch set by another writes back what it holds
// while the store settles (the other may have had nothing to write back),
// and not once it has settled (what it holds may have been deleted since).
func TestSettlingWriteBack(t *testing.T) {
	srv := testredis.Start(t)
	a := open(t, Redis{Addresses: []string{srv.Addr()}})
	ctx := context.Background()
	settler := a.Storage.(state.Settler)
	if settling, err := settler.Settling(ctx); err != nil || !settling {
		t.Fatalf("a new store: settling %v, %v; want true", settling, err)
	}
	if err := a.Storage.Store(ctx, prefix+"/keys.json", []byte("the keys")); err != nil {
		t.Fatal(err)
	}
	base := DefaultKeyPrefix + "{0123456789abcdef}:"
	do := func(cmd string) string {
		t.Helper()
		out, err := srv.Do(cmd)
		if err != nil {
			t.Fatalf("%s: %v", cmd, err)
		}
		return out
	}
	stored := func() bool { return do("HEXISTS "+base+"files "+prefix+"/keys.json") == "1" }

	for _, tc := range []struct {
		name     string
		settling bool
	}{{"settled", false}, {"settling", true}} {
		// Another instance found the data lost, had nothing to write
		// back and set a new epoch, before this one looked.
		do("DEL " + base + "settling")
		do("HDEL " + base + "files " + prefix + "/keys.json")
		do("SET " + base + "epoch other-" + tc.name)
		if tc.settling {
			do("SET " + base + "settling 1 PX 60000")
		}
		if err := a.Revocations.Sync(ctx); err != nil {
			t.Fatal(err)
		}
		if stored() != tc.settling {
			t.Errorf("%s: keys written back %v; want %v", tc.name, stored(), tc.settling)
		}
		if settling, err := settler.Settling(ctx); err != nil || settling != tc.settling {
			t.Errorf("%s: Settling %v, %v; want %v", tc.name, settling, err, tc.settling)
		}
	}
}

package redis

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/tokengate/tokengate/internal/refresh"
	"github.com/tokengate/tokengate/internal/testredis"
)

// BenchmarkRedeem measures a redemption on Redis (refresh.Store over this
// backend, one connection, no access token signing): "fresh" redeems the
// first token of a new family each time; "chain-N" the N-th successive
// token of one family. Access tokens carry the family's id in sid (as the
// issuer's do), so the record keeps its size; "listed-chain-N" mints
// access tokens without sid (those of before it), which the record lists
// to revoke them with the family, so it grows with N.
func BenchmarkRedeem(b *testing.B) {
	srv := testredis.Start(b)
	cfg := Redis{Addresses: []string{srv.Addr()}}
	h := openB(b, cfg)
	ctx := context.Background()
	st, err := refresh.New(ctx, refresh.Config{Storage: h.Storage, Prefix: prefix, Families: h.Families})
	if err != nil {
		b.Fatal(err)
	}
	g := refresh.Grant{ClientID: "c", Scopes: []string{"s"}}
	n := 0
	mintAs := func(inSession bool) func(refresh.Grant) (refresh.AccessRef, error) {
		return func(refresh.Grant) (refresh.AccessRef, error) {
			n++
			return refresh.AccessRef{JTI: "access-token-id-" + strconv.Itoa(n), Expires: time.Now().Add(time.Hour), InSession: inSession}, nil
		}
	}
	mint := mintAs(true)
	b.Run("fresh", func(b *testing.B) {
		for b.Loop() {
			rt, err := st.Issue(ctx, g, time.Hour)
			if err != nil {
				b.Fatal(err)
			}
			if _, _, err := st.Redeem(ctx, rt, "c", time.Hour, mint); err != nil {
				b.Fatal(err)
			}
		}
	})
	for _, run := range []struct {
		name  string
		depth int
		mint  func(refresh.Grant) (refresh.AccessRef, error)
	}{{"chain-100", 100, mint}, {"chain-1000", 1000, mint}, {"listed-chain-1000", 1000, mintAs(false)}} {
		depth, mint := run.depth, run.mint
		b.Run(run.name, func(b *testing.B) {
			rt, err := st.Issue(ctx, g, time.Hour)
			if err != nil {
				b.Fatal(err)
			}
			for range depth {
				if _, rt, err = st.Redeem(ctx, rt, "c", time.Hour, mint); err != nil {
					b.Fatal(err)
				}
			}
			for b.Loop() {
				if _, rt, err = st.Redeem(ctx, rt, "c", time.Hour, mint); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

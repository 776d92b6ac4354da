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
// token of one family, whose record by then lists N access tokens (a
// family keeps its unexpired access tokens to revoke them with it).
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
	mint := func(refresh.Grant) (refresh.AccessRef, error) {
		n++
		return refresh.AccessRef{JTI: "access-token-id-" + strconv.Itoa(n), Expires: time.Now().Add(time.Hour)}, nil
	}
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
	for _, depth := range []int{100, 1000} {
		b.Run("chain-"+strconv.Itoa(depth), func(b *testing.B) {
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

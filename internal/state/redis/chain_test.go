package redis

import (
	"context"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/tokengate/tokengate/internal/refresh"
	"github.com/tokengate/tokengate/internal/testredis"
)

// Refresh tokens redeemed again and again, each time with the token the
// previous redemption answered, 16 chains at once, work on Redis as on
// Caddy's storage.
func TestRefreshChains(t *testing.T) {
	srv := testredis.Start(t)
	h := open(t, Redis{Addresses: []string{srv.Addr()}})
	ctx := context.Background()
	st, err := refresh.New(ctx, refresh.Config{Storage: h.Storage, Prefix: prefix, Families: h.Families, ReuseInterval: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	g := refresh.Grant{ClientID: "c", Scopes: []string{"s"}}
	var wg sync.WaitGroup
	for w := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rt, err := st.Issue(ctx, g, time.Hour, refresh.AccessRef{JTI: "first-" + strconv.Itoa(w), Expires: time.Now().Add(time.Hour)})
			if err != nil {
				t.Error(err)
				return
			}
			for i := range 200 {
				mint := func(refresh.Grant) (refresh.AccessRef, error) {
					return refresh.AccessRef{JTI: strconv.Itoa(w) + "-" + strconv.Itoa(i), Expires: time.Now().Add(time.Hour)}, nil
				}
				_, next, err := st.Redeem(ctx, rt, "c", time.Hour, mint)
				if err != nil {
					t.Errorf("chain %d, redemption %d: %v", w, i, err)
					return
				}
				rt = next
			}
		}()
	}
	wg.Wait()
}

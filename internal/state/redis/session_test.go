package redis

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/tokengate/tokengate/internal/refresh"
	"github.com/tokengate/tokengate/internal/state"
	"github.com/tokengate/tokengate/internal/testredis"
)

// TestFamilyRevokedBySession: on Redis, a family redeemed 1,000 times keeps
// a record without a list of access tokens, and revoking it through one
// instance writes the one revocation of its id, which another instance
// then refuses (the issuer refuses every access token whose sid it is).
func TestFamilyRevokedBySession(t *testing.T) {
	srv := testredis.Start(t)
	cfg := Redis{Addresses: []string{srv.Addr()}}
	a, b := open(t, cfg), open(t, cfg)
	ctx := context.Background()
	var revoked []string
	st, err := refresh.New(ctx, refresh.Config{Storage: a.Storage, Prefix: prefix, Families: a.Families,
		RevokeAccess: func(ctx context.Context, ref refresh.AccessRef) error {
			revoked = append(revoked, ref.JTI)
			return a.Revocations.Revoke(ctx, ref.JTI, ref.Expires)
		}})
	if err != nil {
		t.Fatal(err)
	}
	fam, err := refresh.NewFamily()
	if err != nil {
		t.Fatal(err)
	}
	exp := time.Now().Add(time.Hour)
	rt, err := st.Issue(ctx, refresh.Grant{ClientID: "c", Family: fam}, time.Hour, refresh.AccessRef{JTI: "at-0", Expires: exp, InSession: true})
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 1000; i++ {
		mint := func(refresh.Grant) (refresh.AccessRef, error) {
			return refresh.AccessRef{JTI: "at-" + strconv.Itoa(i), Expires: exp, InSession: true}, nil
		}
		if _, rt, err = st.Redeem(ctx, rt, "c", time.Hour, mint); err != nil {
			t.Fatalf("redemption %d: %v", i, err)
		}
	}
	rec, found, err := a.Families.Load(ctx, fam)
	if err != nil || !found || len(rec.Access) != 0 || rec.Generation != 1000 || !rec.AccessExpires.Equal(exp.Truncate(0)) {
		t.Fatalf("record after 1,000 redemptions: %+v found=%v err=%v", rec, found, err)
	}
	key := state.SessionRevocation(fam)
	if b.Revocations.IsRevoked(key) {
		t.Fatal("a live family is revoked")
	}
	if err := st.RevokeFamily(ctx, rt, "c"); err != nil {
		t.Fatal(err)
	}
	if len(revoked) != 1 || revoked[0] != key {
		t.Fatalf("revoking the family revoked %q, want only %q", revoked, key)
	}
	eventually(t, "the other instance refuses the family", func() bool {
		_ = b.Revocations.Sync(ctx)
		return b.Revocations.IsRevoked(key)
	})
}

package validator

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/tokengate/tokengate/internal/clients"
	"github.com/tokengate/tokengate/internal/revocation"
)

// TestLeewayOverRevocationMarginRevivesRevokedToken: the review set
// token_ttl 5s and leeway 10m on a route of a local issuer, revoked a
// token, got 401, then 200 at +324 s: revocations are kept until exp + 5m,
// tokens accepted until exp + leeway. Such a leeway is now refused when the
// route is provisioned; with the longest allowed leeway, a revoked token is
// refused at every moment until it expires for good.
func TestLeewayOverRevocationMarginRevivesRevokedToken(t *testing.T) {
	iss, clk := newIssuer(t, "ES256")
	short := &clients.Config{ClientID: "short-lived", Secret: "s3cret", TokenTTL: caddy.Duration(5 * time.Second)}
	ctx := context.Background()

	h := &Handler{Leeway: caddy.Duration(10 * time.Minute), logger: zap.NewNop()}
	err := h.provisionCommon()
	if err == nil {
		err = h.provisionLocal(iss.Local())
	}
	if err == nil {
		// Today's code: the route provisions; show the attack.
		at, err := iss.Issue(short, nil, iss.DefaultAudience())
		if err != nil {
			t.Fatal(err)
		}
		if err := iss.Revocations.Revoke(ctx, at.Claims.JTI, time.Unix(at.Claims.Expiry, 0)); err != nil {
			t.Fatal(err)
		}
		if res := do(h, "Bearer "+at.Token); res.reached {
			t.Fatal("revoked token accepted at once")
		}
		clk.Advance(324 * time.Second)
		if res := do(h, "Bearer "+at.Token); res.reached {
			t.Fatal("leeway 10m with a local issuer was accepted, and a revoked token was accepted again at +324s")
		}
		t.Fatal("leeway 10m with a local issuer was accepted")
	}
	for _, want := range []string{"leeway", revocation.MaxLeeway.String()} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %q", err, want)
		}
	}

	// The longest leeway allowed: a revoked token stays refused until exp
	// + leeway, when it has expired anyway.
	h = newLocal(t, iss, func(h *Handler) { h.Leeway = caddy.Duration(revocation.MaxLeeway) })
	at, err := iss.Issue(short, nil, iss.DefaultAudience())
	if err != nil {
		t.Fatal(err)
	}
	if err := iss.Revocations.Revoke(ctx, at.Claims.JTI, time.Unix(at.Claims.Expiry, 0)); err != nil {
		t.Fatal(err)
	}
	for elapsed := time.Duration(0); elapsed <= 6*time.Minute; elapsed += 10 * time.Second {
		if err := iss.Revocations.Sync(ctx); err != nil {
			t.Fatal(err)
		}
		if res := do(h, "Bearer "+at.Token); res.reached {
			t.Fatalf("revoked token accepted at +%v", elapsed)
		}
		clk.Advance(10 * time.Second)
	}
}

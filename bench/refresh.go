package main

import (
	"context"
	"fmt"
	"sync"
)

// refreshClientID is the bench client allowed the refresh grant: every
// client_credentials answer it gets carries a refresh token.
const refreshClientID = "bench-refresh"

// refreshSeries measures what refresh tokens cost, as two adjacent pairs
// per round:
//
//	token / token-refresh   client_credentials without and with a refresh
//	                        token in the answer (issue 13: >= 0.9)
//	token / redeem          client_credentials and refresh_token grants;
//	                        each worker redeems the refresh token its
//	                        previous answer carried (issue 13: >= 0.25)
func refreshSeries(ctx context.Context, caddy *caddyProc) error {
	tokenReq := buildTokenRequest()
	refreshReq := buildPost(refreshClientID, "grant_type=client_credentials")
	// Both clients pay bcrypt once, before anything is measured.
	for _, req := range [][]byte{tokenReq, refreshReq} {
		if _, err := mintOne(req); err != nil {
			return err
		}
	}
	type ratios struct{ issue, redeem float64 }
	var all []ratios
	rps := map[string][]float64{}
	for round := 1; round <= *rounds; round++ {
		fmt.Printf("refresh round %d\n", round)
		res := map[string]result{}
		run := func(s step) error {
			r, err := measure(ctx, caddy, s.name, s.addr, s.next, false, "")
			if err != nil {
				return err
			}
			res[s.key] = r
			r.print(s.name)
			return nil
		}
		if err := inPairs(round, step{key: "token-a", name: "token", addr: tokenAddr, next: fixed(tokenReq)},
			step{key: "token-refresh", name: "token-refresh", addr: tokenAddr, next: fixed(refreshReq)}, run); err != nil {
			return err
		}
		chains, err := newRedeemChains(refreshReq, *conns)
		if err != nil {
			return err
		}
		if err := inPairs(round, step{key: "token-b", name: "token", addr: tokenAddr, next: fixed(tokenReq)},
			step{key: "redeem", name: "redeem", addr: tokenAddr, next: chains.source}, run); err != nil {
			return err
		}
		rt := ratios{
			issue:  res["token-refresh"].rps / res["token-a"].rps,
			redeem: res["redeem"].rps / res["token-b"].rps,
		}
		all = append(all, rt)
		for key, r := range res {
			rps[key] = append(rps[key], r.rps)
			if r.bad > 0 {
				return fmt.Errorf("non-200 answers in refresh round %d: see above", round)
			}
		}
		fmt.Printf("  ratios: token-refresh/token %.3f   redeem/token %.3f\n\n", rt.issue, rt.redeem)
	}
	issue, redeem := make([]float64, len(all)), make([]float64, len(all))
	for i, r := range all {
		issue[i], redeem[i] = r.issue, r.redeem
	}
	fmt.Printf("refresh series, median of %d rounds (requests/second):\n", *rounds)
	for _, key := range []string{"token-a", "token-refresh", "token-b", "redeem"} {
		fmt.Printf("  %-14s %9.0f\n", key, median(rps[key]))
	}
	fmt.Printf("ratios (median):\n")
	fmt.Printf("  token-refresh / token   %.3f  (target >= 0.90: %s)\n", median(issue), verdict(median(issue), 0.9))
	fmt.Printf("  redeem / token          %.3f  (target >= 0.25: %s)\n\n", median(redeem), verdict(median(redeem), 0.25))
	return nil
}

func verdict(v, target float64) string {
	if v >= target {
		return "met"
	}
	return "NOT met"
}

func buildRedeem(refreshToken string) []byte {
	return buildPost(refreshClientID, "grant_type=refresh_token&refresh_token="+refreshToken)
}

// refreshToken extracts refresh_token from a token answer.
func refreshToken(body []byte) (string, bool) { return stringField(body, "refresh_token") }

// redeemChains gives each worker a refresh token of its own family (minted
// beforehand, unmeasured); each answer's refresh token is the worker's next
// request, as a client rotating its token does.
type redeemChains struct {
	mu     sync.Mutex
	tokens []string
}

func newRedeemChains(refreshReq []byte, n int) (*redeemChains, error) {
	c, err := dial(tokenAddr)
	if err != nil {
		return nil, err
	}
	defer c.close()
	ch := &redeemChains{}
	for range n {
		status, body, err := c.do(refreshReq)
		if err != nil {
			return nil, err
		}
		rt, ok := refreshToken(body)
		if status != 200 || !ok {
			return nil, fmt.Errorf("token endpoint answered %d without a refresh token: %.200s", status, body)
		}
		ch.tokens = append(ch.tokens, rt)
	}
	return ch, nil
}

func (ch *redeemChains) source() source {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	if len(ch.tokens) == 0 {
		return source{next: func() []byte { return nil }}
	}
	req := buildRedeem(ch.tokens[0])
	ch.tokens = ch.tokens[1:]
	return source{
		next: func() []byte { return req },
		answer: func(body []byte) {
			if rt, ok := refreshToken(body); ok {
				req = buildRedeem(rt)
			}
		},
	}
}

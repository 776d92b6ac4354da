package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/certmagic"

	"github.com/tokengate/tokengate/internal/issuer"
	"github.com/tokengate/tokengate/internal/revocation"
)

var (
	levels   = flag.String("revocations", "10000,100000", "state series: live revocations to measure at, ascending")
	idleTime = flag.Duration("idle", 5*time.Second, "state series: one window of idle CPU measurement (-rounds windows, median)")
)

// stateSeries measures what the size of the revocation list costs. At 0
// and at each level of -revocations (made through /oauth/revoke: tokens
// minted and revoked, unmeasured) it reports the Caddy process's CPU while
// idle (its revocation_sync ticking, median of -rounds windows), the time of a sync by a second
// instance on the same storage (this program, with the issuer's code: its
// first sync, a start, and a steady one), and the token endpoint's rate
// (median of -rounds).
// It also checks that a revocation made at Caddy is refused by the second
// instance after one sync.
func stateSeries(ctx context.Context, caddy *caddyProc, tmp string) error {
	tokenReq := buildTokenRequest()
	if _, err := mintOne(tokenReq); err != nil {
		return err
	}
	other := func() *revocation.Store {
		return revocation.New(revocation.Config{
			Storage: &certmagic.FileStorage{Path: filepath.Join(tmp, "storage")},
			Prefix:  issuer.StoragePrefix("http://" + tokenAddr),
		})
	}
	steady := other()
	if err := steady.Sync(ctx); err != nil {
		return err
	}
	made := 0
	targets := []int{0}
	for _, f := range strings.Split(*levels, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil {
			return fmt.Errorf("-revocations: %v", err)
		}
		targets = append(targets, n)
	}
	type row struct {
		n                int
		cpu              float64
		rssMB            float64
		firstSync, sync  time.Duration
		tokens, revokeRS float64
	}
	var rows []row
	for _, n := range targets {
		r := row{n: n}
		if n > made {
			start := time.Now()
			if err := revokeMany(ctx, tokenReq, n-made); err != nil {
				return err
			}
			r.revokeRS = float64(n-made) / time.Since(start).Seconds()
			made = n
			fmt.Printf("state: %d revocations made (%.0f revocations/s with minting)\n", made, r.revokeRS)
		}
		// Let Caddy's syncs catch up before measuring it idle.
		time.Sleep(2 * revocation.DefaultSyncInterval)
		var cpus []float64
		for range *rounds {
			cpu, err := idleCPU(ctx, caddy.cmd.Process.Pid, *idleTime)
			if err != nil {
				return err
			}
			cpus = append(cpus, cpu)
		}
		r.cpu = median(cpus)
		r.rssMB = rss(caddy.cmd.Process.Pid)
		// A second instance: a start (first sync) and a steady sync.
		fresh := other()
		t0 := time.Now()
		if err := fresh.Sync(ctx); err != nil {
			return err
		}
		r.firstSync = time.Since(t0)
		if err := steady.Sync(ctx); err != nil { // catch up with this level
			return err
		}
		var syncs []float64
		for range 5 {
			t0 := time.Now()
			if err := steady.Sync(ctx); err != nil {
				return err
			}
			syncs = append(syncs, float64(time.Since(t0)))
		}
		r.sync = time.Duration(median(syncs))
		// A revocation at Caddy reaches the second instance by its sync.
		jti, err := revokeOne(tokenReq)
		if err != nil {
			return err
		}
		made++
		if err := steady.Sync(ctx); err != nil {
			return err
		}
		if !steady.IsRevoked(jti) {
			return fmt.Errorf("state: a revocation made at Caddy was not seen by a second instance after its sync")
		}
		var tokens []float64
		for range *rounds {
			res, err := measure(ctx, caddy, "token", tokenAddr, fixed(tokenReq), false, "")
			if err != nil {
				return err
			}
			res.print("token")
			if res.bad > 0 {
				return fmt.Errorf("state: non-200 answers")
			}
			tokens = append(tokens, res.rps)
		}
		r.tokens = median(tokens)
		rows = append(rows, r)
		fmt.Printf("  %7d revoked: idle CPU %.2f %%, RSS %.0f MB, sync: start %v, steady %v; token %.0f req/s\n\n",
			r.n, r.cpu, r.rssMB, r.firstSync.Round(time.Microsecond), r.sync.Round(time.Microsecond), r.tokens)
	}
	fmt.Printf("state series (revocations live in storage; idle CPU of Caddy, median of %d windows of %v; sync by a second instance, median of 5; token/s median of %d):\n", *rounds, *idleTime, *rounds)
	fmt.Printf("  %9s %9s %8s %12s %12s %10s\n", "revoked", "idle CPU", "RSS MB", "first sync", "sync", "token/s")
	for _, r := range rows {
		fmt.Printf("  %9d %8.2f%% %8.0f %12v %12v %10.0f\n", r.n, r.cpu, r.rssMB,
			r.firstSync.Round(time.Microsecond), r.sync.Round(time.Microsecond), r.tokens)
	}
	last := rows[len(rows)-1]
	fmt.Printf("  at %d: idle CPU < 2 %%: %s; sync < 20 ms: %s; tokens/s %.2f of the empty list's\n\n", last.n,
		verdict(2-last.cpu, 0), verdict(float64(20*time.Millisecond-last.sync), 0), last.tokens/rows[0].tokens)
	return nil
}

// revokeMany mints n access tokens and revokes each, with -conns workers.
func revokeMany(ctx context.Context, tokenReq []byte, n int) error {
	return onConns(ctx, n, func(c *conn) error {
		_, err := c.revokeNew(tokenReq)
		return err
	})
}

func revokeOne(tokenReq []byte) (string, error) { return onOneConn(tokenReq, (*conn).revokeNew) }

// revokeNew mints an access token and revokes it; it returns its jti.
func (c *conn) revokeNew(tokenReq []byte) (string, error) {
	tok, err := c.mint(tokenReq)
	if err != nil {
		return "", fmt.Errorf("minting: %w", err)
	}
	status, body, err := c.do(buildRevoke(tok))
	if err != nil {
		return "", err
	}
	if status != 200 {
		return "", fmt.Errorf("revoking: %d %.200s", status, body)
	}
	parts := strings.Split(tok, ".")
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return "", err
	}
	var cl struct {
		JTI string `json:"jti"`
	}
	if err := json.Unmarshal(payload, &cl); err != nil {
		return "", err
	}
	return cl.JTI, nil
}

func buildRevoke(token string) []byte {
	req := buildPost(clientID, "token="+token+"&token_type_hint=access_token")
	return []byte(strings.Replace(string(req), "POST /oauth/token ", "POST /oauth/revoke ", 1))
}

// idleCPU is the share of one CPU the process used over d, from
// /proc/<pid>/stat (user + system time).
func idleCPU(ctx context.Context, pid int, d time.Duration) (float64, error) {
	t0, err := cpuTicks(pid)
	if err != nil {
		return 0, err
	}
	start := time.Now()
	select {
	case <-time.After(d):
	case <-ctx.Done():
		return 0, ctx.Err()
	}
	t1, err := cpuTicks(pid)
	if err != nil {
		return 0, err
	}
	const ticksPerSecond = 100 // USER_HZ on Linux
	return float64(t1-t0) / ticksPerSecond / time.Since(start).Seconds() * 100, nil
}

func cpuTicks(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("reading CPU time of caddy: %v", err)
	}
	// Fields after the command name, which is in parentheses.
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("parsing /proc/%d/stat", pid)
	}
	return utime + stime, nil
}

// rss is the process's resident memory in MB (0 if unknown).
func rss(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
			return kb / 1024
		}
	}
	return 0
}

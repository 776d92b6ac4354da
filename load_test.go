package tokengate_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/tokengate/tokengate/internal/testcaddy"
)

func loadConfig(storage, upstream, tokenTTL string) string {
	return fmt.Sprintf(`{
	admin off
	%s
	oauth_issuer {
		issuer http://localhost:9396
		token_ttl %s
		client svc {
			secret svc-secret
			scopes read
			audience api
			grant_types client_credentials refresh_token
		}
	}
}

:9396 {
	oauth_token
	handle /api/* {
		bearer_auth {
			audience api
		}
		reverse_proxy %s
	}
}
`, testcaddy.Storage(storage), tokenTTL, strings.TrimPrefix(upstream, "http://"))
}

// TestBoundedLoadWithReload drives the issuer and a guarded route with
// concurrent clients for a few seconds, reloads the config in the middle,
// and checks that every answer was the expected one, no refresh token was
// lost, and nothing is left running afterwards.
func TestBoundedLoadWithReload(t *testing.T) {
	storage := t.TempDir()
	up := newUpstream(t)
	// A first start and stop lets Caddy's process-wide workers start, so the
	// goroutine count after the run compares with a settled baseline.
	if err := testcaddy.Load(loadConfig(storage, up.URL, "1h")); err != nil {
		t.Fatal(err)
	}
	testcaddy.StopNow(t)
	runtime.GC()
	baseline := runtime.NumGoroutine()

	if err := testcaddy.Load(loadConfig(storage, up.URL, "1h")); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	transport := &http.Transport{MaxIdleConnsPerHost: 32}
	client := &http.Client{Transport: transport, Timeout: 10 * time.Second}
	const base = "http://localhost:9396"
	basic := []string{"Authorization", svcBasic}

	type result struct {
		unexpected  atomic.Int64
		transport   atomic.Int64 // errors that a retry did not cure
		retried     atomic.Int64 // POSTs that met a connection closed by the reload
		ok, refused atomic.Int64
		refreshes   atomic.Int64
	}
	var res result
	var firstErr sync.Once
	report := func(format string, args ...any) {
		res.unexpected.Add(1)
		firstErr.Do(func() { t.Errorf(format, args...) })
	}
	// do sends a request. A reload closes the old server's idle keep-alive
	// connections, and a POST that raced that close fails in transit (Go
	// retries only idempotent requests by itself). Such a request never
	// reached the handler, so it is sent once more, as any client would:
	// the retry must then get the expected answer — for a refresh, the
	// token must still be unredeemed, or a refresh token was lost.
	do := func(method, u, body string, hdr ...string) (int, []byte) {
		for attempt := 0; ; attempt++ {
			req, _ := http.NewRequest(method, u, strings.NewReader(body))
			if body != "" {
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			}
			for i := 0; i+1 < len(hdr); i += 2 {
				req.Header.Set(hdr[i], hdr[i+1])
			}
			resp, err := client.Do(req)
			if err != nil {
				// Each retry may pick another idle connection the reload is
				// closing, so a few are allowed.
				if attempt < 4 && method == http.MethodPost && ctx.Err() == nil {
					res.retried.Add(1)
					continue
				}
				res.transport.Add(1)
				firstErr.Do(func() { t.Errorf("transport error: %v", err) })
				return 0, nil
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			return resp.StatusCode, b
		}
	}
	token := func() (string, string) {
		status, b := do(http.MethodPost, base+"/oauth/token?grant_type=client_credentials", "", basic...)
		var ans struct {
			AccessToken  string `json:"access_token"`
			RefreshToken string `json:"refresh_token"`
		}
		if status != 200 || json.Unmarshal(b, &ans) != nil {
			if status != 0 {
				report("token: %d %s", status, b)
			}
			return "", ""
		}
		return ans.AccessToken, ans.RefreshToken
	}
	good, _ := token()
	if good == "" {
		t.FailNow()
	}
	parts := strings.Split(good, ".")
	forged := parts[0] + "." + parts[1] + "." + strings.Repeat("A", len(parts[2]))

	var wg sync.WaitGroup
	worker := func(n int, f func()) {
		for range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for ctx.Err() == nil {
					f()
				}
			}()
		}
	}
	worker(3, func() {
		if at, _ := token(); at != "" {
			res.ok.Add(1)
		}
	})
	worker(3, func() {
		if status, body := do(http.MethodGet, base+"/api/x", "", "Authorization", "Bearer "+good); status == 200 && string(body) == "hello " {
			res.ok.Add(1)
		} else if status != 0 {
			report("valid token: %d %q", status, body)
		}
	})
	worker(2, func() {
		if status, _ := do(http.MethodGet, base+"/api/x", "", "Authorization", "Bearer "+forged); status == 401 {
			res.refused.Add(1)
		} else if status != 0 {
			report("forged token: %d", status)
		}
	})
	// Refresh chains: each redemption must give the next token, across the
	// reload; a refusal would mean a lost refresh token.
	worker(2, func() {
		_, rt := token()
		for i := 0; i < 20 && rt != "" && ctx.Err() == nil; i++ {
			status, b := do(http.MethodPost, base+"/oauth/token", "grant_type=refresh_token&refresh_token="+url.QueryEscape(rt), basic...)
			var ans struct {
				RefreshToken string `json:"refresh_token"`
			}
			if status != 200 || json.Unmarshal(b, &ans) != nil || ans.RefreshToken == "" {
				if status != 0 {
					report("refresh %d of a chain: %d %s", i, status, b)
				}
				return
			}
			rt = ans.RefreshToken
			res.refreshes.Add(1)
		}
	})

	time.Sleep(1500 * time.Millisecond)
	if err := testcaddy.Load(loadConfig(storage, up.URL, "2h")); err != nil {
		t.Errorf("reload under load: %v", err)
	}
	wg.Wait()

	t.Logf("ok %d, refused forged %d, refreshes %d, unexpected %d, transport errors %d, POSTs retried after the reload closed their connection %d",
		res.ok.Load(), res.refused.Load(), res.refreshes.Load(), res.unexpected.Load(), res.transport.Load(), res.retried.Load())
	if res.ok.Load() < 50 || res.refused.Load() < 10 || res.refreshes.Load() < 10 {
		t.Errorf("too little load to mean anything")
	}
	if res.unexpected.Load() != 0 || res.transport.Load() != 0 {
		t.Errorf("%d unexpected answers, %d transport errors", res.unexpected.Load(), res.transport.Load())
	}
	// The reloaded config is the one serving.
	if at, _ := token(); at != "" {
		var claims struct{ Exp, Iat int64 }
		payload, _ := base64URLDecode(strings.Split(at, ".")[1])
		if json.Unmarshal(payload, &claims) != nil || claims.Exp-claims.Iat != 7200 {
			t.Errorf("after the reload tokens live %ds, want 7200", claims.Exp-claims.Iat)
		}
	}

	if err := caddy.Stop(); err != nil {
		t.Fatal(err)
	}
	transport.CloseIdleConnections()
	// reverse_proxy keeps idle connections to the upstream until they time
	// out; closing them from the upstream's side ends those goroutines.
	up.CloseClientConnections()
	deadline := time.Now().Add(5 * time.Second)
	for {
		runtime.GC()
		n := runtime.NumGoroutine()
		if n <= baseline+2 {
			break
		}
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("%d goroutines after the run, %d before:\n%s", n, baseline, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func base64URLDecode(s string) ([]byte, error) {
	return base64.RawURLEncoding.DecodeString(s)
}

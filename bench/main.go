// Command bench is tokengate's load test: it builds Caddy from ./cmd/caddy,
// starts it with bench/Caddyfile.bench on loopback ports 9301-9304, and
// measures, in rounds, five scenarios with the same load generator:
//
//	respond        POST to a `respond "ok"` site           (baseline of token)
//	token          POST /oauth/token, client_credentials,  a client that keeps
//	               asking, secret_hash from `caddy hash-password` (bcrypt)
//	proxy          GET through plain `reverse_proxy`        (baseline of guarded)
//	guarded-reuse  GET through bearer_auth + reverse_proxy, one token reused
//	guarded-fresh  GET through bearer_auth + reverse_proxy, every request a
//	               token the validator has never seen (minted by the token
//	               endpoint beforehand, each used once)
//
// It prints requests per second of each, the three ratios of issue 6 per
// round and their medians, and fails when any answer was not a 200. It runs
// for a bounded time (rounds × scenarios × duration plus minting) and stops
// Caddy when done, also on error or interrupt.
//
//	go run ./bench                        # 3 rounds of 4 s per scenario
//	go run ./bench -rounds 1 -duration 2s # a quick look
//	go run ./bench -profile /tmp/prof     # also CPU profiles of Caddy per scenario
//
// The load generator is a minimal HTTP/1.1 keep-alive client over raw TCP
// (pre-built requests, one connection per worker), so that as little CPU as
// possible is taken from Caddy: both share the machine's cores.
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

const (
	respondAddr = "127.0.0.1:9301"
	tokenAddr   = "127.0.0.1:9302"
	proxyAddr   = "127.0.0.1:9303"
	guardAddr   = "127.0.0.1:9304"
	adminPort   = "9399"

	clientID     = "bench-client"
	clientSecret = "bench-secret"
)

var (
	rounds    = flag.Int("rounds", 3, "measurement rounds; medians are reported")
	duration  = flag.Duration("duration", 4*time.Second, "measured time per scenario and round")
	warmup    = flag.Duration("warmup", 500*time.Millisecond, "unmeasured load before each scenario")
	conns     = flag.Int("conns", 16, "concurrent keep-alive connections (one worker each)")
	caddyBin  = flag.String("caddy", "", "Caddy binary to test (default: built from ./cmd/caddy)")
	alg       = flag.String("alg", "ES256", "signing_alg of the issuer")
	profile   = flag.String("profile", "", "directory for CPU profiles of Caddy, one per scenario (first round)")
	caddyfile = flag.String("config", "bench/Caddyfile.bench", "the bench Caddyfile")
	series    = flag.String("series", "core,refresh", "series to run, comma-separated: core, refresh, state, dpop")
)

func main() {
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context) error {
	tmp, err := os.MkdirTemp("", "tokengate-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)

	bin := *caddyBin
	if bin == "" {
		bin = filepath.Join(tmp, "caddy")
		fmt.Println("building ./cmd/caddy ...")
		build := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/caddy")
		build.Stdout, build.Stderr = os.Stdout, os.Stderr
		if err := build.Run(); err != nil {
			return fmt.Errorf("building caddy: %v", err)
		}
	}
	out, err := exec.CommandContext(ctx, bin, "hash-password", "--plaintext", clientSecret).Output()
	if err != nil {
		return fmt.Errorf("caddy hash-password: %v", err)
	}
	hash := strings.TrimSpace(string(out))

	if err := checkPortsFree(); err != nil {
		return err
	}
	stopState, err := startState(ctx, tmp)
	if err != nil {
		return err
	}
	defer stopState()
	caddy, err := startCaddy(ctx, bin, tmp, hash)
	if err != nil {
		return err
	}
	defer caddy.stop()

	printMachine(bin)
	fmt.Printf("secret_hash: bcrypt cost %s; alg %s; %d connections; %v per scenario after %v warm-up; %d rounds\n\n",
		strings.SplitN(hash, "$", 4)[2], *alg, *conns, *duration, *warmup, *rounds)

	for _, name := range strings.Split(*series, ",") {
		var err error
		switch name {
		case "core":
			err = coreSeries(ctx, caddy)
		case "refresh":
			err = refreshSeries(ctx, caddy)
		case "state":
			err = stateSeries(ctx, caddy, tmp)
		case "dpop":
			err = dpopSeries(ctx, caddy)
		default:
			err = fmt.Errorf("unknown series %q (core, refresh, state, dpop)", name)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// coreSeries measures the token endpoint and bearer_auth against Caddy's
// own baselines: the three ratios of issue 6.
func coreSeries(ctx context.Context, caddy *caddyProc) error {
	tokenReq := buildTokenRequest()
	// The client's first request pays bcrypt (about a second at cost 14);
	// the scenario measures a client that keeps asking.
	one, err := mintOne(tokenReq)
	if err != nil {
		return err
	}
	reuseReq := buildGet(guardAddr, one)
	respondReq := []byte("POST / HTTP/1.1\r\nHost: " + respondAddr + "\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 29\r\n\r\ngrant_type=client_credentials")
	proxyReq := buildGet(proxyAddr, "")

	var pool tokenPool
	type ratios struct{ token, reuse, fresh float64 }
	var all []ratios
	var rps = map[string][]float64{}
	for round := 1; round <= *rounds; round++ {
		fmt.Printf("round %d\n", round)
		prof := ""
		if round == 1 {
			prof = *profile
		}
		// Each ratio is measured as an adjacent pair (baseline, subject),
		// in alternating order from round to round, so that load from
		// elsewhere on the machine drifts into both sides alike.
		res := map[string]result{}
		run := func(s step) error {
			r, err := measure(ctx, caddy, s.name, s.addr, s.next, s.keep, prof)
			if err != nil {
				return err
			}
			if pool.exhausted.Load() {
				return errors.New(s.name + ": the token pool ran dry (a token would have been reused)")
			}
			res[s.key] = r
			pool.add(r.tokens)
			r.print(s.name)
			return nil
		}
		pair := func(a, b step) error { return inPairs(round, a, b, run) }
		if err := pair(step{"respond", "respond", respondAddr, fixed(respondReq), false},
			step{"token", "token", tokenAddr, fixed(tokenReq), true}); err != nil {
			return err
		}
		if err := pair(step{"proxy-a", "proxy", proxyAddr, fixed(proxyReq), false},
			step{"guarded-reuse", "guarded-reuse", guardAddr, fixed(reuseReq), false}); err != nil {
			return err
		}
		// Fresh tokens: more than the plain proxy could possibly serve in
		// the scenario, so the pool cannot run dry while measuring.
		need := int(res["proxy-a"].rps*(duration.Seconds()+warmup.Seconds())*1.5) + 1000
		if err := pool.fill(ctx, tokenReq, need); err != nil {
			return err
		}
		if err := pair(step{"proxy-b", "proxy", proxyAddr, fixed(proxyReq), false},
			step{"guarded-fresh", "guarded-fresh", guardAddr, pool.source, false}); err != nil {
			return err
		}

		rt := ratios{
			token: res["token"].rps / res["respond"].rps,
			reuse: res["guarded-reuse"].rps / res["proxy-a"].rps,
			fresh: res["guarded-fresh"].rps / res["proxy-b"].rps,
		}
		all = append(all, rt)
		for name, r := range res {
			name = strings.TrimSuffix(strings.TrimSuffix(name, "-a"), "-b")
			rps[name] = append(rps[name], r.rps)
		}
		fmt.Printf("  ratios: token/respond %.3f   guarded-reuse/proxy %.3f   guarded-fresh/proxy %.3f\n\n", rt.token, rt.reuse, rt.fresh)
		for _, r := range res {
			if r.bad > 0 {
				return fmt.Errorf("non-200 answers in round %d: see above", round)
			}
		}
	}

	med := func(f func(ratios) float64) float64 {
		v := make([]float64, len(all))
		for i, r := range all {
			v[i] = f(r)
		}
		return median(v)
	}
	fmt.Printf("median of %d rounds (requests/second):\n", *rounds)
	for _, name := range []string{"respond", "token", "proxy", "guarded-reuse", "guarded-fresh"} {
		fmt.Printf("  %-14s %9.0f\n", name, median(rps[name]))
	}
	t, ru, fr := med(func(r ratios) float64 { return r.token }), med(func(r ratios) float64 { return r.reuse }), med(func(r ratios) float64 { return r.fresh })
	fmt.Printf("ratios (median):\n")
	fmt.Printf("  token / respond         %.3f  (target >= 0.50: %s)\n", t, verdict(t, 0.5))
	fmt.Printf("  guarded-reuse / proxy   %.3f  (target >= 0.95: %s)\n", ru, verdict(ru, 0.95))
	fmt.Printf("  guarded-fresh / proxy   %.3f  (target >= 0.60: %s)\n", fr, verdict(fr, 0.6))
	fmt.Printf("  non-200 answers: 0\n")
	return nil
}

// step is one scenario of a pair: key names its result, name is printed.
type step struct {
	key, name, addr string
	next            func() source
	keep            bool // keep the access tokens answered (token pool)
}

// inPairs runs a baseline and its subject back to back, in alternating
// order from round to round, so that load from elsewhere on the machine
// drifts into both sides alike.
func inPairs(round int, a, b step, run func(step) error) error {
	if round%2 == 0 {
		a, b = b, a
	}
	for _, s := range []step{a, b} {
		if err := run(s); err != nil {
			return err
		}
	}
	return nil
}

// source gives one worker its requests: next returns the request to send
// (nil to stop), answer, when set, sees the body of each 200 answer.
type source struct {
	next   func() []byte
	answer func(body []byte)
}

// fixed sends the same request from every worker.
func fixed(b []byte) func() source {
	return func() source { return source{next: func() []byte { return b }} }
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func printMachine(bin string) {
	cpu := "unknown"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(l, "model name") {
				cpu = strings.TrimSpace(strings.SplitN(l, ":", 2)[1])
				break
			}
		}
	}
	ver, _ := exec.Command(bin, "version").Output()
	fmt.Printf("machine: %d CPUs (%s), %s %s/%s; caddy %s\n", runtime.NumCPU(), cpu, runtime.Version(), runtime.GOOS, runtime.GOARCH, strings.TrimSpace(string(ver)))
}

// --- Caddy process ---

type caddyProc struct {
	cmd  *exec.Cmd
	done chan struct{}
	log  string
}

func startCaddy(ctx context.Context, bin, tmp, hash string) (*caddyProc, error) {
	storage := filepath.Join(tmp, "storage")
	if err := os.MkdirAll(storage, 0o700); err != nil {
		return nil, err
	}
	logPath := filepath.Join(tmp, "caddy.log")
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "run", "--config", *caddyfile, "--adapter", "caddyfile")
	cmd.Env = append(os.Environ(),
		"TG_BENCH_STORAGE="+storage,
		"TG_BENCH_HASH="+hash,
		"TG_BENCH_ALG="+*alg,
		"TG_BENCH_ADMIN_PORT="+adminPort,
		"XDG_DATA_HOME="+filepath.Join(tmp, "data"),
		"XDG_CONFIG_HOME="+filepath.Join(tmp, "config"),
	)
	cmd.Env = append(cmd.Env, extraEnv...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting caddy: %v", err)
	}
	p := &caddyProc{cmd: cmd, done: make(chan struct{}), log: logPath}
	go func() { cmd.Wait(); logf.Close(); close(p.done) }()
	go func() {
		select {
		case <-ctx.Done():
			p.stop()
		case <-p.done:
		}
	}()
	deadline := time.Now().Add(30 * time.Second)
	for _, addr := range []string{respondAddr, tokenAddr, proxyAddr, guardAddr} {
		for {
			c, err := net.DialTimeout("tcp", addr, time.Second)
			if err == nil {
				c.Close()
				break
			}
			select {
			case <-p.done:
				b, _ := os.ReadFile(logPath)
				return nil, fmt.Errorf("caddy exited:\n%s", b)
			default:
			}
			if time.Now().After(deadline) {
				p.stop()
				return nil, fmt.Errorf("caddy did not listen on %s in time", addr)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	return p, nil
}

func (p *caddyProc) stop() {
	select {
	case <-p.done:
		return
	default:
	}
	p.cmd.Process.Signal(os.Interrupt)
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
		p.cmd.Process.Kill()
		<-p.done
	}
}

// startProfile asks Caddy's admin endpoint for a CPU profile of d.
func startProfile(dir, name string, d time.Duration) func() error {
	errc := make(chan error, 1)
	go func() {
		url := fmt.Sprintf("http://localhost:%s/debug/pprof/profile?seconds=%d", adminPort, int(d.Seconds()))
		resp, err := http.Get(url)
		if err != nil {
			errc <- err
			return
		}
		defer resp.Body.Close()
		if err := os.MkdirAll(dir, 0o755); err != nil {
			errc <- err
			return
		}
		f, err := os.Create(filepath.Join(dir, name+".pprof"))
		if err != nil {
			errc <- err
			return
		}
		_, err = io.Copy(f, resp.Body)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		errc <- err
	}()
	return func() error { return <-errc }
}

// --- requests ---

func buildTokenRequest() []byte { return buildPost(clientID, "grant_type=client_credentials") }

// buildPost is a token endpoint request of client id with this form body.
func buildPost(id, body string) []byte {
	basic := base64.StdEncoding.EncodeToString([]byte(id + ":" + clientSecret))
	return []byte("POST /oauth/token HTTP/1.1\r\nHost: " + tokenAddr +
		"\r\nAuthorization: Basic " + basic +
		"\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: " + strconv.Itoa(len(body)) +
		"\r\n\r\n" + body)
}

func buildGet(addr, token string) []byte {
	auth := ""
	if token != "" {
		auth = "Authorization: Bearer " + token + "\r\n"
	}
	return []byte("GET /reports/q1 HTTP/1.1\r\nHost: " + addr + "\r\n" + auth + "\r\n")
}

// accessToken extracts access_token from a token answer.
func accessToken(body []byte) (string, bool) { return stringField(body, "access_token") }

// stringField extracts a string member of a token answer (whose values need
// no JSON unescaping).
func stringField(body []byte, name string) (string, bool) {
	key := `"` + name + `":"`
	i := bytes.Index(body, []byte(key))
	if i < 0 {
		return "", false
	}
	rest := body[i+len(key):]
	j := bytes.IndexByte(rest, '"')
	if j < 0 {
		return "", false
	}
	return string(rest[:j]), true
}

func mintOne(req []byte) (string, error) { return onOneConn(req, (*conn).mint) }

// onOneConn does one call of f on a token-endpoint connection of its own.
func onOneConn(req []byte, f func(c *conn, req []byte) (string, error)) (string, error) {
	c, err := dial(tokenAddr)
	if err != nil {
		return "", err
	}
	defer c.close()
	return f(c, req)
}

// mint asks the token endpoint for an access token over c.
func (c *conn) mint(req []byte) (string, error) {
	status, body, err := c.do(req)
	if err != nil {
		return "", err
	}
	tok, ok := accessToken(body)
	if status != 200 || !ok {
		return "", fmt.Errorf("token endpoint answered %d: %.200s", status, body)
	}
	return tok, nil
}

// tokenPool hands out tokens, each once.
type tokenPool struct {
	mu        sync.Mutex
	reqs      [][]byte // GET requests to the guarded route, one per token
	pos       int
	exhausted atomic.Bool
}

func (p *tokenPool) add(tokens []string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, t := range tokens {
		p.reqs = append(p.reqs, buildGet(guardAddr, t))
	}
}

func (p *tokenPool) unused() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.reqs) - p.pos
}

// source hands every worker the pool's tokens.
func (p *tokenPool) source() source { return source{next: p.next} }

// next returns a request with an unused token; nil when none is left.
func (p *tokenPool) next() []byte {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.pos == len(p.reqs) {
		p.exhausted.Store(true)
		return nil
	}
	r := p.reqs[p.pos]
	p.reqs[p.pos] = nil
	p.pos++
	return r
}

// fill mints tokens from the token endpoint (unmeasured) until n are unused.
func (p *tokenPool) fill(ctx context.Context, tokenReq []byte, n int) error {
	missing := n - p.unused()
	if missing <= 0 {
		return nil
	}
	fmt.Printf("  (minting %d more tokens for guarded-fresh)\n", missing)
	return onConns(ctx, missing, func(c *conn) error {
		tok, err := c.mint(tokenReq)
		if err != nil {
			return fmt.Errorf("minting: %w", err)
		}
		p.add([]string{tok})
		return nil
	})
}

// onConns does n calls of one unmeasured piece of work spread over -conns
// connections to the token endpoint; it stops at the first error or when
// ctx ends.
func onConns(ctx context.Context, n int, work func(c *conn) error) error {
	var left atomic.Int64
	left.Store(int64(n))
	var wg sync.WaitGroup
	errc := make(chan error, *conns)
	for range *conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := dial(tokenAddr)
			if err != nil {
				errc <- err
				return
			}
			defer c.close()
			for left.Add(-1) >= 0 && ctx.Err() == nil {
				if err := work(c); err != nil {
					errc <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errc)
	if err := <-errc; err != nil {
		return err
	}
	return ctx.Err()
}

// --- load generator ---

type result struct {
	rps    float64
	n      int64
	status map[int]int64
	bad    int64 // non-200 answers and transport errors
	errs   []string
	tokens []string // access tokens answered (token scenario)
}

func (r result) print(name string) {
	codes := make([]string, 0, len(r.status))
	for code, n := range r.status {
		codes = append(codes, fmt.Sprintf("%d×%d", n, code))
	}
	slices.Sort(codes)
	fmt.Printf("  %-14s %9.0f req/s  (%s)\n", name, r.rps, strings.Join(codes, " "))
	for _, e := range r.errs {
		fmt.Printf("    error: %s\n", e)
	}
}

// measure runs the workers against addr for the warm-up and the measured
// duration. Only answers completed inside the measured window count.
func measure(ctx context.Context, caddy *caddyProc, name, addr string, newSource func() source, keepTokens bool, profDir string) (result, error) {
	var phase atomic.Int32 // 0 warm-up, 1 measuring, 2 done
	type worker struct {
		n      int64
		status map[int]int64
		bad    int64
		err    string
		tokens []string
	}
	ws := make([]*worker, *conns)
	var wg sync.WaitGroup
	for i := range ws {
		w := &worker{status: map[int]int64{}}
		ws[i] = w
		wg.Add(1)
		src := newSource()
		go func() {
			defer wg.Done()
			c, err := dial(addr)
			if err != nil {
				w.err, w.bad = err.Error(), 1
				return
			}
			defer func() { c.close() }()
			for {
				ph := phase.Load()
				if ph == 2 {
					return
				}
				req := src.next()
				if req == nil {
					return
				}
				status, body, err := c.do(req)
				if err == nil && status == 200 && src.answer != nil {
					src.answer(body)
				}
				if err == nil && c.dead {
					c.close()
					if c, err = dial(addr); err != nil {
						w.bad++
						w.err = err.Error()
						return
					}
				}
				if phase.Load() != 1 {
					if err != nil || status != 200 {
						if ph == 0 { // warm-up answers must be good too
							w.bad++
							w.err = fmt.Sprintf("warm-up: status %d %v", status, err)
						}
					}
					if err != nil {
						c.close()
						if c, err = dial(addr); err != nil {
							return
						}
					}
					continue
				}
				if err != nil {
					w.bad++
					w.err = err.Error()
					c.close()
					if c, err = dial(addr); err != nil {
						return
					}
					continue
				}
				w.n++
				w.status[status]++
				if status != 200 {
					w.bad++
					w.err = fmt.Sprintf("status %d: %.200s", status, body)
				} else if keepTokens {
					if tok, ok := accessToken(body); ok {
						w.tokens = append(w.tokens, tok)
					}
				}
			}
		}()
	}
	select {
	case <-time.After(*warmup):
	case <-ctx.Done():
	}
	var profDone func() error
	if profDir != "" {
		profDone = startProfile(profDir, name, *duration)
	}
	phase.Store(1)
	start := time.Now()
	select {
	case <-time.After(*duration):
	case <-ctx.Done():
	}
	phase.Store(2)
	elapsed := time.Since(start)
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return result{}, err
	}
	if profDone != nil {
		if err := profDone(); err != nil {
			return result{}, fmt.Errorf("profiling: %v", err)
		}
	}
	r := result{status: map[int]int64{}}
	for _, w := range ws {
		r.n += w.n
		r.bad += w.bad
		for k, v := range w.status {
			r.status[k] += v
		}
		if w.err != "" {
			r.errs = append(r.errs, w.err)
		}
		r.tokens = append(r.tokens, w.tokens...)
	}
	r.rps = float64(r.n) / elapsed.Seconds()
	select {
	case <-caddy.done:
		return r, errors.New("caddy exited during " + name)
	default:
	}
	return r, nil
}

// conn is a keep-alive HTTP/1.1 client connection.
type conn struct {
	c    net.Conn
	br   *bufio.Reader
	buf  []byte
	dead bool // the server said Connection: close
}

func dial(addr string) (*conn, error) {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, err
	}
	return &conn{c: c, br: bufio.NewReaderSize(c, 16<<10)}, nil
}

func (c *conn) close() { c.c.Close() }

// do sends one request and reads its answer. The body is valid until the
// next call.
func (c *conn) do(req []byte) (int, []byte, error) {
	c.c.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := c.c.Write(req); err != nil {
		return 0, nil, err
	}
	line, err := c.br.ReadSlice('\n')
	if err != nil {
		return 0, nil, err
	}
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) {
		return 0, nil, fmt.Errorf("bad status line %q", line)
	}
	status, err := strconv.Atoi(string(line[9:12]))
	if err != nil {
		return 0, nil, fmt.Errorf("bad status line %q", line)
	}
	length, chunked, closeAfter := -1, false, false
	for {
		line, err := c.br.ReadSlice('\n')
		if err != nil {
			return 0, nil, err
		}
		line = bytes.TrimRight(line, "\r\n")
		if len(line) == 0 {
			break
		}
		name, val, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			continue
		}
		val = bytes.TrimSpace(val)
		switch {
		case bytes.EqualFold(name, []byte("Content-Length")):
			if length, err = strconv.Atoi(string(val)); err != nil {
				return 0, nil, fmt.Errorf("bad Content-Length %q", val)
			}
		case bytes.EqualFold(name, []byte("Transfer-Encoding")):
			chunked = bytes.EqualFold(val, []byte("chunked"))
		case bytes.EqualFold(name, []byte("Connection")):
			closeAfter = bytes.EqualFold(val, []byte("close"))
		}
	}
	c.buf = c.buf[:0]
	switch {
	case chunked:
		for {
			line, err := c.br.ReadSlice('\n')
			if err != nil {
				return 0, nil, err
			}
			size, err := strconv.ParseInt(string(bytes.TrimSpace(bytes.SplitN(line, []byte(";"), 2)[0])), 16, 64)
			if err != nil {
				return 0, nil, fmt.Errorf("bad chunk size %q", line)
			}
			if size == 0 {
				for { // trailers
					l, err := c.br.ReadSlice('\n')
					if err != nil {
						return 0, nil, err
					}
					if len(bytes.TrimRight(l, "\r\n")) == 0 {
						break
					}
				}
				break
			}
			c.buf = slices.Grow(c.buf, int(size))
			n := len(c.buf)
			c.buf = c.buf[:n+int(size)]
			if _, err := io.ReadFull(c.br, c.buf[n:]); err != nil {
				return 0, nil, err
			}
			if _, err := c.br.Discard(2); err != nil {
				return 0, nil, err
			}
		}
	case length >= 0:
		c.buf = slices.Grow(c.buf, length)[:length]
		if _, err := io.ReadFull(c.br, c.buf); err != nil {
			return 0, nil, err
		}
	default:
		return 0, nil, errors.New("answer without length")
	}
	c.dead = closeAfter
	return status, c.buf, nil
}

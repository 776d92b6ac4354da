package main

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/tokengate/tokengate/internal/dpoptest"
)

// dpopAddr is the route that requires DPoP-bound tokens.
const dpopAddr = "127.0.0.1:9305"

// dpopSeries measures bearer_auth with DPoP (issue 16: >= 0.5 of the plain
// proxy) as one adjacent pair per round:
//
//	proxy / guarded-dpop   one DPoP-bound token, reused, and a fresh proof
//	                       (new jti, signed by the client's ES256 key) on
//	                       every request
//
// The proofs are signed before the pair runs, unmeasured: signing them
// while measuring would take the load generator's CPU from Caddy. Each is
// sent once; the script fails if the supply runs dry. They are all made
// within the checker's 60 s iat window of their use.
func dpopSeries(ctx context.Context, caddy *caddyProc) error {
	key, err := dpoptest.NewKey("ES256")
	if err != nil {
		return err
	}
	tokenURL := "http://" + tokenAddr + "/oauth/token"
	req := buildTokenRequest()
	// The DPoP header goes with the token request's other headers.
	proof := key.Proof("POST", tokenURL, "", time.Now())
	req = insertHeader(req, "DPoP: "+proof)
	tok, err := mintOne(req)
	if err != nil {
		return err
	}
	proxyReq := buildGet(proxyAddr, "")
	htu := "http://" + dpopAddr + "/reports/q1"
	var all []float64
	rps := map[string][]float64{}
	for round := 1; round <= *rounds; round++ {
		fmt.Printf("dpop round %d\n", round)
		res := map[string]result{}
		var pool *proofPool
		prof := ""
		if round == 1 {
			prof = *profile
		}
		run := func(s step) error {
			if s.key == "guarded-dpop" {
				// Made just before use: the proofs' iat must stay within the window.
				p, err := newProofPool(key, tok, htu, res["proxy"].rps)
				if err != nil {
					return err
				}
				pool = p
				s.next = func() source { return source{next: pool.next} }
			}
			r, err := measure(ctx, caddy, s.name, s.addr, s.next, false, prof)
			if err != nil {
				return err
			}
			res[s.key] = r
			r.print(s.name)
			if pool != nil && pool.dry {
				return errors.New("guarded-dpop: the proof supply ran dry (a proof would have been reused)")
			}
			return nil
		}
		if err := inPairs(round, step{key: "proxy", name: "proxy", addr: proxyAddr, next: fixed(proxyReq)},
			step{key: "guarded-dpop", name: "guarded-dpop", addr: dpopAddr}, run); err != nil {
			return err
		}
		for name, r := range res {
			if r.bad > 0 {
				return fmt.Errorf("non-200 answers in dpop round %d: see above", round)
			}
			rps[name] = append(rps[name], r.rps)
		}
		ratio := res["guarded-dpop"].rps / res["proxy"].rps
		all = append(all, ratio)
		fmt.Printf("  ratio: guarded-dpop/proxy %.3f\n\n", ratio)
	}
	fmt.Printf("dpop series, median of %d rounds (requests/second):\n", *rounds)
	for _, name := range []string{"proxy", "guarded-dpop"} {
		fmt.Printf("  %-14s %9.0f\n", name, median(rps[name]))
	}
	m := median(all)
	fmt.Printf("  guarded-dpop / proxy    %.3f  (target >= 0.50: %s)\n", m, verdict(m, 0.5))
	return nil
}

// proofPool hands out requests, each with a proof of its own.
type proofPool struct {
	mu   sync.Mutex
	reqs [][]byte
	pos  int
	dry  bool
}

// newProofPool signs enough proofs for a scenario: more than the plain
// proxy served per second (when it ran first; else a generous guess)
// times the scenario's length.
func newProofPool(key *dpoptest.Key, tok, htu string, proxyRPS float64) (*proofPool, error) {
	if proxyRPS == 0 {
		proxyRPS = 20000
	}
	n := int(proxyRPS*(duration.Seconds()+warmup.Seconds())*1.5) + 1000
	fmt.Printf("  (signing %d DPoP proofs for guarded-dpop)\n", n)
	p := &proofPool{reqs: make([][]byte, n)}
	var wg sync.WaitGroup
	workers := runtime.NumCPU()
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += workers {
				proof := key.Proof("GET", htu, tok, time.Now())
				p.reqs[i] = []byte("GET /reports/q1 HTTP/1.1\r\nHost: " + dpopAddr + "\r\nAuthorization: DPoP " + tok + "\r\nDPoP: " + proof + "\r\n\r\n")
			}
		}()
	}
	wg.Wait()
	return p, nil
}

func (p *proofPool) next() []byte {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.pos == len(p.reqs) {
		p.dry = true
		return nil
	}
	r := p.reqs[p.pos]
	p.reqs[p.pos] = nil
	p.pos++
	return r
}

// insertHeader adds a header line to a raw HTTP request.
func insertHeader(req []byte, line string) []byte {
	return []byte(strings.Replace(string(req), "\r\n\r\n", "\r\n"+line+"\r\n\r\n", 1))
}

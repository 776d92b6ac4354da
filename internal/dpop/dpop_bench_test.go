package dpop

import (
	"testing"
	"time"

	"github.com/tokengate/tokengate/internal/dpoptest"
)

// BenchmarkCheck is the gate's cost of one fresh ES256 proof with a token
// (the key already in the key cache, as for a client's second request).
func BenchmarkCheck(b *testing.B) {
	k, err := dpoptest.NewKey("ES256")
	if err != nil {
		b.Fatal(err)
	}
	now := time.Unix(1_800_000_000, 0)
	c, err := New(Config{Now: func() time.Time { return now }})
	if err != nil {
		b.Fatal(err)
	}
	proofs := make([]string, b.N+1)
	for i := range proofs {
		proofs[i] = k.Proof("GET", testURL, testToken, now)
	}
	req := Request{Method: "GET", URL: testURL, AccessToken: testToken}
	if _, err := c.Check(proofs[b.N], req); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := c.Check(proofs[i], req); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCheckFirstProof is the cost of a key's first proof: its JWK is
// read and thumbprinted before the key cache holds it (a new key for each
// proof; 1,000 keys, fewer than the cache holds, are reused round robin
// after the cache is emptied between rounds).
func BenchmarkCheckFirstProof(b *testing.B) {
	now := time.Unix(1_800_000_000, 0)
	c, err := New(Config{Now: func() time.Time { return now }})
	if err != nil {
		b.Fatal(err)
	}
	keys := make([]*dpoptest.Key, 1000)
	for i := range keys {
		if keys[i], err = dpoptest.NewKey("ES256"); err != nil {
			b.Fatal(err)
		}
	}
	proofs := make([]string, b.N)
	for i := range proofs {
		proofs[i] = keys[i%len(keys)].Proof("GET", testURL, testToken, now)
	}
	req := Request{Method: "GET", URL: testURL, AccessToken: testToken}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if i%len(keys) == 0 {
			b.StopTimer()
			keyCache.m.Store(nil)
			b.StartTimer()
		}
		if _, err := c.Check(proofs[i], req); err != nil {
			b.Fatal(err)
		}
	}
}

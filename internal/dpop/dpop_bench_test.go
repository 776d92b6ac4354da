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

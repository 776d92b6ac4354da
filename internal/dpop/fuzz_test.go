package dpop

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"testing"
	"time"

	"github.com/tokengate/tokengate/internal/dpoptest"
)

// FuzzCheck feeds arbitrary proofs to the checker: it must never panic,
// and whatever it accepts must be a proof the test key signed.
func FuzzCheck(f *testing.F) {
	// A fixed key: seeds made by the coordinator must verify in workers.
	priv, err := ecdsa.ParseRawPrivateKey(elliptic.P256(), bytes.Repeat([]byte{7}, 32))
	if err != nil {
		f.Fatal(err)
	}
	k, err := dpoptest.FromSigner("ES256", priv)
	if err != nil {
		f.Fatal(err)
	}
	now := time.Unix(1_800_000_000, 0)
	f.Add(k.Proof("GET", testURL, testToken, now))
	f.Add(k.SignPayload([]byte(`{"jti":"a","htm":"GET","htu":"`+testURL+`","iat":1800000000,"ath":"x"}`), map[string]any{"kid": "z"}))
	f.Add("e30.e30.e30")
	c, err := New(Config{Now: func() time.Time { return now }})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, proof string) {
		p, err := c.Check(proof, Request{Method: "GET", URL: testURL, AccessToken: testToken})
		if err == nil && p.JKT != k.JKT() {
			t.Fatalf("accepted a proof of another key: %q", proof)
		}
	})
}

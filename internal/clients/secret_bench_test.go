package clients

import (
	"testing"

	"golang.org/x/crypto/bcrypt"
)

// benchCost is the bcrypt cost of the uncached benchmark. `caddy
// hash-password` uses 14, which takes 16 times as long (about a second);
// each step of cost doubles the time.
const benchCost = 10

func benchRegistry(b *testing.B, cost int) *Registry {
	b.Helper()
	hash, err := bcrypt.GenerateFromPassword([]byte("bench-secret"), cost)
	if err != nil {
		b.Fatal(err)
	}
	r, err := NewRegistry([]*Config{
		{ClientID: "hashed", SecretHash: string(hash)},
		{ClientID: "plain", Secret: "bench-secret"},
	})
	if err != nil {
		b.Fatal(err)
	}
	return r
}

// BenchmarkAuthenticate is the secret check of the token endpoint: a
// hashed secret remembered from an earlier success (a client that keeps
// asking), a plain secret, and a hashed secret checked anew.
func BenchmarkAuthenticate(b *testing.B) {
	b.Run("hash-cached", func(b *testing.B) {
		r := benchRegistry(b, bcrypt.MinCost)
		if _, err := r.Authenticate("hashed", "bench-secret", nil); err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		for b.Loop() {
			if _, err := r.Authenticate("hashed", "bench-secret", nil); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("plain", func(b *testing.B) {
		r := benchRegistry(b, bcrypt.MinCost)
		b.ReportAllocs()
		for b.Loop() {
			if _, err := r.Authenticate("plain", "bench-secret", nil); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("bcrypt-uncached-cost10", func(b *testing.B) {
		r := benchRegistry(b, benchCost)
		b.ReportAllocs()
		for b.Loop() {
			// A wrong secret is never cached, so every call hashes.
			if _, err := r.Authenticate("hashed", "wrong-secret", nil); err != ErrInvalidClient {
				b.Fatal(err)
			}
		}
	})
}

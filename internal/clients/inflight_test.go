package clients

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp/caddyauth"
	"golang.org/x/crypto/bcrypt"
)

// slowComparer counts compares and takes a while, like bcrypt at cost 14.
type slowComparer struct {
	caddyauth.Comparer
	calls atomic.Int32
}

func (s *slowComparer) Compare(hashed, plain []byte) (bool, error) {
	s.calls.Add(1)
	time.Sleep(50 * time.Millisecond)
	return s.Comparer.Compare(hashed, plain)
}

// TestConcurrentChecksShareOneHash: requests of a busy client arriving
// together on an empty cache pay for one hash check, not one each.
func TestConcurrentChecksShareOneHash(t *testing.T) {
	hash, err := bcrypt.GenerateFromPassword([]byte("s3cret"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	r, err := NewRegistry([]*Config{{ClientID: "busy", SecretHash: string(hash)}})
	if err != nil {
		t.Fatal(err)
	}
	slow := &slowComparer{Comparer: r.byID["busy"].comparer}
	r.byID["busy"].comparer = slow

	var wg sync.WaitGroup
	var failures atomic.Int32
	start := make(chan struct{})
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			if _, err := r.Authenticate("busy", "s3cret"); err != nil {
				failures.Add(1)
			}
		}()
	}
	close(start)
	wg.Wait()
	if failures.Load() != 0 {
		t.Fatalf("%d of 20 concurrent checks failed", failures.Load())
	}
	if n := slow.calls.Load(); n > 2 {
		t.Errorf("20 concurrent checks ran the hash %d times, want 1 (2 at most if one arrived after the first finished)", n)
	}
	// A wrong secret sent concurrently is still refused, for every request.
	var refused atomic.Int32
	for range 5 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := r.Authenticate("busy", "wrong"); err == ErrInvalidClient {
				refused.Add(1)
			}
		}()
	}
	wg.Wait()
	if refused.Load() != 5 {
		t.Errorf("wrong secret refused %d of 5 times", refused.Load())
	}
}

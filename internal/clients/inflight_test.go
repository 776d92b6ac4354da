package clients

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/tokengate/tokengate/internal/testsync"
)

// TestConcurrentChecksShareOneHash: requests of a busy client arriving
// together on an empty cache pay for one hash check, not one each.
func TestConcurrentChecksShareOneHash(t *testing.T) {
	// Slow like bcrypt at cost 14.
	r, slow := hashedRegistry(t, 50*time.Millisecond)

	var failures atomic.Int32
	testsync.AtOnce(20, func(int) {
		if _, err := r.Authenticate("c", "s3cret", nil); err != nil {
			failures.Add(1)
		}
	})
	if failures.Load() != 0 {
		t.Fatalf("%d of 20 concurrent checks failed", failures.Load())
	}
	if n := slow.calls.Load(); n > 2 {
		t.Errorf("20 concurrent checks ran the hash %d times, want 1 (2 at most if one arrived after the first finished)", n)
	}
	// A wrong secret sent concurrently is still refused, for every request.
	var refused atomic.Int32
	testsync.AtOnce(5, func(int) {
		if _, err := r.Authenticate("c", "wrong", nil); err == ErrInvalidClient {
			refused.Add(1)
		}
	})
	if refused.Load() != 5 {
		t.Errorf("wrong secret refused %d of 5 times", refused.Load())
	}
}

// Package seenonce is a bounded set of values that may each be accepted
// once within a retention time: the jti of DPoP proofs (internal/dpop) and
// of client assertions (internal/clientauth).
//
// It lives in one process. Values are kept as 16-byte SHA-256 prefixes in
// two generations: entries go into the current one, which becomes the
// previous one once it is older than the retention, and the previous one is
// then dropped whole. An entry is so kept at least its retention and at
// most twice it, at a cost of one map insert per value and no sweeping.
// When the set is full, new values are refused (fail closed: forgetting a
// recent value would let it be replayed).
package seenonce

import (
	"crypto/sha256"
	"errors"
	"sync"
)

var (
	// ErrSeen is returned for a value already accepted.
	ErrSeen = errors.New("already seen")
	// ErrFull is returned when the set holds its maximum.
	ErrFull = errors.New("too many recent values")
)

// Set remembers values for at least Retention seconds.
type Set struct {
	mu        sync.Mutex
	cur, prev map[[16]byte]struct{}
	started   int64 // when cur began, Unix seconds
	max       int
	retention int64
}

// New makes a set of at most max values, each kept at least retention
// seconds.
func New(max int, retention int64) *Set {
	return &Set{cur: map[[16]byte]struct{}{}, prev: map[[16]byte]struct{}{}, max: max, retention: retention}
}

// Add records the value made of parts (joined unambiguously), refusing
// one already recorded. now is the time in Unix seconds.
func (s *Set) Add(now int64, parts ...string) error {
	h := sha256.New()
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	var key [16]byte
	copy(key[:], h.Sum(nil))
	s.mu.Lock()
	defer s.mu.Unlock()
	if now-s.started >= s.retention || now < s.started {
		// A clock set back also rotates: entries may then be kept less
		// long, but never for ever.
		s.prev, s.cur, s.started = s.cur, make(map[[16]byte]struct{}, len(s.cur)), now
	}
	if _, ok := s.cur[key]; ok {
		return ErrSeen
	}
	if _, ok := s.prev[key]; ok {
		return ErrSeen
	}
	if len(s.cur)+len(s.prev) >= s.max {
		return ErrFull
	}
	s.cur[key] = struct{}{}
	return nil
}

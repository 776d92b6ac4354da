package dpop

import (
	"crypto/sha256"
	"sync"
)

// MaxRecentProofs bounds the replay set. A proof is recorded only after
// its signature verified, so filling the set costs a caller one valid
// signature per entry and this process one verification; at the default
// window (entries kept 2 to 4 minutes) it takes over 4,000 fresh proofs a
// second, sustained, which is about what a core can verify. When it is full
// new proofs are refused (fail closed: forgetting a recent proof would
// let it be replayed) until the oldest generation is dropped.
const MaxRecentProofs = 1 << 20

// replaySet remembers the (key, jti) pairs of recent proofs in two
// generations: entries go into the current one, which becomes the previous
// one once it is older than the retention asked for, and the previous one
// is then dropped whole. An entry is so kept at least its retention and at
// most twice it, at a cost of one map insert per proof and no sweeping.
type replaySet struct {
	mu        sync.Mutex
	cur, prev map[[16]byte]struct{}
	started   int64 // when cur began, Unix seconds
	max       int
}

// shared is the replay set of every Checker of the process, so that a
// proof used at one route is refused at every other. A package variable,
// not a caddy.UsagePool entry: what it holds is about this process, not a
// config, and must outlive every config reload.
var shared = newReplaySet(MaxRecentProofs)

func newReplaySet(max int) *replaySet {
	return &replaySet{cur: map[[16]byte]struct{}{}, prev: map[[16]byte]struct{}{}, max: max}
}

// add records the proof of key jkt with this jti, refusing one already
// recorded. retention is how long (in seconds) it must be remembered.
func (s *replaySet) add(jkt, jti string, now, retention int64) error {
	h := sha256.New()
	h.Write([]byte(jkt))
	h.Write([]byte{0})
	h.Write([]byte(jti))
	var key [16]byte
	copy(key[:], h.Sum(nil))
	s.mu.Lock()
	defer s.mu.Unlock()
	if now-s.started >= retention || now < s.started {
		// A clock set back also rotates: entries may then be kept less
		// long, but never for ever.
		s.prev, s.cur, s.started = s.cur, make(map[[16]byte]struct{}, len(s.cur)), now
	}
	if _, ok := s.cur[key]; ok {
		return errReplayed
	}
	if _, ok := s.prev[key]; ok {
		return errReplayed
	}
	if len(s.cur)+len(s.prev) >= s.max {
		return errReplayFull
	}
	s.cur[key] = struct{}{}
	return nil
}

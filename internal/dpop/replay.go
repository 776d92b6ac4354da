package dpop

import "github.com/tokengate/tokengate/internal/seenonce"

// MaxRecentProofs bounds the replay set. A proof is recorded only after
// its signature verified, so filling the set costs a caller one valid
// signature per entry and this process one verification; at the default
// window (entries kept 2 to 4 minutes) it takes over 4,000 fresh proofs a
// second, sustained, which is about what a core can verify. When it is full
// new proofs are refused until the oldest generation is dropped.
const MaxRecentProofs = 1 << 20

// shared is the replay set of every Checker of the process, so that a
// proof used at one route is refused at every other. A package variable,
// not a caddy.UsagePool entry: what it holds is about this process, not a
// config, and must outlive every config reload. Entries are kept at least
// twice the default window, the longest a proof stays acceptable; a
// Checker with a longer window keeps its own set.
var shared = seenonce.New(MaxRecentProofs, 2*int64(DefaultWindow.Seconds()))

// record adds a proof's (key, jti) to the checker's replay set.
func (c *Checker) record(jkt, jti string, now int64) error {
	switch c.replay.Add(now, jkt, jti) {
	case nil:
		return nil
	case seenonce.ErrSeen:
		return errReplayed
	default:
		return errReplayFull
	}
}

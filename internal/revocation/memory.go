package revocation

import (
	"crypto/sha256"
	"sync"
	"time"
)

// Hash is what memory keeps of a revoked jti: the first 16 bytes of its
// SHA-256, not the jti itself.
type Hash [16]byte

// HashOf is the Hash of a jti.
func HashOf(jti string) Hash {
	sum := sha256.Sum256([]byte(jti))
	return Hash(sum[:16])
}

// Memory is the in-process set of live revocations every backend's gate
// reads with no I/O: a hash per jti, each with the time it may be
// forgotten, dropped by minute as the clock passes it, so that forgetting
// costs what is dropped, not the size of the set. It is safe for
// concurrent use.
type Memory struct {
	mu       sync.RWMutex
	revoked  map[Hash]uint32  // live jti hashes -> until, unix seconds
	byMinute map[int64][]Hash // until minute -> hashes, to drop them in order
	oldest   int64            // no byMinute key is below this minute
}

// NewMemory makes an empty set.
func NewMemory() Memory {
	return Memory{revoked: map[Hash]uint32{}, byMinute: map[int64][]Hash{}}
}

// Add remembers h until the given time (the token's exp plus MaxLeeway),
// unless that has passed.
func (m *Memory) Add(h Hash, until, now time.Time) {
	u := until.Unix()
	if u <= now.Unix() {
		return
	}
	minute := u / 60
	m.mu.Lock()
	defer m.mu.Unlock()
	if old, ok := m.revoked[h]; ok && int64(old) >= u {
		return
	}
	if len(m.byMinute) == 0 || minute < m.oldest {
		m.oldest = minute
	}
	m.revoked[h] = uint32(u)
	m.byMinute[minute] = append(m.byMinute[minute], h)
}

// Has reports whether h is remembered and not yet past its time.
func (m *Memory) Has(h Hash, now time.Time) bool {
	m.mu.RLock()
	until, ok := m.revoked[h]
	m.mu.RUnlock()
	return ok && int64(until) > now.Unix()
}

// Len is the number of revocations held.
func (m *Memory) Len() int {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return len(m.revoked)
}

// Each calls f with every live revocation (for a backend writing them back
// to a store that lost them). f must not call m.
func (m *Memory) Each(now time.Time, f func(h Hash, until time.Time)) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	for h, u := range m.revoked {
		if int64(u) > now.Unix() {
			f(h, time.Unix(int64(u), 0))
		}
	}
}

// Forget drops the revocations whose time passed before now, minute by
// minute: the cost is the number of entries dropped, not the size of the
// set.
func (m *Memory) Forget(now time.Time) {
	cur := now.Unix() / 60
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.byMinute) == 0 {
		return
	}
	for ; m.oldest < cur; m.oldest++ {
		for _, h := range m.byMinute[m.oldest] {
			if until, ok := m.revoked[h]; ok && int64(until) <= now.Unix() {
				delete(m.revoked, h)
			}
		}
		delete(m.byMinute, m.oldest)
		if len(m.byMinute) == 0 {
			m.oldest = cur
			return
		}
	}
}

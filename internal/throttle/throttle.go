// Package throttle counts failed client authentications in fixed windows,
// so the token, revocation and introspection endpoints can refuse a
// guesser before paying for the password hash it wants to trigger.
//
// It is a small map with an injectable clock rather than go-cache, because
// the tests must move time, and because its size must stay bounded under a
// flood of distinct keys.
package throttle

import (
	"sync"
	"time"
)

// Limiter allows Max failures per key in each Window.
type Limiter struct {
	Max    int
	Window time.Duration
	// MaxKeys bounds memory. When it is reached and no entry has expired,
	// new keys are not tracked (fail open): blocking every new address
	// would lock legitimate clients out during a wide attack, and a
	// high-entropy secret behind a slow hash is the real defence.
	MaxKeys int
	Now     func() time.Time

	mu      sync.Mutex
	entries map[string]*entry
}

type entry struct {
	count int
	reset time.Time
}

// DefaultMaxKeys is the default bound of tracked keys.
const DefaultMaxKeys = 100_000

func (l *Limiter) now() time.Time {
	if l.Now != nil {
		return l.Now()
	}
	return time.Now()
}

// Blocked reports whether key has used up its failures in the current
// window, and how long until the window ends.
func (l *Limiter) Blocked(key string) (time.Duration, bool) {
	if l == nil || l.Max <= 0 {
		return 0, false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	e, ok := l.entries[key]
	if !ok {
		return 0, false
	}
	now := l.now()
	if !now.Before(e.reset) {
		delete(l.entries, key)
		return 0, false
	}
	if e.count < l.Max {
		return 0, false
	}
	return e.reset.Sub(now), true
}

// Fail counts one failure of key.
func (l *Limiter) Fail(key string) {
	if l == nil || l.Max <= 0 {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	if l.entries == nil {
		l.entries = make(map[string]*entry)
	}
	if e, ok := l.entries[key]; ok && now.Before(e.reset) {
		e.count++
		return
	}
	max := l.MaxKeys
	if max <= 0 {
		max = DefaultMaxKeys
	}
	if len(l.entries) >= max {
		l.sweep(now)
		if len(l.entries) >= max {
			return
		}
	}
	l.entries[key] = &entry{count: 1, reset: now.Add(l.Window)}
}

// Reset forgets key's failures.
func (l *Limiter) Reset(key string) {
	if l == nil {
		return
	}
	l.mu.Lock()
	delete(l.entries, key)
	l.mu.Unlock()
}

// Len is the number of tracked keys.
func (l *Limiter) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.entries)
}

func (l *Limiter) sweep(now time.Time) {
	for k, e := range l.entries {
		if !now.Before(e.reset) {
			delete(l.entries, k)
		}
	}
}

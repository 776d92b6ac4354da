// Package throttle counts client authentication attempts in fixed windows,
// so the token, revocation and introspection endpoints can refuse a
// guesser before paying for the password hash it wants to trigger.
//
// An attempt is counted before its secret is checked (Take) and given back
// when the check succeeds (GiveBack, Reset): counting only failures, after
// the check, let every request of a concurrent burst through, since none of
// them had failed yet when the others were let in.
//
// It is a small map with an injectable clock rather than go-cache, because
// the tests must move time, and because its size must stay bounded under a
// flood of distinct keys. Expired entries are removed by Sweep, which the
// issuer runs on its ticker, and when the map is full.
package throttle

import (
	"sync"
	"time"
)

// Limiter allows Max attempts per key in each Window, not counting those
// given back.
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

// Blocked reports whether key has used up its attempts in the current
// window, and how long until the window ends. It counts nothing.
func (l *Limiter) Blocked(key string) (time.Duration, bool) {
	if l == nil || l.Max <= 0 {
		return 0, false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.blocked(key, l.now())
}

func (l *Limiter) blocked(key string, now time.Time) (time.Duration, bool) {
	e, ok := l.entries[key]
	if !ok {
		return 0, false
	}
	if !now.Before(e.reset) {
		delete(l.entries, key)
		return 0, false
	}
	if e.count < l.Max {
		return 0, false
	}
	return e.reset.Sub(now), true
}

// Take counts one attempt of key, unless key has used up its attempts in
// the current window: then it counts nothing and returns how long until
// the window ends. Check and count are one step, so concurrent callers
// cannot all pass.
func (l *Limiter) Take(key string) (time.Duration, bool) {
	if l == nil || l.Max <= 0 {
		return 0, true
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	if wait, blocked := l.blocked(key, now); blocked {
		return wait, false
	}
	if l.entries == nil {
		l.entries = make(map[string]*entry)
	}
	if e, ok := l.entries[key]; ok {
		e.count++
		return 0, true
	}
	max := l.MaxKeys
	if max <= 0 {
		max = DefaultMaxKeys
	}
	if len(l.entries) >= max {
		l.sweep(now)
		if len(l.entries) >= max {
			return 0, true
		}
	}
	l.entries[key] = &entry{count: 1, reset: now.Add(l.Window)}
	return 0, true
}

// GiveBack uncounts an attempt counted by Take that turned out not to be
// a failure.
func (l *Limiter) GiveBack(key string) {
	if l == nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if e, ok := l.entries[key]; ok && e.count > 0 {
		e.count--
	}
}

// Reset forgets key's attempts.
func (l *Limiter) Reset(key string) {
	if l == nil {
		return
	}
	l.mu.Lock()
	delete(l.entries, key)
	l.mu.Unlock()
}

// Sweep removes the entries whose window has ended.
func (l *Limiter) Sweep() {
	if l == nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.sweep(l.now())
}

func (l *Limiter) sweep(now time.Time) {
	for k, e := range l.entries {
		if !now.Before(e.reset) {
			delete(l.entries, k)
		}
	}
}

// Package testclock is the injectable clock of tokengate's tests: it moves
// only when told, so expiry, rotation and throttling are tested without
// sleeping.
package testclock

import (
	"sync"
	"time"
)

// Clock is a settable clock, safe for concurrent use.
type Clock struct {
	mu sync.Mutex
	t  time.Time
}

// New returns a clock standing at t.
func New(t time.Time) *Clock { return &Clock{t: t} }

// Fixed returns a clock standing at the same arbitrary moment in every run
// (2030-01-02 03:04:05 UTC), for tests to which the date itself is
// indifferent.
func Fixed() *Clock { return New(time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)) }

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Advance moves the clock forward by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

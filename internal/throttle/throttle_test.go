package throttle

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tokengate/tokengate/internal/testclock"
	"github.com/tokengate/tokengate/internal/testsync"
)

func TestWindow(t *testing.T) {
	c := testclock.New(time.Unix(1000, 0))
	l := &Limiter{Max: 3, Window: time.Minute, Now: c.Now}
	for i := 0; i < 3; i++ {
		if _, ok := l.Take("k"); !ok {
			t.Fatalf("refused after %d attempts", i)
		}
	}
	wait, ok := l.Take("k")
	if ok || wait != time.Minute {
		t.Fatalf("after 3 attempts: ok=%v wait=%v", ok, wait)
	}
	if _, b := l.Blocked("k"); !b {
		t.Fatal("Blocked disagrees with Take")
	}
	if _, ok := l.Take("other"); !ok {
		t.Fatal("another key is blocked")
	}
	c.Advance(40 * time.Second)
	if wait, b := l.Blocked("k"); !b || wait != 20*time.Second {
		t.Fatalf("mid-window: blocked=%v wait=%v", b, wait)
	}
	c.Advance(20 * time.Second)
	if _, b := l.Blocked("k"); b {
		t.Fatal("still blocked after the window")
	}
	l.Take("k")
	if _, b := l.Blocked("k"); b {
		t.Fatal("a new window started full")
	}
}

func TestGiveBackAndReset(t *testing.T) {
	l := &Limiter{Max: 1, Window: time.Minute}
	l.Take("k")
	if _, b := l.Blocked("k"); !b {
		t.Fatal("not blocked")
	}
	l.GiveBack("k")
	if _, ok := l.Take("k"); !ok {
		t.Fatal("blocked after GiveBack")
	}
	l.Reset("k")
	if _, b := l.Blocked("k"); b {
		t.Fatal("blocked after Reset")
	}
	l.GiveBack("absent") // no entry: nothing to give back, no panic
	if l.Len() != 0 {
		t.Fatalf("GiveBack made an entry")
	}
}

// TestConcurrentTakesCountEachAttempt: of many attempts made at once, no
// more than Max pass (the review's concurrent burst got through a
// check-then-count limiter whole).
func TestConcurrentTakesCountEachAttempt(t *testing.T) {
	l := &Limiter{Max: 5, Window: time.Minute}
	var passed atomic.Int32
	testsync.AtOnce(200, func(int) {
		if _, ok := l.Take("k"); ok {
			passed.Add(1)
		}
	})
	if n := passed.Load(); n != 5 {
		t.Fatalf("%d of 200 concurrent attempts passed, want Max = 5", n)
	}
}

func TestBoundedKeys(t *testing.T) {
	c := testclock.New(time.Unix(1000, 0))
	l := &Limiter{Max: 1, Window: time.Minute, MaxKeys: 10, Now: c.Now}
	for i := 0; i < 100; i++ {
		if _, ok := l.Take(fmt.Sprint(i)); !ok {
			t.Fatalf("new key %d refused", i)
		}
	}
	if n := l.Len(); n != 10 {
		t.Fatalf("tracked %d keys, want the bound 10", n)
	}
	if _, b := l.Blocked("5"); !b {
		t.Fatal("a tracked key lost its count")
	}
	// Expired entries make room again.
	c.Advance(time.Minute)
	l.Take("new")
	if _, b := l.Blocked("new"); !b {
		t.Fatal("no room made by expired entries")
	}
}

// TestSweepFreesExpiredEntries: entries leave memory when their window
// ends, not only once the map is full.
func TestSweepFreesExpiredEntries(t *testing.T) {
	c := testclock.New(time.Unix(1000, 0))
	l := &Limiter{Max: 3, Window: time.Minute, Now: c.Now}
	for i := range 50 {
		l.Take(fmt.Sprint(i))
	}
	c.Advance(30 * time.Second)
	l.Take("late")
	l.Sweep()
	if n := l.Len(); n != 51 {
		t.Fatalf("mid-window sweep left %d keys, want 51", n)
	}
	c.Advance(30 * time.Second)
	l.Sweep()
	if n := l.Len(); n != 1 {
		t.Fatalf("sweep after the window left %d keys, want 1 (the later one)", n)
	}
}

func TestDisabled(t *testing.T) {
	var nilL *Limiter
	if _, ok := nilL.Take("k"); !ok {
		t.Fatal("nil limiter refuses")
	}
	nilL.GiveBack("k")
	nilL.Sweep()
	if _, b := nilL.Blocked("k"); b {
		t.Fatal("nil limiter blocks")
	}
	l := &Limiter{Max: 0, Window: time.Minute}
	l.Take("k")
	if _, b := l.Blocked("k"); b {
		t.Fatal("Max 0 blocks")
	}
}

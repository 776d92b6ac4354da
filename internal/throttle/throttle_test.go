package throttle

import (
	"fmt"
	"testing"
	"time"

	"github.com/tokengate/tokengate/internal/testclock"
)

func TestWindow(t *testing.T) {
	c := testclock.New(time.Unix(1000, 0))
	l := &Limiter{Max: 3, Window: time.Minute, Now: c.Now}
	for i := 0; i < 3; i++ {
		if _, b := l.Blocked("k"); b {
			t.Fatalf("blocked after %d failures", i)
		}
		l.Fail("k")
	}
	wait, b := l.Blocked("k")
	if !b || wait != time.Minute {
		t.Fatalf("after 3 failures: blocked=%v wait=%v", b, wait)
	}
	if _, b := l.Blocked("other"); b {
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
	l.Fail("k")
	if _, b := l.Blocked("k"); b {
		t.Fatal("a new window started full")
	}
}

func TestReset(t *testing.T) {
	l := &Limiter{Max: 1, Window: time.Minute}
	l.Fail("k")
	if _, b := l.Blocked("k"); !b {
		t.Fatal("not blocked")
	}
	l.Reset("k")
	if _, b := l.Blocked("k"); b {
		t.Fatal("blocked after Reset")
	}
}

func TestBoundedKeys(t *testing.T) {
	c := testclock.New(time.Unix(1000, 0))
	l := &Limiter{Max: 1, Window: time.Minute, MaxKeys: 10, Now: c.Now}
	for i := 0; i < 100; i++ {
		l.Fail(fmt.Sprint(i))
	}
	if n := l.Len(); n != 10 {
		t.Fatalf("tracked %d keys, want the bound 10", n)
	}
	if _, b := l.Blocked("5"); !b {
		t.Fatal("a tracked key lost its count")
	}
	// Expired entries make room again.
	c.Advance(time.Minute)
	l.Fail("new")
	if _, b := l.Blocked("new"); !b {
		t.Fatal("no room made by expired entries")
	}
}

func TestDisabled(t *testing.T) {
	var nilL *Limiter
	nilL.Fail("k")
	if _, b := nilL.Blocked("k"); b {
		t.Fatal("nil limiter blocks")
	}
	l := &Limiter{Max: 0, Window: time.Minute}
	l.Fail("k")
	if _, b := l.Blocked("k"); b {
		t.Fatal("Max 0 blocks")
	}
}

package seenonce

import "testing"

func TestBoundsAndGenerations(t *testing.T) {
	s := New(3, 120)
	for i, jti := range []string{"a", "b", "c"} {
		if err := s.Add(100+int64(i), "k", jti); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Add(103, "k", "d"); err != ErrFull {
		t.Fatalf("full: %v", err)
	}
	if err := s.Add(103, "k", "a"); err != ErrSeen {
		t.Fatalf("seen: %v", err)
	}
	// Parts are joined unambiguously: ("k", "a") is not ("ka").
	if err := s.Add(103, "ka"); err != ErrFull {
		t.Fatalf("other value: %v", err)
	}
	// After one retention the first generation becomes the previous one:
	// still remembered.
	if err := s.Add(220, "k", "a"); err != ErrSeen {
		t.Fatalf("kept for at least the retention: %v", err)
	}
	// After two it is dropped.
	if err := s.Add(340, "k", "a"); err != nil {
		t.Fatalf("dropped after twice the retention: %v", err)
	}
}

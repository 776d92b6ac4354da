package refresh

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/certmagic"

	"github.com/tokengate/tokengate/internal/testclock"
)

// fakeClock is the injectable clock of these tests; it moves only when told.
type fakeClock = testclock.Clock

func newClock() *fakeClock {
	return testclock.New(time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC))
}

const prefix = "tokengate/issuers/test"

func newStore(dir string, clock *fakeClock) *Store {
	return &Store{Storage: &certmagic.FileStorage{Path: dir}, Prefix: prefix, Now: clock.Now}
}

var grant = Grant{ClientID: "reports", Scopes: []string{"read", "write"}, Audience: []string{"https://api.example.com"}}

func issue(t *testing.T, s *Store, g Grant, ttl time.Duration) string {
	t.Helper()
	tok, err := s.Issue(context.Background(), g, ttl)
	if err != nil {
		t.Fatalf("Issue: %v", err)
	}
	return tok
}

func redeem(t *testing.T, s *Store, token, clientID string, ttl time.Duration) (Grant, string) {
	t.Helper()
	g, next, err := s.Redeem(context.Background(), token, clientID, ttl, nil)
	if err != nil {
		t.Fatalf("Redeem: %v", err)
	}
	return g, next
}

func wantErr(t *testing.T, s *Store, token, clientID string, want error) {
	t.Helper()
	g, next, err := s.Redeem(context.Background(), token, clientID, time.Hour, nil)
	if !errors.Is(err, want) {
		t.Fatalf("Redeem error = %v, want %v", err, want)
	}
	if next != "" || !reflect.DeepEqual(g, Grant{}) {
		t.Fatalf("a failed Redeem returned grant %+v and token %q", g, next)
	}
}

func listAll(t *testing.T, s *Store) []string {
	t.Helper()
	var all []string
	for _, dir := range []string{prefix + "/refresh", prefix + "/refresh_families"} {
		keys, err := s.Storage.List(context.Background(), dir, false)
		if err != nil {
			t.Fatalf("listing %s: %v", dir, err)
		}
		all = append(all, keys...)
	}
	return all
}

func TestIssueAndRedeemRotates(t *testing.T) {
	clock := newClock()
	s := newStore(t.TempDir(), clock)
	tok := issue(t, s, grant, time.Hour)
	if len(tok) != tokenLen {
		t.Fatalf("token %q has length %d, want %d", tok, len(tok), tokenLen)
	}
	if raw, err := base64.RawURLEncoding.DecodeString(tok); err != nil || len(raw) != tokenBytes {
		t.Fatalf("token is not %d bytes of base64url: %v", tokenBytes, err)
	}

	seen := map[string]bool{tok: true}
	cur := tok
	for i := range 3 {
		clock.Advance(time.Minute)
		g, next := redeem(t, s, cur, grant.ClientID, time.Hour)
		if !reflect.DeepEqual(g, grant) {
			t.Fatalf("redemption %d gave grant %+v, want %+v", i, g, grant)
		}
		if next == "" || seen[next] {
			t.Fatalf("redemption %d gave token %q, want a new one", i, next)
		}
		seen[next] = true
		cur = next
	}

	// Only hashes are stored: no file holds a token.
	for _, key := range listAll(t, s) {
		data, err := s.Storage.Load(context.Background(), key)
		if err != nil {
			t.Fatal(err)
		}
		for tk := range seen {
			if strings.Contains(key, tk) || strings.Contains(string(data), tk) {
				t.Fatalf("storage key %s holds a token in clear", key)
			}
		}
	}
}

func TestReuseRevokesFamily(t *testing.T) {
	clock := newClock()
	s := newStore(t.TempDir(), clock)
	old := issue(t, s, grant, time.Hour)
	_, next := redeem(t, s, old, grant.ClientID, time.Hour)
	_, newest := redeem(t, s, next, grant.ClientID, time.Hour)

	// An unrelated family of the same client is not affected.
	other := issue(t, s, grant, time.Hour)

	wantErr(t, s, old, grant.ClientID, ErrReused)
	// The whole family is dead, the newest token included.
	wantErr(t, s, newest, grant.ClientID, ErrInvalid)
	wantErr(t, s, next, grant.ClientID, ErrInvalid)
	wantErr(t, s, old, grant.ClientID, ErrInvalid)

	if _, _, err := s.Redeem(context.Background(), other, grant.ClientID, time.Hour, nil); err != nil {
		t.Fatalf("another family was revoked too: %v", err)
	}
}

func TestAnotherClientsToken(t *testing.T) {
	s := newStore(t.TempDir(), newClock())
	tok := issue(t, s, grant, time.Hour)
	wantErr(t, s, tok, "intruder", ErrInvalid)
	wantErr(t, s, tok, "", ErrInvalid)
	wantErr(t, s, tok, strings.ToUpper(grant.ClientID), ErrInvalid)
	// The attempt costs the owner nothing.
	redeem(t, s, tok, grant.ClientID, time.Hour)
}

func TestExpiry(t *testing.T) {
	clock := newClock()
	s := newStore(t.TempDir(), clock)
	const ttl = time.Hour

	expired := issue(t, s, grant, ttl)
	clock.Advance(ttl)
	wantErr(t, s, expired, grant.ClientID, ErrInvalid)

	live := issue(t, s, grant, ttl)
	clock.Advance(ttl - time.Nanosecond)
	_, next := redeem(t, s, live, grant.ClientID, ttl)
	// The successor has a fresh lifetime from its redemption.
	clock.Advance(ttl - time.Nanosecond)
	_, next2 := redeem(t, s, next, grant.ClientID, ttl)
	clock.Advance(ttl)
	wantErr(t, s, next2, grant.ClientID, ErrInvalid)
}

func TestMalformedTokens(t *testing.T) {
	s := newStore(t.TempDir(), newClock())
	real := issue(t, s, grant, time.Hour)
	tests := []struct {
		name  string
		token string
	}{
		{"empty", ""},
		{"short", "abc"},
		{"one short", real[:tokenLen-1]},
		{"one long", real + "A"},
		{"padded", real + "="},
		{"path traversal", "../../x"},
		{"path traversal of token length", "../../" + strings.Repeat("a", tokenLen-6)},
		{"slashes", strings.Repeat("/", tokenLen)},
		{"std base64 chars", strings.Repeat("+", tokenLen)},
		{"non-base64", strings.Repeat("!", tokenLen)},
		{"NUL bytes", strings.Repeat("\x00", tokenLen)},
		{"non-ascii", strings.Repeat("é", tokenLen/2) + "a"},
		{"newline in token", real[:tokenLen-1] + "\n"},
		{"well-formed unknown", strings.Repeat("A", tokenLen)},
		{"real with one char changed", flip(real)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wantErr(t, s, tt.token, grant.ClientID, ErrInvalid)
		})
	}
	// None of this hurt the real token.
	redeem(t, s, real, grant.ClientID, time.Hour)
}

func flip(tok string) string {
	b := []byte(tok)
	if b[0] == 'A' {
		b[0] = 'B'
	} else {
		b[0] = 'A'
	}
	return string(b)
}

func TestCheckVetoesWithoutRotating(t *testing.T) {
	s := newStore(t.TempDir(), newClock())
	tok := issue(t, s, grant, time.Hour)
	before := listAll(t, s)

	errTooWide := errors.New("scope too wide")
	var got Grant
	g, next, err := s.Redeem(context.Background(), tok, grant.ClientID, time.Hour, func(g Grant) (AccessRef, error) {
		got = g
		return AccessRef{}, errTooWide
	})
	if !errors.Is(err, errTooWide) {
		t.Fatalf("Redeem error = %v, want the check's error", err)
	}
	if next != "" || !reflect.DeepEqual(g, Grant{}) {
		t.Fatalf("vetoed Redeem returned %+v, %q", g, next)
	}
	if !reflect.DeepEqual(got, grant) {
		t.Fatalf("check saw grant %+v, want %+v", got, grant)
	}
	if after := listAll(t, s); !reflect.DeepEqual(before, after) {
		t.Fatalf("a vetoed Redeem changed storage: %v -> %v", before, after)
	}
	// Still redeemable, once, and no reuse was recorded.
	called := false
	_, next, err = s.Redeem(context.Background(), tok, grant.ClientID, time.Hour, func(Grant) (AccessRef, error) { called = true; return AccessRef{}, nil })
	if err != nil || !called {
		t.Fatalf("Redeem after a veto: %v (check called %v)", err, called)
	}
	redeem(t, s, next, grant.ClientID, time.Hour)
}

// Two instances on one storage redeem the same token at the same moment:
// exactly one gets a new token, the other sees a reuse. Races run in
// parallel batches because FileStorage's lock polls once a second.
// meetingStorage makes each instance's second read of the token's record
// (the one meant to be under the family lock) wait for the other instance
// to get there too: without the lock both would then read an unredeemed
// record, so a missing lock fails this test every time rather than by luck.
func TestConcurrentRedeemOneWinner(t *testing.T) {
	const batches, perBatch = 5, 8
	dir := t.TempDir()
	clock := newClock()
	plain := newStore(dir, clock) // for checks outside the races
	meet := &rendezvous{meetings: map[string]*meeting{}}
	instances := make([]*Store, 2)
	for i := range instances {
		instances[i] = newStore(dir, clock)
		instances[i].Storage = &meetingStorage{Storage: instances[i].Storage, meet: meet, loads: map[string]int{}}
	}
	start := time.Now()
	for b := range batches {
		tokens := make([]string, perBatch)
		for i := range tokens {
			tokens[i] = issue(t, plain, grant, time.Hour)
		}
		type result struct {
			next string
			err  error
		}
		results := make([][2]result, perBatch)
		go1 := make(chan struct{})
		var wg sync.WaitGroup
		for i, tok := range tokens {
			for n, inst := range instances {
				wg.Add(1)
				go func() {
					defer wg.Done()
					<-go1
					_, next, err := inst.Redeem(context.Background(), tok, grant.ClientID, time.Hour, nil)
					results[i][n] = result{next, err}
				}()
			}
		}
		close(go1)
		wg.Wait()
		for i, r := range results {
			winners := 0
			var winner string
			for _, x := range r {
				switch {
				case x.err == nil:
					winners++
					winner = x.next
				case !errors.Is(x.err, ErrReused):
					t.Fatalf("batch %d race %d: loser error %v, want ErrReused", b, i, x.err)
				}
			}
			if winners != 1 {
				t.Fatalf("batch %d race %d: %d winners, want exactly 1 (%v)", b, i, winners, r)
			}
			// The loser's reuse revoked the family, the winner's token too.
			wantErr(t, plain, winner, grant.ClientID, ErrInvalid)
		}
	}
	t.Logf("%d concurrent redemptions took %v", batches*perBatch, time.Since(start))
}

func TestCorruptRecords(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name    string
		corrupt func(s *Store, token string) error
	}{
		{"record not json", func(s *Store, tok string) error {
			return s.Storage.Store(ctx, s.recordKey(tok), []byte("garbage"))
		}},
		{"record wrong shape", func(s *Store, tok string) error {
			return s.Storage.Store(ctx, s.recordKey(tok), []byte(`{"client_id":["reports"]}`))
		}},
		{"record empty", func(s *Store, tok string) error {
			return s.Storage.Store(ctx, s.recordKey(tok), nil)
		}},
		{"family not json", func(s *Store, tok string) error {
			var rec record
			if _, err := s.loadJSON(ctx, s.recordKey(tok), &rec); err != nil {
				return err
			}
			return s.Storage.Store(ctx, s.familyKey(rec.Family), []byte("{"))
		}},
		{"family missing", func(s *Store, tok string) error {
			var rec record
			if _, err := s.loadJSON(ctx, s.recordKey(tok), &rec); err != nil {
				return err
			}
			return s.Storage.Delete(ctx, s.familyKey(rec.Family))
		}},
		{"record of another client in a family of this one", func(s *Store, tok string) error {
			var rec record
			if _, err := s.loadJSON(ctx, s.recordKey(tok), &rec); err != nil {
				return err
			}
			return s.storeJSON(ctx, s.familyKey(rec.Family), family{ClientID: "someone-else", Expires: rec.Expires})
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newStore(t.TempDir(), newClock())
			tok := issue(t, s, grant, time.Hour)
			if err := tt.corrupt(s, tok); err != nil {
				t.Fatal(err)
			}
			wantErr(t, s, tok, grant.ClientID, ErrInvalid)
		})
	}
}

func TestSweep(t *testing.T) {
	ctx := context.Background()
	clock := newClock()
	s := newStore(t.TempDir(), clock)

	if n, err := s.Sweep(ctx); n != 0 || err != nil {
		t.Fatalf("Sweep of empty storage = %d, %v", n, err)
	}

	short := issue(t, s, grant, time.Hour)    // record + family, expire at +1h
	long := issue(t, s, grant, 3*time.Hour)   // record + family, expire at +3h
	reused := issue(t, s, grant, 3*time.Hour) // redeemed below; kept to detect reuse
	_, reusedNext := redeem(t, s, reused, grant.ClientID, 3*time.Hour)
	corrupt := prefix + "/refresh/" + strings.Repeat("0", 64) // left for an operator
	if err := s.Storage.Store(ctx, corrupt, []byte("garbage")); err != nil {
		t.Fatal(err)
	}
	if n := len(listAll(t, s)); n != 8 {
		t.Fatalf("storage holds %d records, want 8", n)
	}

	clock.Advance(time.Hour) // at expiry: not yet swept (After, not !Before)
	if n, err := s.Sweep(ctx); n != 0 || err != nil {
		t.Fatalf("Sweep at expiry = %d, %v; want 0", n, err)
	}
	clock.Advance(time.Nanosecond)
	n, err := s.Sweep(ctx)
	if err != nil || n != 2 {
		t.Fatalf("Sweep after the short token expired = %d, %v; want 2 (its record and family)", n, err)
	}
	if ok := s.Storage.Exists(ctx, s.recordKey(short)); ok {
		t.Fatal("the expired record is still stored")
	}
	if !s.Storage.Exists(ctx, corrupt) {
		t.Fatal("Sweep deleted a corrupt record")
	}
	wantErr(t, s, short, grant.ClientID, ErrInvalid)
	// The redeemed record is kept: its reuse is still detected.
	wantErr(t, s, reused, grant.ClientID, ErrReused)
	wantErr(t, s, reusedNext, grant.ClientID, ErrInvalid)
	// The live one still works.
	_, next := redeem(t, s, long, grant.ClientID, time.Hour)

	clock.Advance(10 * time.Hour)
	n, err = s.Sweep(ctx)
	if err != nil || n != 6 {
		t.Fatalf("final Sweep = %d, %v; want 6", n, err)
	}
	if left := listAll(t, s); len(left) != 1 || left[0] != corrupt {
		t.Fatalf("after everything expired storage holds %v, want only the corrupt record", left)
	}
	wantErr(t, s, next, grant.ClientID, ErrInvalid)
}

func TestStoresAreSeparatedByPrefix(t *testing.T) {
	dir := t.TempDir()
	clock := newClock()
	a := newStore(dir, clock)
	b := &Store{Storage: &certmagic.FileStorage{Path: dir}, Prefix: "tokengate/issuers/other", Now: clock.Now}
	tok := issue(t, a, grant, time.Hour)
	wantErr(t, b, tok, grant.ClientID, ErrInvalid)
	redeem(t, a, tok, grant.ClientID, time.Hour)
}

func TestIssueErrorsOnStorageFailure(t *testing.T) {
	s := &Store{Storage: failingStorage{&certmagic.FileStorage{Path: t.TempDir()}}, Prefix: prefix}
	if _, err := s.Issue(context.Background(), grant, time.Hour); err == nil {
		t.Fatal("Issue succeeded although the storage refused to store")
	}
}

type failingStorage struct{ *certmagic.FileStorage }

func (failingStorage) Store(context.Context, string, []byte) error {
	return fmt.Errorf("disk full")
}

// rendezvous holds, per storage key, a meeting of the two instances.
type rendezvous struct {
	mu       sync.Mutex
	meetings map[string]*meeting
}

type meeting struct {
	arrived int
	all     chan struct{}
}

// meetWait is how long an instance waits for the other at a meeting. With
// the family lock held the other cannot come, so this is paid once per race.
const meetWait = 300 * time.Millisecond

func (r *rendezvous) meet(key string) {
	r.mu.Lock()
	m, ok := r.meetings[key]
	if !ok {
		m = &meeting{all: make(chan struct{})}
		r.meetings[key] = m
	}
	m.arrived++
	if m.arrived == 2 {
		close(m.all)
	}
	r.mu.Unlock()
	select {
	case <-m.all:
	case <-time.After(meetWait):
	}
}

// meetingStorage is one instance's view of the shared storage.
type meetingStorage struct {
	certmagic.Storage
	meet  *rendezvous
	mu    sync.Mutex
	loads map[string]int
}

func (s *meetingStorage) Load(ctx context.Context, key string) ([]byte, error) {
	if strings.Contains(key, "/refresh/") {
		s.mu.Lock()
		s.loads[key]++
		n := s.loads[key]
		s.mu.Unlock()
		if n == 2 {
			s.meet.meet(key)
		}
	}
	return s.Storage.Load(ctx, key)
}

// FuzzRedeem: whatever a client sends as a refresh token, Redeem answers
// without panicking, and only the real token redeems.
func FuzzRedeem(f *testing.F) {
	for _, seed := range []string{"", "../../x", strings.Repeat("A", tokenLen), strings.Repeat("/", tokenLen), "\x00", "%2e%2e%2f"} {
		f.Add(seed)
	}
	s := newStore(f.TempDir(), newClock())
	real, err := s.Issue(context.Background(), grant, time.Hour)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, token string) {
		if token == real {
			return
		}
		_, next, err := s.Redeem(context.Background(), token, grant.ClientID, time.Hour, nil)
		if !errors.Is(err, ErrInvalid) || next != "" {
			t.Fatalf("Redeem(%q) = %q, %v; want ErrInvalid", token, next, err)
		}
	})
}

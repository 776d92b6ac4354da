package refresh

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"reflect"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/certmagic"

	"github.com/tokengate/tokengate/internal/state"
	"github.com/tokengate/tokengate/internal/statetest"
	"github.com/tokengate/tokengate/internal/testclock"
	"github.com/tokengate/tokengate/internal/testsync"
)

const prefix = "tokengate/issuers/test"

// revoked records the access tokens a Store revokes with a family.
type revoked struct {
	mu   sync.Mutex
	jtis []string
}

func (r *revoked) revoke(_ context.Context, ref AccessRef) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.jtis = append(r.jtis, ref.JTI)
	return nil
}

func (r *revoked) list() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := slices.Clone(r.jtis)
	sort.Strings(out)
	return out
}

func newStoreOn(t testing.TB, st certmagic.Storage, clock *testclock.Clock, reuse time.Duration) (*Store, *revoked) {
	t.Helper()
	rv := &revoked{}
	s, err := New(context.Background(), Config{Storage: st, Prefix: prefix, Now: clock.Now, ReuseInterval: reuse, RevokeAccess: rv.revoke})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return s, rv
}

// newStore is a Store with no reuse interval: every reuse revokes.
func newStore(t testing.TB, dir string, clock *testclock.Clock) *Store {
	s, _ := newStoreOn(t, &certmagic.FileStorage{Path: dir}, clock, 0)
	return s
}

var grant = Grant{ClientID: "reports", Scopes: []string{"read", "write"}, Audience: []string{"https://api.example.com"}}

func issue(t testing.TB, s *Store, g Grant, ttl time.Duration, access ...AccessRef) string {
	t.Helper()
	tok, err := s.Issue(context.Background(), g, ttl, access...)
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

// mintJTI is a mint that names each access token it makes.
func mintJTI(jti string, exp time.Time) func(Grant) (AccessRef, error) {
	return func(Grant) (AccessRef, error) { return AccessRef{JTI: jti, Expires: exp}, nil }
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
		keys, err := s.cfg.Storage.List(context.Background(), dir, false)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("listing %s: %v", dir, err)
		}
		all = append(all, keys...)
	}
	sort.Strings(all)
	return all
}

// family reads the record of a token's family.
// familyID is the id of a token's family.
func familyID(t *testing.T, s *Store, token string) string {
	t.Helper()
	c, err := decode(token, s.keyFor)
	if err != nil {
		t.Fatalf("decoding a token: %v", err)
	}
	return hex.EncodeToString(c.family[:])
}

func family(t *testing.T, s *Store, token string) (state.Family, bool) {
	t.Helper()
	c, err := decode(token, s.keyFor)
	if err != nil {
		t.Fatalf("decoding a token: %v", err)
	}
	rec, found, err := s.families.Load(context.Background(), hex.EncodeToString(c.family[:]))
	if err != nil {
		t.Fatal(err)
	}
	return rec, found
}

func TestIssueAndRedeemRotates(t *testing.T) {
	clock := testclock.Fixed()
	s := newStore(t, t.TempDir(), clock)
	tok := issue(t, s, grant, time.Hour)
	if !strings.HasPrefix(tok, tokenPrefix) || len(tok) > 300 {
		t.Fatalf("token %q: want the %q format, a few hundred characters at most", tok, tokenPrefix)
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
		if rec, _ := family(t, s, next); rec.Generation != uint64(i+1) {
			t.Fatalf("after redemption %d the family is at generation %d", i, rec.Generation)
		}
		seen[next] = true
		cur = next
	}
	// No storage record holds a token.
	for _, key := range listAll(t, s) {
		data, err := s.cfg.Storage.Load(context.Background(), key)
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

// Issuing costs no storage at all: outstanding refresh tokens cost nothing.
func TestIssueTouchesNoStorage(t *testing.T) {
	cs := &statetest.CountingStorage{Storage: &certmagic.FileStorage{Path: t.TempDir()}}
	s, _ := newStoreOn(t, cs, testclock.Fixed(), 0)
	cs.Reset()
	tokens := make([]string, 10_000)
	for i := range tokens {
		tokens[i] = issue(t, s, grant, time.Hour, AccessRef{JTI: fmt.Sprint("jti-", i), Expires: time.Now().Add(time.Hour)})
	}
	if n := cs.Calls(); n != 0 {
		t.Fatalf("issuing 10,000 refresh tokens made %d storage calls, want 0", n)
	}
	// And each of them works.
	redeem(t, s, tokens[9_999], grant.ClientID, time.Hour)
}

// A reuse is detected, and revokes the family with its access tokens,
// although nothing was written when the reused token was issued.
func TestReuseOfNeverStoredTokenRevokesFamily(t *testing.T) {
	clock := testclock.Fixed()
	s, rv := newStoreOn(t, &certmagic.FileStorage{Path: t.TempDir()}, clock, 0)
	exp := clock.Now().Add(time.Hour)
	old := issue(t, s, grant, time.Hour, AccessRef{JTI: "at-0", Expires: exp})
	if got := listAll(t, s); len(got) != 0 {
		t.Fatalf("issuing stored %v", got)
	}
	_, next, err := s.Redeem(context.Background(), old, grant.ClientID, time.Hour, mintJTI("at-1", exp))
	if err != nil {
		t.Fatal(err)
	}
	_, newest, err := s.Redeem(context.Background(), next, grant.ClientID, time.Hour, mintJTI("at-2", exp))
	if err != nil {
		t.Fatal(err)
	}
	other := issue(t, s, grant, time.Hour) // an unrelated family of the same client

	wantErr(t, s, old, grant.ClientID, ErrReused)
	if got, want := rv.list(), []string{"at-0", "at-1", "at-2"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("revoked access tokens %v, want %v", got, want)
	}
	// The whole family is dead, the newest token included.
	wantErr(t, s, newest, grant.ClientID, ErrInvalid)
	wantErr(t, s, next, grant.ClientID, ErrInvalid)
	wantErr(t, s, old, grant.ClientID, ErrInvalid)
	if _, _, err := s.Redeem(context.Background(), other, grant.ClientID, time.Hour, nil); err != nil {
		t.Fatalf("another family was revoked too: %v", err)
	}
}

// Within the reuse interval a retry gets the same answer; after it, the
// retry is a reuse.
func TestRetryWithinReuseInterval(t *testing.T) {
	clock := testclock.Fixed()
	const interval = 5 * time.Second
	s, rv := newStoreOn(t, &certmagic.FileStorage{Path: t.TempDir()}, clock, interval)
	exp := clock.Now().Add(time.Hour)
	t0 := issue(t, s, grant, time.Hour)
	_, t1, err := s.Redeem(context.Background(), t0, grant.ClientID, time.Hour, mintJTI("at-1", exp))
	if err != nil {
		t.Fatal(err)
	}
	clock.Advance(interval - time.Second)
	minted := false
	g, again, err := s.Redeem(context.Background(), t0, grant.ClientID, time.Hour, func(Grant) (AccessRef, error) {
		minted = true
		return AccessRef{JTI: "at-1-retry", Expires: exp}, nil
	})
	if err != nil || again != t1 || !reflect.DeepEqual(g, grant) || !minted {
		t.Fatalf("retry within the interval: %v, same token %v, minted %v", err, again == t1, minted)
	}
	if rec, _ := family(t, s, t1); rec.Generation != 1 || len(rec.Access) != 2 {
		t.Fatalf("after a retry the family is at generation %d with %d access tokens, want 1 and 2", rec.Generation, len(rec.Access))
	}
	// The family goes on from the one successor.
	_, t2 := redeem(t, s, t1, grant.ClientID, time.Hour)
	// A retry of t1 past the interval is a reuse.
	clock.Advance(interval)
	wantErr(t, s, t1, grant.ClientID, ErrReused)
	wantErr(t, s, t2, grant.ClientID, ErrInvalid)
	if got := rv.list(); !slices.Contains(got, "at-1-retry") || !slices.Contains(got, "at-1") {
		t.Fatalf("revoked access tokens %v, want the retry's too", got)
	}

	// Two generations back is a reuse even within the interval.
	u0 := issue(t, s, grant, time.Hour)
	_, u1 := redeem(t, s, u0, grant.ClientID, time.Hour)
	redeem(t, s, u1, grant.ClientID, time.Hour)
	wantErr(t, s, u0, grant.ClientID, ErrReused)
}

func TestAnotherClientsToken(t *testing.T) {
	s := newStore(t, t.TempDir(), testclock.Fixed())
	tok := issue(t, s, grant, time.Hour)
	wantErr(t, s, tok, "intruder", ErrInvalid)
	wantErr(t, s, tok, "", ErrInvalid)
	wantErr(t, s, tok, strings.ToUpper(grant.ClientID), ErrInvalid)
	if err := s.RevokeFamily(context.Background(), tok, "intruder"); !errors.Is(err, ErrForeign) {
		t.Fatalf("revoking another client's token: %v, want ErrForeign", err)
	}
	// The attempts cost the owner nothing.
	redeem(t, s, tok, grant.ClientID, time.Hour)
}

func TestExpiry(t *testing.T) {
	clock := testclock.Fixed()
	s := newStore(t, t.TempDir(), clock)
	const ttl = time.Hour

	expired := issue(t, s, grant, ttl)
	clock.Advance(ttl)
	wantErr(t, s, expired, grant.ClientID, ErrInvalid)

	live := issue(t, s, grant, ttl)
	clock.Advance(ttl - time.Second)
	_, next := redeem(t, s, live, grant.ClientID, ttl)
	// The successor has a fresh lifetime from its redemption.
	clock.Advance(ttl - time.Second)
	_, next2 := redeem(t, s, next, grant.ClientID, ttl)
	clock.Advance(ttl)
	wantErr(t, s, next2, grant.ClientID, ErrInvalid)
}

func TestMalformedTokens(t *testing.T) {
	dir := t.TempDir()
	s := newStore(t, dir, testclock.Fixed())
	real := issue(t, s, grant, time.Hour)
	body := strings.TrimPrefix(real, tokenPrefix)
	raw, _ := base64.RawURLEncoding.DecodeString(body)
	tamper := func(i int) string {
		b := slices.Clone(raw)
		b[i] ^= 1
		return tokenPrefix + base64.RawURLEncoding.EncodeToString(b)
	}
	tests := []struct {
		name  string
		token string
	}{
		{"empty", ""},
		{"short", "abc"},
		{"prefix only", tokenPrefix},
		{"one short", real[:len(real)-1]},
		{"one long", real + "A"},
		{"padded", real + "="},
		{"other version", "tgr2_" + body},
		{"no prefix", body},
		{"path traversal", "../../x"},
		{"NUL bytes", tokenPrefix + strings.Repeat("\x00", 60)},
		{"non-ascii", tokenPrefix + strings.Repeat("é", 40)},
		{"newline", real + "\n"},
		{"huge", tokenPrefix + strings.Repeat("A", 10_000)},
		{"old format, unknown", strings.Repeat("A", legacyTokenLen)},
		{"version byte flipped", tamper(0)},
		{"kid flipped", tamper(2)},
		{"family flipped", tamper(8)},
		{"client flipped", tamper(len(raw) - macLen - 30)},
		{"mac flipped", tamper(len(raw) - 1)},
		{"mac cut", tokenPrefix + base64.RawURLEncoding.EncodeToString(raw[:len(raw)-1])},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wantErr(t, s, tt.token, grant.ClientID, ErrInvalid)
			if _, err := s.Lookup(context.Background(), tt.token); !errors.Is(err, ErrInvalid) {
				t.Fatalf("Lookup: %v", err)
			}
		})
	}
	// A token of another issuer's key is refused.
	other := newStore(t, t.TempDir(), testclock.Fixed())
	wantErr(t, s, issue(t, other, grant, time.Hour), grant.ClientID, ErrInvalid)
	// None of this hurt the real token.
	redeem(t, s, real, grant.ClientID, time.Hour)
}

func TestCheckVetoesWithoutRotating(t *testing.T) {
	s := newStore(t, t.TempDir(), testclock.Fixed())
	tok := issue(t, s, grant, time.Hour)
	_, next0 := redeem(t, s, tok, grant.ClientID, time.Hour)
	before := listAll(t, s)
	rec0, _ := family(t, s, next0)

	errTooWide := errors.New("scope too wide")
	var got Grant
	g, next, err := s.Redeem(context.Background(), next0, grant.ClientID, time.Hour, func(g Grant) (AccessRef, error) {
		got = g
		return AccessRef{}, errTooWide
	})
	if !errors.Is(err, errTooWide) {
		t.Fatalf("Redeem error = %v, want the check's error", err)
	}
	if next != "" || !reflect.DeepEqual(g, Grant{}) {
		t.Fatalf("vetoed Redeem returned %+v, %q", g, next)
	}
	want := grant
	want.Family = familyID(t, s, next0)
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("check saw grant %+v, want %+v", got, want)
	}
	if rec, _ := family(t, s, next0); !reflect.DeepEqual(rec, rec0) || !reflect.DeepEqual(before, listAll(t, s)) {
		t.Fatalf("a vetoed Redeem changed the family: %+v -> %+v", rec0, rec)
	}
	// A vetoed first redemption writes nothing either.
	fresh := issue(t, s, grant, time.Hour)
	if _, _, err := s.Redeem(context.Background(), fresh, grant.ClientID, time.Hour, func(Grant) (AccessRef, error) { return AccessRef{}, errTooWide }); !errors.Is(err, errTooWide) {
		t.Fatal(err)
	}
	if _, found := family(t, s, fresh); found {
		t.Fatal("a vetoed first redemption wrote the family")
	}
	// Still redeemable, once, and no reuse was recorded.
	redeem(t, s, next0, grant.ClientID, time.Hour)
	redeem(t, s, fresh, grant.ClientID, time.Hour)
}

// Revoking a family that was never redeemed writes its record then, and
// revokes the access token issued with its first token.
func TestRevokeNeverRedeemedFamily(t *testing.T) {
	clock := testclock.Fixed()
	s, rv := newStoreOn(t, &certmagic.FileStorage{Path: t.TempDir()}, clock, time.Minute)
	tok := issue(t, s, grant, time.Hour, AccessRef{JTI: "at-0", Expires: clock.Now().Add(time.Hour)})
	if _, err := s.Lookup(context.Background(), tok); err != nil {
		t.Fatalf("Lookup of a live token: %v", err)
	}
	if err := s.RevokeFamily(context.Background(), tok, grant.ClientID); err != nil {
		t.Fatal(err)
	}
	if rec, found := family(t, s, tok); !found || rec.Revoked == nil {
		t.Fatalf("family after revocation: %+v %v", rec, found)
	}
	if got := rv.list(); !reflect.DeepEqual(got, []string{"at-0"}) {
		t.Fatalf("revoked access tokens %v, want at-0", got)
	}
	wantErr(t, s, tok, grant.ClientID, ErrInvalid)
	if _, err := s.Lookup(context.Background(), tok); !errors.Is(err, ErrInvalid) {
		t.Fatalf("Lookup of a revoked token: %v", err)
	}
	// Again: nothing more to do.
	if err := s.RevokeFamily(context.Background(), tok, grant.ClientID); err != nil {
		t.Fatal(err)
	}
}

func TestLookupFollowsGenerations(t *testing.T) {
	s := newStore(t, t.TempDir(), testclock.Fixed())
	ctx := context.Background()
	t0 := issue(t, s, grant, time.Hour)
	_, t1 := redeem(t, s, t0, grant.ClientID, time.Hour)
	if _, err := s.Lookup(ctx, t0); !errors.Is(err, ErrInvalid) {
		t.Fatalf("a redeemed token is active: %v", err)
	}
	info, err := s.Lookup(ctx, t1)
	if err != nil || !reflect.DeepEqual(info.Grant, grant) {
		t.Fatalf("the current token: %+v %v", info, err)
	}
}

// Two instances on one storage redeem the same token at the same moment.
// Without a reuse interval exactly one gets a new token, the other sees a
// reuse; with one, both get the same new token. Either way the family has
// exactly one new state. meetingStorage makes each instance's read of the
// family record wait for the other instance to get there too: without the
// family lock both would read the same state, so a missing lock fails
// this test every time rather than by luck.
func TestConcurrentRedeemOneNewState(t *testing.T) {
	for _, reuse := range []time.Duration{0, 5 * time.Second} {
		t.Run(fmt.Sprint("reuse interval ", reuse), func(t *testing.T) {
			const batches, perBatch = 3, 8
			dir := t.TempDir()
			clock := testclock.Fixed()
			plain, _ := newStoreOn(t, &certmagic.FileStorage{Path: dir}, clock, reuse)
			meet := &rendezvous{meetings: map[string]*meeting{}}
			instances := make([]*Store, 2)
			for i := range instances {
				ms := &meetingStorage{Storage: &certmagic.FileStorage{Path: dir}, meet: meet, loads: map[string]int{}}
				instances[i], _ = newStoreOn(t, ms, clock, reuse)
			}
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
				testsync.AtOnce(len(tokens)*len(instances), func(k int) {
					i, n := k/len(instances), k%len(instances)
					_, next, err := instances[n].Redeem(context.Background(), tokens[i], grant.ClientID, time.Hour, nil)
					results[i][n] = result{next, err}
				})
				for i, r := range results {
					answers := map[string]bool{}
					for _, x := range r {
						switch {
						case x.err == nil:
							answers[x.next] = true
						case reuse > 0 || !errors.Is(x.err, ErrReused):
							t.Fatalf("batch %d race %d: error %v", b, i, x.err)
						}
					}
					if len(answers) != 1 {
						t.Fatalf("batch %d race %d: %d distinct new tokens, want exactly 1 (%v)", b, i, len(answers), r)
					}
					rec, _ := family(t, plain, tokens[i])
					if rec.Generation != 1 {
						t.Fatalf("batch %d race %d: family at generation %d, want 1", b, i, rec.Generation)
					}
					for winner := range answers {
						if reuse == 0 {
							// The loser's reuse revoked the family, the winner's token too.
							wantErr(t, plain, winner, grant.ClientID, ErrInvalid)
						} else {
							redeem(t, plain, winner, grant.ClientID, time.Hour)
						}
					}
				}
			}
		})
	}
}

func TestCorruptRecords(t *testing.T) {
	ctx := context.Background()
	famKey := func(s *Store, tok string) string {
		c, err := decode(tok, s.keyFor)
		if err != nil {
			t.Fatal(err)
		}
		return prefix + "/refresh_families/" + hex.EncodeToString(c.family[:])
	}
	for _, tt := range []struct {
		name     string
		content  string
		redeemed bool
	}{
		{"fresh family, record not json", "garbage", false},
		{"redeemed family, record not json", "{", true},
		{"redeemed family, wrong shape", `{"client_id":["reports"]}`, true},
		{"redeemed family, empty", "", true},
		{"family of another client", `{"client_id":"someone-else","expires":"2031-01-01T00:00:00Z"}`, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := newStore(t, t.TempDir(), testclock.Fixed())
			tok := issue(t, s, grant, time.Hour)
			if tt.redeemed {
				_, tok = redeem(t, s, tok, grant.ClientID, time.Hour)
			}
			if err := s.cfg.Storage.Store(ctx, famKey(s, tok), []byte(tt.content)); err != nil {
				t.Fatal(err)
			}
			wantErr(t, s, tok, grant.ClientID, ErrInvalid)
			if _, err := s.Lookup(ctx, tok); !errors.Is(err, ErrInvalid) {
				t.Fatalf("Lookup: %v", err)
			}
			if data, _ := s.cfg.Storage.Load(ctx, famKey(s, tok)); string(data) != tt.content {
				t.Fatalf("the corrupt record was overwritten with %s", data)
			}
		})
	}
	t.Run("MAC key corrupt", func(t *testing.T) {
		dir := t.TempDir()
		newStore(t, dir, testclock.Fixed())
		st := &certmagic.FileStorage{Path: dir}
		keys, err := st.List(ctx, prefix+"/refresh_keys", false)
		if err != nil || len(keys) != 1 {
			t.Fatalf("keys %v %v", keys, err)
		}
		if err := st.Store(ctx, keys[0], []byte(`{"kid":"zz"}`)); err != nil {
			t.Fatal(err)
		}
		if _, err := New(ctx, Config{Storage: st, Prefix: prefix}); err == nil {
			t.Fatal("a corrupt key was accepted")
		}
	})
}

// Instances starting together on one storage make one key.
func TestOneKeyForInstancesStartingTogether(t *testing.T) {
	dir := t.TempDir()
	clock := testclock.Fixed()
	stores := make([]*Store, 4)
	var wg sync.WaitGroup
	for i := range stores {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := New(context.Background(), Config{Storage: &certmagic.FileStorage{Path: dir}, Prefix: prefix, Now: clock.Now})
			if err != nil {
				t.Error(err)
			}
			stores[i] = s
		}()
	}
	wg.Wait()
	for i, s := range stores {
		tok := issue(t, s, grant, time.Hour)
		redeem(t, stores[(i+1)%len(stores)], tok, grant.ClientID, time.Hour)
	}
}

func TestSweep(t *testing.T) {
	ctx := context.Background()
	clock := testclock.Fixed()
	s := newStore(t, t.TempDir(), clock)
	if n, err := s.Sweep(ctx); n != 0 || err != nil {
		t.Fatalf("Sweep of empty storage = %d, %v", n, err)
	}
	short := issue(t, s, grant, time.Hour)
	_, shortNext := redeem(t, s, short, grant.ClientID, time.Hour) // family record, expires at +1h
	long := issue(t, s, grant, 3*time.Hour)
	_, longNext := redeem(t, s, long, grant.ClientID, 3*time.Hour)
	corrupt := prefix + "/refresh_families/" + strings.Repeat("0", 32) // left for an operator
	if err := s.cfg.Storage.Store(ctx, corrupt, []byte("garbage")); err != nil {
		t.Fatal(err)
	}
	clock.Advance(time.Hour) // at expiry: not yet swept (After, not !Before)
	if n, err := s.Sweep(ctx); n != 0 || err != nil {
		t.Fatalf("Sweep at expiry = %d, %v; want 0", n, err)
	}
	clock.Advance(time.Second)
	if n, err := s.Sweep(ctx); err != nil || n != 1 {
		t.Fatalf("Sweep after the short family expired = %d, %v; want 1", n, err)
	}
	wantErr(t, s, shortNext, grant.ClientID, ErrInvalid)
	// The live one still works, reuse of it is still detected.
	wantErr(t, s, long, grant.ClientID, ErrReused)
	clock.Advance(10 * time.Hour)
	if n, err := s.Sweep(ctx); err != nil || n != 1 {
		t.Fatalf("final Sweep = %d, %v; want 1", n, err)
	}
	if left := listAll(t, s); len(left) != 1 || left[0] != corrupt {
		t.Fatalf("after everything expired storage holds %v, want only the corrupt record", left)
	}
	wantErr(t, s, longNext, grant.ClientID, ErrInvalid)
}

func TestStoresAreSeparatedByPrefix(t *testing.T) {
	dir := t.TempDir()
	clock := testclock.Fixed()
	a := newStore(t, dir, clock)
	b, err := New(context.Background(), Config{Storage: &certmagic.FileStorage{Path: dir}, Prefix: "tokengate/issuers/other", Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	tok := issue(t, a, grant, time.Hour)
	wantErr(t, b, tok, grant.ClientID, ErrInvalid)
	redeem(t, a, tok, grant.ClientID, time.Hour)
}

func TestRedeemErrorsOnStorageFailure(t *testing.T) {
	dir := t.TempDir()
	newStore(t, dir, testclock.Fixed()) // makes the key
	s, _ := newStoreOn(t, failingStorage{&certmagic.FileStorage{Path: dir}}, testclock.Fixed(), 0)
	tok := issue(t, s, grant, time.Hour)
	if _, _, err := s.Redeem(context.Background(), tok, grant.ClientID, time.Hour, nil); err == nil || errors.Is(err, ErrInvalid) {
		t.Fatalf("Redeem with a failing storage: %v, want a storage error", err)
	}
	if _, err := New(context.Background(), Config{Storage: failingStorage{&certmagic.FileStorage{Path: t.TempDir()}}, Prefix: prefix}); err == nil {
		t.Fatal("New succeeded although the key could not be stored")
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

// meetingStorage is one instance's view of the shared storage: its first
// read of a family record waits for the other instance's.
type meetingStorage struct {
	certmagic.Storage
	meet  *rendezvous
	mu    sync.Mutex
	loads map[string]int
}

func (s *meetingStorage) Load(ctx context.Context, key string) ([]byte, error) {
	if strings.Contains(key, "/refresh_families/") {
		s.mu.Lock()
		s.loads[key]++
		n := s.loads[key]
		s.mu.Unlock()
		if n == 1 {
			s.meet.meet(key)
		}
	}
	return s.Storage.Load(ctx, key)
}

// FuzzRedeem: whatever a client sends as a refresh token, Redeem answers
// without panicking, and only the real token redeems.
func FuzzRedeem(f *testing.F) {
	s := newStore(f, f.TempDir(), testclock.Fixed())
	real, err := s.Issue(context.Background(), grant, time.Hour)
	if err != nil {
		f.Fatal(err)
	}
	for _, seed := range []string{"", "../../x", strings.Repeat("A", legacyTokenLen), tokenPrefix, real[:len(real)-2], "tgr1_AQ", "\x00", "%2e%2e%2f"} {
		f.Add(seed)
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

// FuzzDecode: the body reader, given any bytes under a valid MAC (as a
// key holder could make), never panics and accepts only what encode makes.
func FuzzDecode(f *testing.F) {
	key := &macKey{id: 7, secret: make([]byte, macKeyBytes)}
	c := claims{kid: 7, generation: 3, issued: 1, expires: 2, grant: grant, access: AccessRef{JTI: "j", Expires: time.Unix(5, 0)}}
	tok := c.encode(key)
	raw, _ := base64.RawURLEncoding.DecodeString(strings.TrimPrefix(tok, tokenPrefix))
	f.Add(raw[5 : len(raw)-macLen])
	f.Add([]byte{})
	f.Add([]byte{0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, body []byte) {
		b := append([]byte{formatVersion, 0, 0, 0, 7}, body...)
		b = append(b, key.mac(b)...)
		got, err := decode(tokenPrefix+base64.RawURLEncoding.EncodeToString(b), func(uint32) *macKey { return key })
		if err != nil {
			return
		}
		if again := got.encode(key); again != tokenPrefix+base64.RawURLEncoding.EncodeToString(b) {
			t.Fatalf("decode accepted a body encode does not make: %x", body)
		}
	})
}

// legacyToken writes an old-format refresh token and its family as the
// earlier code did (literal JSON), and returns the token.
func legacyToken(t *testing.T, st certmagic.Storage, famID string, redeemed bool, exp time.Time, access ...AccessRef) string {
	t.Helper()
	ctx := context.Background()
	tok := base64.RawURLEncoding.EncodeToString([]byte(strings.Repeat(famID[:1], legacyTokenBytes-1) + fmt.Sprint(redeemed)[:1]))
	sum := sha256.Sum256([]byte(tok))
	red := ""
	if redeemed {
		red = `,"redeemed":"2030-01-02T03:00:00Z"`
	}
	rec := fmt.Sprintf(`{"client_id":"reports","scopes":["read","write"],"audience":["https://api.example.com"],"family":%q,"issued":"2030-01-02T02:00:00Z","expires":%q%s}`,
		famID, exp.Format(time.RFC3339Nano), red)
	if err := st.Store(ctx, prefix+"/refresh/"+hex.EncodeToString(sum[:]), []byte(rec)); err != nil {
		t.Fatal(err)
	}
	acc := ""
	for i, a := range access {
		if i > 0 {
			acc += ","
		}
		acc += fmt.Sprintf(`{"jti":%q,"exp":%q}`, a.JTI, a.Expires.Format(time.RFC3339Nano))
	}
	fam := fmt.Sprintf(`{"client_id":"reports","expires":%q,"access":[%s]}`, exp.Format(time.RFC3339Nano), acc)
	if err := st.Store(ctx, prefix+"/refresh_families/"+famID, []byte(fam)); err != nil {
		t.Fatal(err)
	}
	if len(tok) != legacyTokenLen {
		t.Fatalf("legacy token of length %d", len(tok))
	}
	return tok
}

// Refresh tokens written by the earlier format keep working after an
// upgrade: introspected, redeemed once (for a token of the new format in
// the same family), their reuse revoking the family and its access tokens,
// and revoked.
func TestLegacyTokens(t *testing.T) {
	ctx := context.Background()
	clock := testclock.Fixed()
	st := &certmagic.FileStorage{Path: t.TempDir()}
	s, rv := newStoreOn(t, st, clock, 5*time.Second)
	exp := clock.Now().Add(time.Hour)
	famA := strings.Repeat("a", 32)
	tok := legacyToken(t, st, famA, false, exp, AccessRef{JTI: "old-at", Expires: exp})

	info, err := s.Lookup(ctx, tok)
	if err != nil || !reflect.DeepEqual(info.Grant, grant) {
		t.Fatalf("Lookup of an old token: %+v %v", info, err)
	}
	g, next, err := s.Redeem(ctx, tok, grant.ClientID, time.Hour, mintJTI("new-at", exp))
	if err != nil || !reflect.DeepEqual(g, grant) || !strings.HasPrefix(next, tokenPrefix) {
		t.Fatalf("redeeming an old token: %+v %q %v", g, next, err)
	}
	if rec, _ := family(t, s, next); rec.Generation != 1 || len(rec.Access) != 2 {
		t.Fatalf("the old family after redemption: %+v", rec)
	}
	if _, err := s.Lookup(ctx, tok); !errors.Is(err, ErrInvalid) {
		t.Fatalf("a redeemed old token is active: %v", err)
	}
	// Reuse of the old token revokes the family: access tokens of both formats.
	wantErr(t, s, tok, grant.ClientID, ErrReused)
	wantErr(t, s, next, grant.ClientID, ErrInvalid)
	if got := rv.list(); !reflect.DeepEqual(got, []string{"new-at", "old-at"}) {
		t.Fatalf("revoked access tokens %v", got)
	}

	// A redeemed old token (redeemed before the upgrade) is a reuse.
	famB := strings.Repeat("b", 32)
	used := legacyToken(t, st, famB, true, exp)
	wantErr(t, s, used, grant.ClientID, ErrReused)

	// Revocation of an old token.
	famC := strings.Repeat("c", 32)
	tokC := legacyToken(t, st, famC, false, exp)
	if err := s.RevokeFamily(ctx, tokC, "intruder"); !errors.Is(err, ErrForeign) {
		t.Fatalf("revoking another client's old token: %v", err)
	}
	if err := s.RevokeFamily(ctx, tokC, grant.ClientID); err != nil {
		t.Fatal(err)
	}
	wantErr(t, s, tokC, grant.ClientID, ErrInvalid)

	// Another client, expiry.
	famD := strings.Repeat("d", 32)
	tokD := legacyToken(t, st, famD, false, exp)
	wantErr(t, s, tokD, "intruder", ErrInvalid)
	clock.Advance(time.Hour)
	wantErr(t, s, tokD, grant.ClientID, ErrInvalid)
}

// TestFamilyRecordKeepsItsSize: a family whose access tokens carry its id
// in sid keeps a record of one size however often it is redeemed (issues
// 13/14: a redemption read and rewrote a list of every live access token),
// and revoking it writes one revocation, of the family's id, lasting until
// its latest access token expires.
func TestFamilyRecordKeepsItsSize(t *testing.T) {
	clock := testclock.Fixed()
	s, rv := newStoreOn(t, &certmagic.FileStorage{Path: t.TempDir()}, clock, 0)
	fam, err := NewFamily()
	if err != nil {
		t.Fatal(err)
	}
	g := grant
	g.Family = fam
	base := clock.Now().Add(time.Hour)
	tok := issue(t, s, g, time.Hour, AccessRef{JTI: "at-0", Expires: base, InSession: true})
	for _, bad := range []string{"x", fam + "00", fam[:30] + "zz"} {
		if _, err := s.Issue(context.Background(), Grant{ClientID: "c", Family: bad}, time.Hour); err == nil {
			t.Errorf("Issue took the malformed family id %q", bad)
		}
	}
	if got := familyID(t, s, tok); got != fam {
		t.Fatalf("Issue made family %s, want the caller's %s", got, fam)
	}
	var size int
	var last time.Time
	for i := 1; i <= 1000; i++ {
		last = base.Add(time.Duration(i) * time.Second)
		var sawFamily string
		_, next, err := s.Redeem(context.Background(), tok, g.ClientID, time.Hour, func(g Grant) (AccessRef, error) {
			sawFamily = g.Family
			return AccessRef{JTI: fmt.Sprint("at-", i), Expires: last, InSession: true}, nil
		})
		if err != nil {
			t.Fatalf("redemption %d: %v", i, err)
		}
		if sawFamily != fam {
			t.Fatalf("redemption %d: mint saw family %q, want %q", i, sawFamily, fam)
		}
		tok = next
		rec, _ := family(t, s, tok)
		b, err := json.Marshal(rec)
		if err != nil {
			t.Fatal(err)
		}
		if len(rec.Access) != 0 || !rec.AccessExpires.Equal(last) {
			t.Fatalf("redemption %d: record lists %d access tokens, access_exp %v, want none and %v", i, len(rec.Access), rec.AccessExpires, last)
		}
		// Only the generation's digits may add to the size.
		if i == 1 {
			size = len(b)
		} else if want := size + len(fmt.Sprint(i)) - 1; len(b) != want {
			t.Fatalf("redemption %d: record is %d bytes, want %d (%d after the first)", i, len(b), want, size)
		}
	}
	if err := s.RevokeFamily(context.Background(), tok, g.ClientID); err != nil {
		t.Fatal(err)
	}
	if got, want := rv.list(), []string{state.SessionRevocation(fam)}; !reflect.DeepEqual(got, want) {
		t.Fatalf("revoking the family revoked %q, want %q", got, want)
	}
}

// TestNeverRedeemedFamilyRevokesItsSession: a family revoked before any
// redemption revokes its id (the first access token carries it), not the
// token's jti.
func TestNeverRedeemedFamilyRevokesItsSession(t *testing.T) {
	clock := testclock.Fixed()
	s, rv := newStoreOn(t, &certmagic.FileStorage{Path: t.TempDir()}, clock, 0)
	tok := issue(t, s, grant, time.Hour, AccessRef{JTI: "at-0", Expires: clock.Now().Add(time.Hour), InSession: true})
	if err := s.RevokeFamily(context.Background(), tok, grant.ClientID); err != nil {
		t.Fatal(err)
	}
	if got, want := rv.list(), []string{state.SessionRevocation(familyID(t, s, tok))}; !reflect.DeepEqual(got, want) {
		t.Fatalf("revoked %q, want %q", got, want)
	}
}

package keys

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/certmagic"

	"github.com/tokengate/tokengate/internal/statetest"
	"github.com/tokengate/tokengate/internal/testclock"
	"github.com/tokengate/tokengate/internal/testsync"
)

const testPrefix = "tokengate/issuers/test"

func newManager(t *testing.T, st certmagic.Storage, clock *testclock.Clock, alg string, rotation, maxTTL time.Duration) *Manager {
	t.Helper()
	m, err := New(Config{Storage: st, Prefix: testPrefix, Alg: alg, Rotation: rotation, MaxTokenTTL: maxTTL, Now: clock.Now})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return m
}

func loadedManager(t *testing.T, st certmagic.Storage, clock *testclock.Clock, alg string, rotation, maxTTL time.Duration) *Manager {
	t.Helper()
	m := newManager(t, st, clock, alg, rotation, maxTTL)
	if err := m.Load(context.Background()); err != nil {
		t.Fatalf("Load: %v", err)
	}
	return m
}

func storedKeys(t *testing.T, st certmagic.Storage) []storedKey {
	t.Helper()
	data, err := st.Load(context.Background(), testPrefix+"/keys.json")
	if err != nil {
		t.Fatalf("reading keys.json: %v", err)
	}
	var set storedSet
	if err := json.Unmarshal(data, &set); err != nil {
		t.Fatalf("decoding keys.json: %v", err)
	}
	return set.Keys
}

func current(t *testing.T, m *Manager) *Key {
	t.Helper()
	k, err := m.Current()
	if err != nil {
		t.Fatalf("Current: %v", err)
	}
	return k
}

// jwksKIDs returns the kids of the published JWKS, in order.
func jwksKIDs(t *testing.T, m *Manager) []string {
	t.Helper()
	var set struct {
		Keys []map[string]any `json:"keys"`
	}
	if err := json.Unmarshal(m.JWKS(), &set); err != nil {
		t.Fatalf("JWKS is not JSON: %v", err)
	}
	var kids []string
	for _, k := range set.Keys {
		kid, _ := k["kid"].(string)
		kids = append(kids, kid)
	}
	return kids
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func TestNewRejectsBadConfig(t *testing.T) {
	st := &certmagic.FileStorage{Path: t.TempDir()}
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"unknown alg", Config{Storage: st, Alg: "HS256", Rotation: time.Hour}, "unsupported signing algorithm"},
		{"no storage", Config{Alg: ES256, Rotation: time.Hour}, "no storage"},
		{"zero rotation", Config{Storage: st, Alg: ES256}, "rotation"},
		{"negative rotation", Config{Storage: st, Alg: ES256, Rotation: -time.Hour}, "rotation"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.cfg)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("New error = %v, want one containing %q", err, tt.want)
			}
		})
	}
}

func TestCurrentBeforeLoad(t *testing.T) {
	m := newManager(t, &certmagic.FileStorage{Path: t.TempDir()}, testclock.Fixed(), ES256, time.Hour, time.Hour)
	if _, err := m.Current(); err == nil {
		t.Fatal("Current before Load returned no error")
	}
	if got := string(m.JWKS()); got != `{"keys":[]}` {
		t.Fatalf("JWKS before Load = %s, want an empty set", got)
	}
	if n := m.PublicSet().Len(); n != 0 {
		t.Fatalf("PublicSet before Load has %d keys", n)
	}
}

func TestFirstLoadGeneratesOneStoredKey(t *testing.T) {
	st := &certmagic.FileStorage{Path: t.TempDir()}
	clock := testclock.Fixed()
	m := loadedManager(t, st, clock, ES256, 24*time.Hour, time.Hour)

	stored := storedKeys(t, st)
	if len(stored) != 1 {
		t.Fatalf("storage holds %d keys after the first Load, want 1", len(stored))
	}
	cur := current(t, m)
	if cur.KID != stored[0].KID || stored[0].Alg != ES256 {
		t.Fatalf("current key %q, stored key %q (%s)", cur.KID, stored[0].KID, stored[0].Alg)
	}
	if !cur.Activates.Equal(clock.Now()) || !cur.Created.Equal(clock.Now()) {
		t.Fatalf("first key activates %v (created %v), want at once (%v)", cur.Activates, cur.Created, clock.Now())
	}
	if cur.Alg.String() != ES256 {
		t.Fatalf("current key alg %s, want ES256", cur.Alg)
	}
	if kids := jwksKIDs(t, m); len(kids) != 1 || kids[0] != cur.KID {
		t.Fatalf("JWKS kids %v, want [%s]", kids, cur.KID)
	}
	if m.PublicSet().Len() != 1 {
		t.Fatalf("PublicSet has %d keys, want 1", m.PublicSet().Len())
	}
	// Loading again changes nothing.
	if err := m.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := len(storedKeys(t, st)); n != 1 {
		t.Fatalf("storage holds %d keys after a second Load, want 1", n)
	}
}

func TestRestartLoadsSameKey(t *testing.T) {
	dir := t.TempDir()
	clock := testclock.Fixed()
	first := loadedManager(t, &certmagic.FileStorage{Path: dir}, clock, ES256, 24*time.Hour, time.Hour)
	clock.Advance(time.Hour)
	second := loadedManager(t, &certmagic.FileStorage{Path: dir}, clock, ES256, 24*time.Hour, time.Hour)

	a, b := current(t, first), current(t, second)
	if a.KID != b.KID {
		t.Fatalf("after a restart the key is %q, want %q", b.KID, a.KID)
	}
	if !a.Activates.Equal(b.Activates) || !a.Created.Equal(b.Created) {
		t.Fatalf("reloaded key times differ: %v/%v vs %v/%v", a.Created, a.Activates, b.Created, b.Activates)
	}
	// The reloaded private key is the same key: it verifies the first's signature.
	digest := make([]byte, 32)
	sig, err := a.Signer.Sign(rand.Reader, digest, crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	if !ecdsa.VerifyASN1(b.Signer.Public().(*ecdsa.PublicKey), digest, sig) {
		t.Fatal("reloaded key does not verify a signature of the original key")
	}
	if n := len(storedKeys(t, &certmagic.FileStorage{Path: dir})); n != 1 {
		t.Fatalf("storage holds %d keys after a restart, want 1", n)
	}
}

func TestConcurrentFirstLoadMakesOneKey(t *testing.T) {
	dir := t.TempDir()
	clock := testclock.Fixed()
	const instances = 3
	managers := make([]*Manager, instances)
	for i := range managers {
		managers[i] = newManager(t, &certmagic.FileStorage{Path: dir}, clock, ES256, 24*time.Hour, time.Hour)
	}
	errs := make(chan error, instances)
	testsync.AtOnce(instances, func(i int) {
		errs <- managers[i].Load(context.Background())
	})
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("Load: %v", err)
		}
	}
	stored := storedKeys(t, &certmagic.FileStorage{Path: dir})
	if len(stored) != 1 {
		t.Fatalf("%d instances starting together stored %d keys, want 1", instances, len(stored))
	}
	for i, m := range managers {
		if kid := current(t, m).KID; kid != stored[0].KID {
			t.Fatalf("instance %d signs with %q, want the stored %q", i, kid, stored[0].KID)
		}
	}
}

func TestRotation(t *testing.T) {
	ctx := context.Background()
	st := &certmagic.FileStorage{Path: t.TempDir()}
	clock := testclock.Fixed()
	const rotation = 24 * time.Hour
	m := loadedManager(t, st, clock, ES256, rotation, time.Hour)
	lead := m.lead()
	if lead != time.Hour {
		t.Fatalf("lead = %v, want 1h (min(rotation/2, 1h))", lead)
	}
	t0 := clock.Now()
	first := current(t, m)

	// Just before rotation-lead: nothing to do.
	clock.Advance(rotation - lead - time.Nanosecond)
	if err := m.rotateIfDue(ctx); err != nil {
		t.Fatal(err)
	}
	if n := len(storedKeys(t, st)); n != 1 {
		t.Fatalf("rotated %v early: %d keys stored", time.Nanosecond, n)
	}

	// At rotation-lead: a successor is published, not yet signing.
	clock.Advance(time.Nanosecond)
	if err := m.rotateIfDue(ctx); err != nil {
		t.Fatal(err)
	}
	stored := storedKeys(t, st)
	if len(stored) != 2 {
		t.Fatalf("after rotation-lead storage holds %d keys, want 2", len(stored))
	}
	next := stored[1]
	if next.KID == first.KID {
		t.Fatal("the successor has the old key's kid")
	}
	if want := t0.Add(rotation); !next.Activates.Equal(want) {
		t.Fatalf("successor activates %v, want %v (one rotation after the first)", next.Activates, want)
	}
	if kids := jwksKIDs(t, m); !contains(kids, first.KID) || !contains(kids, next.KID) {
		t.Fatalf("JWKS kids %v, want both %q and %q", kids, first.KID, next.KID)
	}
	if cur := current(t, m); cur.KID != first.KID {
		t.Fatalf("the waiting successor signs already (current %q)", cur.KID)
	}
	// Not made twice, neither by this instance nor by a restarted one.
	if err := m.rotateIfDue(ctx); err != nil {
		t.Fatal(err)
	}
	loadedManager(t, st, clock, ES256, rotation, time.Hour)
	if n := len(storedKeys(t, st)); n != 2 {
		t.Fatalf("a pending successor was made again: %d keys", n)
	}

	// Just before and at the activation.
	clock.Advance(lead - time.Nanosecond)
	if cur := current(t, m); cur.KID != first.KID {
		t.Fatalf("successor signs 1ns before its activation")
	}
	clock.Advance(time.Nanosecond)
	if cur := current(t, m); cur.KID != next.KID {
		t.Fatalf("at its activation the current key is %q, want the successor %q", cur.KID, next.KID)
	}
}

func TestReplacedKeyPrunedAfterMaxTokenTTL(t *testing.T) {
	ctx := context.Background()
	st := &certmagic.FileStorage{Path: t.TempDir()}
	clock := testclock.Fixed()
	// rotation 2h gives lead 1h: a key is made every 2h, 1h before it signs.
	const rotation, maxTTL = 2 * time.Hour, 90 * time.Minute
	m := loadedManager(t, st, clock, ES256, rotation, maxTTL)
	k1 := current(t, m).KID

	clock.Advance(time.Hour) // t0+1h: k2 made, signs from t0+2h
	if err := m.rotateIfDue(ctx); err != nil {
		t.Fatal(err)
	}
	clock.Advance(2 * time.Hour) // t0+3h: k3 made; k1 replaced 1h ago < 95m
	if err := m.rotateIfDue(ctx); err != nil {
		t.Fatal(err)
	}
	if kids := jwksKIDs(t, m); len(kids) != 3 || kids[0] != k1 {
		t.Fatalf("JWKS %v: the replaced key must stay while tokens it signed may be valid", kids)
	}
	clock.Advance(2 * time.Hour) // t0+5h: k4 made; k1 replaced 3h ago > 95m
	if err := m.rotateIfDue(ctx); err != nil {
		t.Fatal(err)
	}
	kids := jwksKIDs(t, m)
	if contains(kids, k1) {
		t.Fatalf("JWKS %v still holds %q, replaced 3h ago with max token TTL 90m", kids, k1)
	}
	if len(kids) != 3 {
		t.Fatalf("JWKS %v, want k2 (replaced 1h ago), k3 and pending k4", kids)
	}
	if n := len(storedKeys(t, st)); n != 3 {
		t.Fatalf("storage holds %d keys, want the pruned set of 3", n)
	}
}

// TestPruneBoundary pins the exact retirement time: a key replaced at r is
// kept through r+MaxTokenTTL+5m and dropped after.
func TestPruneBoundary(t *testing.T) {
	const maxTTL = time.Hour
	m := &Manager{cfg: Config{MaxTokenTTL: maxTTL}}
	r := testclock.Fixed().Now()
	mk := func(kid string, activates time.Time) *Key { return &Key{KID: kid, Activates: activates} }
	tests := []struct {
		name string
		now  time.Time
		want []string
	}{
		{"before the successor signs", r.Add(-time.Minute), []string{"old", "new"}},
		{"at replacement", r, []string{"old", "new"}},
		{"at the retirement time", r.Add(maxTTL + retireMargin), []string{"old", "new"}},
		{"just after retirement", r.Add(maxTTL + retireMargin + time.Nanosecond), []string{"new"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Given out of order on purpose: prune sorts.
			got := m.prune([]*Key{mk("new", r), mk("old", r.Add(-48*time.Hour))}, tt.now)
			var kids []string
			for _, k := range got {
				kids = append(kids, k.KID)
			}
			if strings.Join(kids, ",") != strings.Join(tt.want, ",") {
				t.Fatalf("kept %v, want %v", kids, tt.want)
			}
		})
	}
}

func TestAlgChangeActivatesNewKeyAtOnce(t *testing.T) {
	dir := t.TempDir()
	clock := testclock.Fixed()
	es := loadedManager(t, &certmagic.FileStorage{Path: dir}, clock, ES256, 24*time.Hour, time.Hour)
	old := current(t, es)
	clock.Advance(time.Minute)

	ed := loadedManager(t, &certmagic.FileStorage{Path: dir}, clock, EdDSA, 24*time.Hour, time.Hour)
	cur := current(t, ed)
	if cur.Alg.String() != EdDSA {
		t.Fatalf("after changing alg to EdDSA the current key is %s", cur.Alg)
	}
	if !cur.Activates.Equal(clock.Now()) {
		t.Fatalf("new-alg key activates %v, want at once (%v)", cur.Activates, clock.Now())
	}
	if kids := jwksKIDs(t, ed); !contains(kids, old.KID) || !contains(kids, cur.KID) {
		t.Fatalf("JWKS %v must keep the old ES256 key for tokens it signed", kids)
	}
}

// A successor already waiting under the old algorithm must not delay an
// algorithm change nor take over later.
func TestAlgChangeOverPendingKey(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	clock := testclock.Fixed()
	const rotation = 24 * time.Hour
	es := loadedManager(t, &certmagic.FileStorage{Path: dir}, clock, ES256, rotation, time.Hour)
	active := current(t, es)
	clock.Advance(rotation - es.lead())
	if err := es.rotateIfDue(ctx); err != nil {
		t.Fatal(err)
	}
	pending := storedKeys(t, &certmagic.FileStorage{Path: dir})[1]

	rs := loadedManager(t, &certmagic.FileStorage{Path: dir}, clock, EdDSA, rotation, time.Hour)
	cur := current(t, rs)
	if cur.Alg.String() != EdDSA || !cur.Activates.Equal(clock.Now()) {
		t.Fatalf("with an ES256 successor waiting, the EdDSA key is %s activating %v; want EdDSA at once (%v)",
			cur.Alg, cur.Activates, clock.Now())
	}
	kids := jwksKIDs(t, rs)
	if contains(kids, pending.KID) {
		t.Fatalf("JWKS %v still publishes the waiting ES256 key, which never signed", kids)
	}
	if !contains(kids, active.KID) {
		t.Fatalf("JWKS %v dropped the ES256 key that signed until now", kids)
	}
	clock.Advance(2 * time.Hour) // past the old successor's activation
	if err := rs.rotateIfDue(ctx); err != nil {
		t.Fatal(err)
	}
	if got := current(t, rs); got.KID != cur.KID {
		t.Fatalf("current key changed to %q (%s), want the EdDSA key %q", got.KID, got.Alg, cur.KID)
	}
	if n := len(storedKeys(t, &certmagic.FileStorage{Path: dir})); n != 2 {
		t.Fatalf("storage holds %d keys, want 2 (old ES256 and EdDSA)", n)
	}
}

var privateMembers = []string{"d", "p", "q", "dp", "dq", "qi", "k", "oth"}

func checkPublicJWKS(t *testing.T, jwks []byte, wantAlg string) {
	t.Helper()
	var set struct {
		Keys []map[string]any `json:"keys"`
	}
	if err := json.Unmarshal(jwks, &set); err != nil {
		t.Fatalf("JWKS is not JSON: %v", err)
	}
	if len(set.Keys) == 0 {
		t.Fatal("JWKS holds no key")
	}
	for _, k := range set.Keys {
		for _, member := range privateMembers {
			if _, ok := k[member]; ok {
				t.Fatalf("JWKS key %v has private member %q", k["kid"], member)
			}
		}
		if k["alg"] != wantAlg || k["use"] != "sig" || k["kid"] == "" || k["kid"] == nil {
			t.Fatalf("JWKS key has alg=%v use=%v kid=%v, want alg=%s use=sig and a kid", k["alg"], k["use"], k["kid"], wantAlg)
		}
	}
}

func TestJWKSHasNoPrivateMembers(t *testing.T) {
	for _, alg := range []string{ES256, EdDSA, RS256, PS256} {
		t.Run(alg, func(t *testing.T) {
			m := loadedManager(t, &certmagic.FileStorage{Path: t.TempDir()}, testclock.Fixed(), alg, 24*time.Hour, time.Hour)
			checkPublicJWKS(t, m.JWKS(), alg)
			if cur := current(t, m); cur.Alg.String() != alg {
				t.Fatalf("current key alg %s, want %s", cur.Alg, alg)
			}
			wantKty := map[string]string{ES256: "EC", EdDSA: "OKP", RS256: "RSA", PS256: "RSA"}[alg]
			var set struct {
				Keys []map[string]any `json:"keys"`
			}
			_ = json.Unmarshal(m.JWKS(), &set)
			if set.Keys[0]["kty"] != wantKty {
				t.Fatalf("kty %v, want %s", set.Keys[0]["kty"], wantKty)
			}
		})
	}
}

func TestLookupFindsKeyRotatedElsewhere(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	clock := testclock.Fixed()
	const rotation = 24 * time.Hour
	counted := &statetest.CountingStorage{Storage: &certmagic.FileStorage{Path: dir}}
	a := loadedManager(t, counted, clock, ES256, rotation, time.Hour)
	b := loadedManager(t, &certmagic.FileStorage{Path: dir}, clock, ES256, rotation, time.Hour)
	k1 := current(t, a).KID

	clock.Advance(rotation - b.lead())
	if err := b.rotateIfDue(ctx); err != nil {
		t.Fatal(err)
	}
	k2 := storedKeys(t, &certmagic.FileStorage{Path: dir})[1].KID

	if k, ok := a.Lookup(ctx, k2); !ok || k.KID != k2 {
		t.Fatalf("Lookup of %q (rotated in by another instance) = %v, %v", k2, k, ok)
	}
	// A known kid never reads the storage.
	before := counted.Loads.Load()
	for range 100 {
		if _, ok := a.Lookup(ctx, k1); !ok {
			t.Fatalf("Lookup of the known kid %q failed", k1)
		}
	}
	if n := counted.Loads.Load() - before; n != 0 {
		t.Fatalf("lookups of a known kid read the storage %d times", n)
	}

	// A flood of unknown kids rereads at most once per second.
	flood := func() {
		for i := range 200 {
			if _, ok := a.Lookup(ctx, fmt.Sprintf("unknown-%d", i)); ok {
				t.Fatalf("Lookup found the unknown kid %d", i)
			}
		}
	}
	steps := []struct {
		advance   time.Duration
		wantReads int64
	}{
		{0, 0}, // the lookup of k2 just reread
		{time.Second, 1},
		{999 * time.Millisecond, 1},
		{time.Millisecond, 2},
		{10 * time.Second, 3},
	}
	before = counted.Loads.Load()
	for i, s := range steps {
		clock.Advance(s.advance)
		flood()
		if n := counted.Loads.Load() - before; n != s.wantReads {
			t.Fatalf("step %d (+%v): %d storage reads in all, want %d", i, s.advance, n, s.wantReads)
		}
	}
}

// Concurrent lookups of unknown kids share one reread per second.
func TestLookupFloodConcurrent(t *testing.T) {
	ctx := context.Background()
	clock := testclock.Fixed()
	counted := &statetest.CountingStorage{Storage: &certmagic.FileStorage{Path: t.TempDir()}}
	a := loadedManager(t, counted, clock, ES256, 24*time.Hour, time.Hour)
	clock.Advance(time.Second)
	before := counted.Loads.Load()
	testsync.AtOnce(32, func(g int) {
		for i := range 20 {
			a.Lookup(ctx, fmt.Sprintf("unknown-%d-%d", g, i))
		}
	})
	if n := counted.Loads.Load() - before; n != 1 {
		t.Fatalf("640 concurrent lookups of unknown kids within one second read the storage %d times, want 1", n)
	}
}

func TestLookupWithEmptyStorage(t *testing.T) {
	// No Load yet and nothing stored: an unknown kid is simply not found.
	m := newManager(t, &certmagic.FileStorage{Path: t.TempDir()}, testclock.Fixed(), ES256, time.Hour, time.Hour)
	if k, ok := m.Lookup(context.Background(), "nope"); ok || k != nil {
		t.Fatalf("Lookup on empty storage = %v, %v", k, ok)
	}
}

func pkcs8(t *testing.T, key crypto.Signer) []byte {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

func TestCorruptStorage(t *testing.T) {
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	good := pkcs8(t, ecKey)
	set := func(keys ...storedKey) []byte {
		data, err := json.Marshal(storedSet{Keys: keys})
		if err != nil {
			t.Fatal(err)
		}
		return data
	}
	tests := []struct {
		name string
		data []byte
		want string
	}{
		{"not json", []byte("this is not json"), "corrupt"},
		{"truncated json", set(storedKey{KID: "a", Alg: ES256, PKCS8: good})[:40], "corrupt"},
		{"wrong json shape", []byte(`{"keys":{"kid":"a"}}`), "corrupt"},
		{"truncated pkcs8", set(storedKey{KID: "a", Alg: ES256, PKCS8: good[:len(good)/2]}), `signing key "a" in storage is corrupt`},
		{"empty pkcs8", set(storedKey{KID: "a", Alg: ES256}), `signing key "a" in storage is corrupt`},
		{"garbage pkcs8", set(storedKey{KID: "a", Alg: ES256, PKCS8: []byte("garbage")}), `signing key "a" in storage is corrupt`},
		{"alg does not fit the key", set(storedKey{KID: "a", Alg: RS256, PKCS8: good}), `signing key "a" in storage`},
		{"unknown alg", set(storedKey{KID: "a", Alg: "none", PKCS8: good}), `signing key "a" in storage`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := &certmagic.FileStorage{Path: t.TempDir()}
			if err := st.Store(context.Background(), testPrefix+"/keys.json", tt.data); err != nil {
				t.Fatal(err)
			}
			m := newManager(t, st, testclock.Fixed(), ES256, time.Hour, time.Hour)
			err := m.Load(context.Background())
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Load error = %v, want one containing %q", err, tt.want)
			}
			if strings.Contains(err.Error(), "PRIVATE") {
				t.Fatalf("error leaks key material: %v", err)
			}
			if _, err := m.Current(); err == nil {
				t.Fatal("Current succeeded after a failed Load")
			}
			if _, ok := m.Lookup(context.Background(), "a"); ok {
				t.Fatal("Lookup found a key in corrupt storage")
			}
			// The corrupt data is left for the operator, not overwritten.
			if got, _ := st.Load(context.Background(), testPrefix+"/keys.json"); string(got) != string(tt.data) {
				t.Fatal("Load overwrote the corrupt keys.json")
			}
		})
	}
}

func writePEM(t *testing.T, typ string, der []byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "key.pem")
	data := pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestStaticKey(t *testing.T) {
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	_, edKey, _ := ed25519.GenerateKey(rand.Reader)
	sec1, err := x509.MarshalECPrivateKey(ecKey)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		pemType string
		der     []byte
		alg     string // configured; "" means derived
		wantAlg string
	}{
		{"pkcs8 ec", "PRIVATE KEY", pkcs8(t, ecKey), "", ES256},
		{"sec1 ec", "EC PRIVATE KEY", sec1, ES256, ES256},
		{"pkcs1 rsa", "RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(rsaKey), "", RS256},
		{"pkcs1 rsa pss", "RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(rsaKey), PS256, PS256},
		{"pkcs8 rsa", "PRIVATE KEY", pkcs8(t, rsaKey), RS256, RS256},
		{"pkcs8 ed25519", "PRIVATE KEY", pkcs8(t, edKey), "", EdDSA},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			signer, err := LoadPEM(writePEM(t, tt.pemType, tt.der))
			if err != nil {
				t.Fatalf("LoadPEM: %v", err)
			}
			st := &certmagic.FileStorage{Path: t.TempDir()}
			clock := testclock.Fixed()
			m, err := New(Config{Storage: st, Prefix: testPrefix, Alg: tt.alg, Static: signer, Now: clock.Now})
			if err != nil {
				t.Fatalf("New: %v", err)
			}
			if err := m.Load(context.Background()); err != nil {
				t.Fatalf("Load: %v", err)
			}
			cur := current(t, m)
			wantKID, _ := thumbprintKID(signer)
			if cur.KID != wantKID || cur.Alg.String() != tt.wantAlg {
				t.Fatalf("current key %q (%s), want %q (%s)", cur.KID, cur.Alg, wantKID, tt.wantAlg)
			}
			checkPublicJWKS(t, m.JWKS(), tt.wantAlg)
			// Never stored, never rotated, and the kid is stable across loads.
			clock.Advance(365 * 24 * time.Hour)
			if err := m.Load(context.Background()); err != nil {
				t.Fatal(err)
			}
			if again := current(t, m); again.KID != wantKID {
				t.Fatalf("static kid changed to %q", again.KID)
			}
			if st.Exists(context.Background(), testPrefix+"/keys.json") {
				t.Fatal("a static key was written to storage")
			}
			if kids := jwksKIDs(t, m); len(kids) != 1 {
				t.Fatalf("JWKS of a static key holds %v", kids)
			}
			if _, ok := m.Lookup(context.Background(), "other"); ok {
				t.Fatal("Lookup of another kid succeeded with a static key")
			}
			if k, ok := m.Lookup(context.Background(), wantKID); !ok || k.KID != wantKID {
				t.Fatal("Lookup of the static kid failed")
			}
		})
	}
}

func TestStaticKeyRejected(t *testing.T) {
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	small, _ := rsa.GenerateKey(rand.Reader, 1024)
	_, edKey, _ := ed25519.GenerateKey(rand.Reader)
	tests := []struct {
		name string
		key  crypto.Signer
		alg  string
		want string
	}{
		{"ec key with RS256", ecKey, RS256, "cannot sign RS256"},
		{"ec key with EdDSA", ecKey, EdDSA, "cannot sign EdDSA"},
		{"P-384 key", p384, "", "P-256"},
		{"rsa 1024", small, RS256, "too small"},
		{"rsa 1024 derived alg", small, "", "too small"},
		{"rsa key with ES256", small, ES256, "cannot sign ES256"},
		{"ed25519 with ES256", edKey, ES256, "cannot sign ES256"},
		{"unsupported alg", ecKey, "HS256", "cannot sign HS256"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(Config{Storage: &certmagic.FileStorage{Path: t.TempDir()}, Alg: tt.alg, Static: tt.key})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("New error = %v, want one containing %q", err, tt.want)
			}
		})
	}
}

func TestParsePEM(t *testing.T) {
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	cert := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte("not really")})
	key := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8(t, ecKey)})
	tests := []struct {
		name    string
		data    []byte
		wantErr bool
	}{
		{"empty", nil, true},
		{"not pem", []byte("hello"), true},
		{"certificate only", cert, true},
		{"key after a certificate", append(append([]byte{}, cert...), key...), false},
		{"broken pkcs8", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte{0x30, 0x01}}), true},
		{"broken sec1", pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: []byte{0x30, 0x01}}), true},
		{"broken pkcs1", pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: []byte{0x30, 0x01}}), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			signer, err := ParsePEM(tt.data)
			if (err != nil) != tt.wantErr {
				t.Fatalf("ParsePEM error = %v, want error %v", err, tt.wantErr)
			}
			// On error the signer must be a true nil, not a typed nil.
			if tt.wantErr && signer != nil {
				t.Fatalf("ParsePEM returned a non-nil signer (%T) with its error", signer)
			}
			if !tt.wantErr && !ecKey.PublicKey.Equal(signer.Public()) {
				t.Fatal("ParsePEM returned another key")
			}
		})
	}
	if _, err := LoadPEM(filepath.Join(t.TempDir(), "missing.pem")); err == nil {
		t.Fatal("LoadPEM of a missing file succeeded")
	}
}

func TestCheckInterval(t *testing.T) {
	tests := []struct {
		rotation time.Duration
		want     time.Duration
	}{
		{30 * 24 * time.Hour, time.Minute}, // lead 1h, capped at 1m
		{time.Minute, 15 * time.Second},    // lead 30s
		{2 * time.Second, time.Second},     // floor of 1s
	}
	for _, tt := range tests {
		m := newManager(t, &certmagic.FileStorage{Path: t.TempDir()}, testclock.Fixed(), ES256, tt.rotation, time.Hour)
		if got := m.CheckInterval(); got != tt.want {
			t.Errorf("rotation %v: CheckInterval = %v, want %v", tt.rotation, got, tt.want)
		}
	}
}

// TestCheckRotatesAndRereads: the periodic check of one instance makes the
// next key when due, and another instance's check publishes it.
func TestCheckRotatesAndRereads(t *testing.T) {
	st := &certmagic.FileStorage{Path: t.TempDir()}
	clock := testclock.Fixed()
	a := loadedManager(t, st, clock, ES256, time.Hour, time.Hour)
	b := loadedManager(t, st, clock, ES256, time.Hour, time.Hour)
	if a.PublicSet().Len() != 1 || b.PublicSet().Len() != 1 {
		t.Fatalf("want one key each, got %d and %d", a.PublicSet().Len(), b.PublicSet().Len())
	}
	clock.Advance(time.Hour - a.lead())
	b.Check(context.Background())
	if b.PublicSet().Len() != 2 {
		t.Fatalf("the due check made no key: %d published", b.PublicSet().Len())
	}
	if a.PublicSet().Len() != 1 {
		t.Fatal("a saw the new key before its own check (test is not measuring the check)")
	}
	a.Check(context.Background())
	if a.PublicSet().Len() != 2 {
		t.Fatalf("a's check did not pick up b's key: %d published", a.PublicSet().Len())
	}
	// a's check must not have made a third key: one rotation, not one per instance.
	if a.PublicSet().Len() != 2 || b.PublicSet().Len() != 2 {
		t.Fatal("more than one key per rotation")
	}
}

package clients

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/caddyauth"
	"golang.org/x/crypto/bcrypt"

	"github.com/tokengate/tokengate/internal/testsync"
)

// bcryptHash makes a bcrypt hash at the minimum cost, to keep tests fast.
func bcryptHash(t testing.TB, secret string) string {
	t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte(secret), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	return string(h)
}

// argon2idHash makes an argon2id hash in `caddy hash-password` form with
// small parameters: caddyauth.Argon2idHash takes its parameters only from a
// decoded hash, so one is decoded from a template and then used to hash.
func argon2idHash(t testing.TB, secret string) string {
	t.Helper()
	salt := make([]byte, 16)
	if _, err := rand.Read(salt); err != nil {
		t.Fatal(err)
	}
	enc := base64.RawStdEncoding.EncodeToString
	template := "$argon2id$v=19$m=64,t=1,p=1$" + enc(salt) + "$" + enc(make([]byte, 32))
	params, _, err := caddyauth.DecodeHash([]byte(template))
	if err != nil {
		t.Fatal(err)
	}
	h, err := params.Hash([]byte(secret))
	if err != nil {
		t.Fatal(err)
	}
	return string(h)
}

// countingComparer counts calls of the password hash.
type countingComparer struct {
	caddyauth.Comparer
	mu     sync.Mutex
	calls  int
	hashes []string
}

func (c *countingComparer) Compare(hashed, plaintext []byte) (bool, error) {
	c.mu.Lock()
	c.calls++
	c.hashes = append(c.hashes, string(hashed))
	c.mu.Unlock()
	return c.Comparer.Compare(hashed, plaintext)
}

func (c *countingComparer) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.calls
}

// countHashes wraps the comparer of client id (and of the fake client) so
// that the test sees every call of the password hash.
func countHashes(t *testing.T, r *Registry, id string) *countingComparer {
	t.Helper()
	c, ok := r.byID[id]
	if !ok || c.comparer == nil {
		t.Fatalf("client %q has no password hash", id)
	}
	cc := &countingComparer{Comparer: c.comparer}
	c.comparer = cc
	if r.fake.comparer != nil {
		r.fake.comparer = cc
	}
	return cc
}

const oddSecret = "s3cr:t/with=odd~chars+ and space"

type fixture struct {
	reg     *Registry
	secrets map[string]string
}

func newFixture(t *testing.T) fixture {
	t.Helper()
	secrets := map[string]string{
		"plain":  oddSecret,
		"bcrypt": "bcrypt-" + oddSecret,
		"argon":  "argon-" + oddSecret,
	}
	reg, err := NewRegistry([]*Config{
		{ClientID: "plain", Secret: secrets["plain"], Scopes: []string{"read"}},
		{ClientID: "bcrypt", SecretHash: bcryptHash(t, secrets["bcrypt"])},
		{ClientID: "argon", SecretHash: argon2idHash(t, secrets["argon"])},
	})
	if err != nil {
		t.Fatalf("NewRegistry: %v", err)
	}
	return fixture{reg: reg, secrets: secrets}
}

func TestAuthenticate(t *testing.T) {
	f := newFixture(t)
	tests := []struct {
		name, id, secret string
		ok               bool
	}{
		{"plain", "plain", f.secrets["plain"], true},
		{"bcrypt", "bcrypt", f.secrets["bcrypt"], true},
		{"argon2id", "argon", f.secrets["argon"], true},
		{"plain wrong", "plain", "wrong", false},
		{"plain prefix", "plain", f.secrets["plain"][:5], false},
		{"plain with suffix", "plain", f.secrets["plain"] + "x", false},
		{"plain empty", "plain", "", false},
		{"bcrypt wrong", "bcrypt", "wrong", false},
		{"bcrypt empty", "bcrypt", "", false},
		{"argon2id wrong", "argon", "wrong", false},
		{"argon2id empty", "argon", "", false},
		{"another client's secret", "bcrypt", f.secrets["argon"], false},
		{"unknown id", "nobody", "whatever", false},
		{"unknown id, a real secret", "nobody", f.secrets["bcrypt"], false},
		{"empty id", "", f.secrets["plain"], false},
		{"id case differs", "PLAIN", f.secrets["plain"], false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := f.reg.Authenticate(tt.id, tt.secret, nil)
			if tt.ok {
				if err != nil {
					t.Fatalf("Authenticate(%q) = %v, want success", tt.id, err)
				}
				if cfg == nil || cfg.ClientID != tt.id {
					t.Fatalf("Authenticate(%q) returned config %+v", tt.id, cfg)
				}
				return
			}
			if !errors.Is(err, ErrInvalidClient) {
				t.Fatalf("Authenticate(%q) error = %v, want ErrInvalidClient", tt.id, err)
			}
			if cfg != nil {
				t.Fatalf("failed Authenticate returned a config")
			}
		})
	}
}

func TestSuccessIsCachedFailureIsNot(t *testing.T) {
	for _, id := range []string{"bcrypt", "argon"} {
		t.Run(id, func(t *testing.T) {
			f := newFixture(t)
			cc := countHashes(t, f.reg, id)
			secret := f.secrets[id]

			steps := []struct {
				secret    string
				ok        bool
				wantCalls int
				wantItems int
			}{
				{"wrong", false, 1, 0},  // a failure pays the hash
				{"wrong", false, 2, 0},  // and is not remembered
				{secret, true, 3, 1},    // a success pays the hash once
				{secret, true, 3, 1},    // then is served from the cache
				{secret, true, 3, 1},    //
				{"wrong", false, 4, 1},  // a wrong secret still pays the hash
				{"wrong2", false, 5, 1}, // each time
			}
			for i, s := range steps {
				_, err := f.reg.Authenticate(id, s.secret, nil)
				if s.ok != (err == nil) {
					t.Fatalf("step %d: Authenticate error = %v, want success %v", i, err, s.ok)
				}
				if got := cc.count(); got != s.wantCalls {
					t.Fatalf("step %d: hash called %d times in all, want %d", i, got, s.wantCalls)
				}
				if got := f.reg.verified.ItemCount(); got != s.wantItems {
					t.Fatalf("step %d: cache holds %d entries, want %d", i, got, s.wantItems)
				}
			}
		})
	}
}

func TestCacheIsPerClientAndSecret(t *testing.T) {
	const shared = "same secret for both"
	reg, err := NewRegistry([]*Config{
		{ClientID: "a", SecretHash: bcryptHash(t, shared)},
		{ClientID: "b", SecretHash: bcryptHash(t, "b's own secret")},
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := reg.Authenticate("a", shared, nil); err != nil {
		t.Fatal(err)
	}
	// a's cached success must not authenticate b with a's secret.
	if _, err := reg.Authenticate("b", shared, nil); !errors.Is(err, ErrInvalidClient) {
		t.Fatalf("b with a's cached secret: %v, want ErrInvalidClient", err)
	}
	// Nor an unknown id with a's cached secret.
	if _, err := reg.Authenticate("c", shared, nil); !errors.Is(err, ErrInvalidClient) {
		t.Fatalf("unknown id with a's cached secret: %v, want ErrInvalidClient", err)
	}
	if n := reg.verified.ItemCount(); n != 1 {
		t.Fatalf("cache holds %d entries, want 1", n)
	}
}

func TestPlainSecretsAreNotCached(t *testing.T) {
	f := newFixture(t)
	for range 3 {
		if _, err := f.reg.Authenticate("plain", f.secrets["plain"], nil); err != nil {
			t.Fatal(err)
		}
	}
	if n := f.reg.verified.ItemCount(); n != 0 {
		t.Fatalf("plain secret checks left %d cache entries, want 0", n)
	}
}

// An unknown client id pays one password hash of the same cost as a real
// client's wrong secret, and is refused even with a real client's secret.
func TestUnknownClientCostsAHash(t *testing.T) {
	f := newFixture(t)
	cc := countHashes(t, f.reg, "bcrypt")
	for _, secret := range []string{"whatever", f.secrets["bcrypt"]} {
		if _, err := f.reg.Authenticate("nobody", secret, nil); !errors.Is(err, ErrInvalidClient) {
			t.Fatalf("unknown client: %v, want ErrInvalidClient", err)
		}
	}
	if cc.count() != 2 {
		t.Fatalf("two unknown-client checks called the password hash %d times, want 2", cc.count())
	}
	for _, h := range cc.hashes {
		fakeCost, err := bcrypt.Cost([]byte(h))
		if err != nil {
			t.Fatalf("the fake hash is not a bcrypt hash: %v", err)
		}
		realCost, _ := bcrypt.Cost(f.reg.byID["bcrypt"].hash)
		if fakeCost != realCost {
			t.Fatalf("unknown clients are checked at bcrypt cost %d, real ones at %d", fakeCost, realCost)
		}
	}
	if n := f.reg.verified.ItemCount(); n != 0 {
		t.Fatalf("unknown-client checks left %d cache entries", n)
	}
}

func TestUnknownClientPlainOnlyRegistry(t *testing.T) {
	reg, err := NewRegistry([]*Config{{ClientID: "a", Secret: "x"}})
	if err != nil {
		t.Fatal(err)
	}
	// The fake of a plain-only registry is an all-zero digest; no secret
	// may match it for an unknown id, and no id may be mistaken for "a".
	for _, secret := range []string{"", "x"} {
		if _, err := reg.Authenticate("b", secret, nil); !errors.Is(err, ErrInvalidClient) {
			t.Fatalf("unknown client with %q: %v", secret, err)
		}
	}
	if _, err := reg.Authenticate("a", "x", nil); err != nil {
		t.Fatalf("known plain client: %v", err)
	}
}

func TestComparerErrorIsInternalAndHidesSecret(t *testing.T) {
	f := newFixture(t)
	const secret = "do-not-log-me"
	f.reg.byID["argon"].hash = []byte("$argon2id$broken")
	_, err := f.reg.Authenticate("argon", secret, nil)
	if err == nil || errors.Is(err, ErrInvalidClient) {
		t.Fatalf("a broken stored hash gave %v, want an internal error", err)
	}
	if strings.Contains(err.Error(), secret) {
		t.Fatalf("error leaks the presented secret: %v", err)
	}
}

func TestConcurrentAuthenticate(t *testing.T) {
	f := newFixture(t)
	var failures atomic.Int64
	testsync.AtOnce(16, func(i int) {
		id := []string{"plain", "bcrypt", "argon"}[i%3]
		if _, err := f.reg.Authenticate(id, f.secrets[id], nil); err != nil {
			failures.Add(1)
		}
		if _, err := f.reg.Authenticate(id, "wrong", nil); !errors.Is(err, ErrInvalidClient) {
			failures.Add(1)
		}
	})
	if n := failures.Load(); n != 0 {
		t.Fatalf("%d concurrent checks gave the wrong answer", n)
	}
}

func TestValidate(t *testing.T) {
	const sx = "Zq9-secret-value"
	goodBcrypt := bcryptHash(t, "x")
	goodArgon := argon2idHash(t, "x")
	tests := []struct {
		name string
		cfg  Config
		want string // "" means valid
	}{
		{"plain", Config{ClientID: "a", Secret: sx}, ""},
		{"odd secret", Config{ClientID: "a", Secret: oddSecret}, ""},
		{"bcrypt", Config{ClientID: "a", SecretHash: goodBcrypt}, ""},
		{"argon2id", Config{ClientID: "a", SecretHash: goodArgon}, ""},
		{"all fields", Config{ClientID: "svc-1.example", Secret: sx, Scopes: []string{"read", "write:all", "a!#[]~"},
			Audience: []string{"https://api.example.com"}, GrantTypes: []string{GrantClientCredentials, GrantRefreshToken},
			TokenTTL: caddy.Duration(1)}, ""},
		{"empty id", Config{Secret: sx}, "client_id: required"},
		{"id with colon", Config{ClientID: "a:b", Secret: sx}, "must not contain ':'"},
		{"id with NUL", Config{ClientID: "a\x00b", Secret: sx}, "must not contain"},
		{"id with leading space", Config{ClientID: " a", Secret: sx}, "surrounding spaces"},
		{"id with trailing tab", Config{ClientID: "a\t", Secret: sx}, "surrounding spaces"},
		{"id longer than MaxIDLength", Config{ClientID: strings.Repeat("a", MaxIDLength+1), Secret: sx}, "longer than 256 bytes"},
		{"secret and hash", Config{ClientID: "a", Secret: sx, SecretHash: goodBcrypt}, "mutually exclusive"},
		{"neither secret nor hash", Config{ClientID: "a"}, "one of secret, secret_hash, jwks, jwks_uri or public_key is required, or a TLS client certificate"},
		{"malformed bcrypt", Config{ClientID: "a", SecretHash: "$2a$10$tooshort"}, "malformed bcrypt hash"},
		{"bcrypt with bad cost", Config{ClientID: "a", SecretHash: "$2a$xx$" + strings.Repeat("a", 53)}, "malformed bcrypt hash"},
		{"truncated bcrypt", Config{ClientID: "a", SecretHash: goodBcrypt[:20]}, "malformed bcrypt hash"},
		{"malformed argon2id", Config{ClientID: "a", SecretHash: "$argon2id$v=19$m=64"}, "malformed argon2id hash"},
		{"argon2id bad salt", Config{ClientID: "a", SecretHash: "$argon2id$v=19$m=64,t=1,p=1$!!!$AAAA"}, "malformed argon2id hash"},
		{"argon2i not id", Config{ClientID: "a", SecretHash: strings.Replace(goodArgon, "argon2id", "argon2i", 1)}, "not a bcrypt or argon2id hash"},
		{"plain text as hash", Config{ClientID: "a", SecretHash: "hunter2"}, "not a bcrypt or argon2id hash"},
		{"md5 crypt", Config{ClientID: "a", SecretHash: "$1$abc$def"}, "not a bcrypt or argon2id hash"},
		{"scope with space", Config{ClientID: "a", Secret: sx, Scopes: []string{"read write"}}, "invalid scope"},
		{"scope with quote", Config{ClientID: "a", Secret: sx, Scopes: []string{`re"ad`}}, "invalid scope"},
		{"scope with backslash", Config{ClientID: "a", Secret: sx, Scopes: []string{`re\ad`}}, "invalid scope"},
		{"empty scope", Config{ClientID: "a", Secret: sx, Scopes: []string{""}}, "invalid scope"},
		{"non-ascii scope", Config{ClientID: "a", Secret: sx, Scopes: []string{"lesen-ü"}}, "invalid scope"},
		{"empty audience", Config{ClientID: "a", Secret: sx, Audience: []string{"https://x", ""}}, "audience: empty value"},
		{"unknown grant type", Config{ClientID: "a", Secret: sx, GrantTypes: []string{"password"}}, "unsupported grant type"},
		{"negative ttl", Config{ClientID: "a", Secret: sx, TokenTTL: -1}, "token_ttl"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate(true)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("Validate = %v, want nil", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Validate = %v, want an error containing %q", err, tt.want)
			}
			if tt.cfg.Secret != "" && strings.Contains(err.Error(), tt.cfg.Secret) {
				t.Fatalf("error leaks the secret: %v", err)
			}
			var oe *OptionError
			if !errors.As(err, &oe) || !strings.HasPrefix(err.Error(), fmt.Sprintf("client %q: %s", tt.cfg.ClientID, oe.Option)) {
				t.Fatalf("Validate = %#v, want an *OptionError naming its option", err)
			}
		})
	}
}

// TestValidateWritten: a value holding a placeholder is checked once it is
// replaced, not as written (the Caddyfile parser's view).
func TestValidateWritten(t *testing.T) {
	for _, hash := range []string{"{env.REPORTS_HASH}", "{file./run/secrets/hash}"} {
		c := Config{ClientID: "a", SecretHash: hash}
		if err := c.Validate(false); err != nil {
			t.Errorf("%s as written: %v", hash, err)
		}
		if err := c.Validate(true); err == nil || !strings.Contains(err.Error(), "secret_hash: not a bcrypt or argon2id hash") {
			t.Errorf("%s replaced: %v", hash, err)
		}
	}
	// Everything else is checked as written too.
	c := Config{ClientID: "a", SecretHash: "{env.H}", GrantTypes: []string{"password"}}
	if err := c.Validate(false); err == nil || !strings.Contains(err.Error(), `unsupported grant type "password"`) {
		t.Errorf("grant type as written: %v", err)
	}
	c = Config{ClientID: "a", SecretHash: "hunter2"}
	if err := c.Validate(false); err == nil {
		t.Error("a plain-text secret_hash passed as written")
	}
}

func TestValidateListDuplicateIDs(t *testing.T) {
	err := ValidateList([]*Config{
		{ClientID: "a", Secret: "x"},
		{ClientID: "b", Secret: "y"},
		{ClientID: "a", SecretHash: bcryptHash(t, "z")},
	}, true)
	var oe *OptionError
	if !errors.As(err, &oe) || oe.Index != 2 || err.Error() != `client "a": defined more than once` {
		t.Fatalf("ValidateList = %v, want the third client defined more than once", err)
	}
	err = ValidateList([]*Config{{ClientID: "a", Secret: "x"}, {ClientID: "b", Secret: "y", Scopes: []string{"a b"}}}, true)
	if !errors.As(err, &oe) || oe.Index != 1 || oe.Option != "scopes" {
		t.Fatalf("ValidateList = %v, want the second client's scopes", err)
	}
}

func TestGetAndAll(t *testing.T) {
	f := newFixture(t)
	cfg, ok := f.reg.Get("plain")
	if !ok || cfg.ClientID != "plain" || len(cfg.Scopes) != 1 || cfg.Scopes[0] != "read" {
		t.Fatalf("Get(plain) = %+v, %v", cfg, ok)
	}
	if _, ok := f.reg.Get("nobody"); ok {
		t.Fatal("Get of an unknown id succeeded")
	}
	ids := map[string]bool{}
	for _, c := range f.reg.All() {
		ids[c.ClientID] = true
	}
	if len(ids) != 3 || !ids["plain"] || !ids["bcrypt"] || !ids["argon"] {
		t.Fatalf("All = %v, want plain, bcrypt and argon", ids)
	}
}

func TestAllows(t *testing.T) {
	tests := []struct {
		grants []string
		grant  string
		want   bool
	}{
		{nil, GrantClientCredentials, true},
		{nil, GrantRefreshToken, false},
		{[]string{GrantRefreshToken}, GrantClientCredentials, false},
		{[]string{GrantRefreshToken}, GrantRefreshToken, true},
		{[]string{GrantClientCredentials, GrantRefreshToken}, GrantRefreshToken, true},
		{[]string{GrantClientCredentials}, "password", false},
	}
	for _, tt := range tests {
		c := &Config{GrantTypes: tt.grants}
		if got := c.Allows(tt.grant); got != tt.want {
			t.Errorf("grant_types %v: Allows(%q) = %v, want %v", tt.grants, tt.grant, got, tt.want)
		}
	}
}

// FuzzAuthenticate: whatever id and secret a request carries, Authenticate
// answers without panicking, and succeeds only for a client's own secret.
func FuzzAuthenticate(f *testing.F) {
	f.Add("plain", oddSecret)
	f.Add("bcrypt", "")
	f.Add("", "")
	f.Add("plain\x00", oddSecret)
	f.Add("nobody", "bcrypt-"+oddSecret)
	reg, err := NewRegistry([]*Config{
		{ClientID: "plain", Secret: oddSecret},
		{ClientID: "bcrypt", SecretHash: bcryptHash(f, "bcrypt-"+oddSecret)},
	})
	if err != nil {
		f.Fatal(err)
	}
	want := map[string]string{"plain": oddSecret, "bcrypt": "bcrypt-" + oddSecret}
	f.Fuzz(func(t *testing.T, id, secret string) {
		cfg, err := reg.Authenticate(id, secret, nil)
		if s, ok := want[id]; ok && s == secret {
			if err != nil || cfg.ClientID != id {
				t.Fatalf("Authenticate(%q, right secret) = %v, %v", id, cfg, err)
			}
			return
		}
		if !errors.Is(err, ErrInvalidClient) || cfg != nil {
			t.Fatalf("Authenticate(%q, %q) = %v, %v; want ErrInvalidClient", id, secret, cfg, err)
		}
	})
}

// TestClaimsChecked: a client's own claims are checked where every client
// rule is (ValidateList), whoever made the client, and encoded once, by
// name, compactly.
func TestClaimsChecked(t *testing.T) {
	raw := func(s string) json.RawMessage { return json.RawMessage(s) }
	for _, name := range ReservedClaims {
		c := &Config{ClientID: "c", Secret: "s", Claims: map[string]json.RawMessage{"ok": raw(`1`), name: raw(`"x"`)}}
		err := ValidateList([]*Config{c}, true)
		var oe *OptionError
		if !errors.As(err, &oe) || oe.Option != "claims."+name {
			t.Errorf("reserved claim %s: %v", name, err)
		}
	}
	bad := map[string]map[string]json.RawMessage{
		"null":      {"a": raw(`null`)},
		"not JSON":  {"a": raw(`{`)},
		"empty":     {"": raw(`1`)},
		"too large": {"a": raw(`"` + strings.Repeat("x", MaxClaimsSize) + `"`)},
	}
	for name, cl := range bad {
		if err := (&Config{ClientID: "c", Secret: "s", Claims: cl}).Validate(true); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	c := &Config{ClientID: "c", Secret: "s", Claims: map[string]json.RawMessage{"z": raw(`[1, 2]`), "a": raw(` {"k" : "v"} `)}}
	if _, err := NewRegistry([]*Config{c}); err != nil {
		t.Fatal(err)
	}
	if got, want := string(c.ClaimsJSON()), `,"a":{"k":"v"},"z":[1,2]`; got != want {
		t.Errorf("ClaimsJSON = %s, want %s", got, want)
	}
}

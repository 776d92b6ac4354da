// Package state names the operations the issuer's shared state offers, so
// that each backend does them the best way it has: Caddy's storage (the
// embedded default: internal/revocation and internal/refresh, with a file
// lock and per-writer change logs) or Redis (issue 14: a Lua script and
// pub/sub). It holds interfaces only; statetest-style conformance tests
// live next to each implementation until a second backend exists.
//
// The operations are the issuer's, not a key-value store's: a backend is
// free to lay its data out as it likes, provided what these interfaces
// promise holds across every instance sharing it.
package state

import (
	"context"
	"errors"
	"time"

	"github.com/caddyserver/certmagic"
)

// ErrUnavailable wraps a backend's failure to reach its store: the
// endpoints that need the store answer 503 temporarily_unavailable with
// Retry-After, and nothing is reported as done.
var ErrUnavailable = errors.New("issuer state temporarily unavailable")

// ErrCorrupt is a record that cannot be read: the tokens it concerns are
// refused rather than guessed at.
var ErrCorrupt = errors.New("corrupt refresh token family record")

// Backend is a guest module of the tokengate.state namespace: where an
// issuer's state lives (tokengate.state.caddy_storage, the default, or
// tokengate.state.redis).
type Backend interface {
	// Open returns the state of the issuer whose storage prefix is
	// prefix. It should not fail because the store is unreachable: the
	// handles it returns answer ErrUnavailable until the store is back.
	Open(ctx context.Context, prefix string) (*Handles, error)
}

// Handles are one issuer's state on a backend.
type Handles struct {
	// Storage holds the signing keys and the refresh token MAC keys, and
	// takes the locks that make their rotation happen once.
	Storage certmagic.Storage
	// Revocations and Families, when nil, are kept in Storage
	// (internal/revocation, internal/refresh).
	Revocations Revocations
	Families    Families
	// Clients, when nil, are kept in Storage (internal/state/caddystorage).
	Clients Clients
	// SeenOnce, when nil, is kept in Storage (internal/state/caddystorage).
	SeenOnce SeenOnce
	// Close, when set, releases what Open took.
	Close func()
}

// ResetNotifier is a Handles.Storage that notices when its store lost its
// data (a Redis restarted empty or flushed): it calls each f registered
// with OnReset once it has noticed, so that what was loaded from the lost
// store (the refresh token MAC keys) is loaded again.
type ResetNotifier interface {
	OnReset(f func())
}

// Settler is a Handles.Storage whose store can come back empty while
// instances that still hold its data write it back within moments (a
// Redis restarted empty). Settling reports whether the store is in that
// moment: it has just been found empty (new, or lost), so what it lacks
// may still come. internal/keys makes no first signing key while it is,
// so that an instance starting then signs with the keys written back
// rather than a key of its own that would replace them.
type Settler interface {
	Settling(ctx context.Context) (bool, error)
}

// Revocations is the list of revoked access tokens, by jti.
type Revocations interface {
	// Revoke denies the token with this jti until its exp (plus the
	// validators' leeway). When it returns nil the revocation is durable,
	// and this handle refuses the token at once.
	Revoke(ctx context.Context, jti string, exp time.Time) error
	// IsRevoked is a lookup in this handle's memory, with no I/O; the
	// gate calls it on every request.
	IsRevoked(jti string) bool
	// Sync brings the handle up to date with revocations made through
	// other handles, reading only what changed since its last Sync, and
	// drops expired ones. A backend that pushes changes may make it cheap.
	Sync(ctx context.Context) error
}

// SessionRevocation is the key under which Revocations holds the
// revocation of a refresh token family: every access token whose sid claim
// is sid (the family's id) is refused while it is revoked. Issued jtis are
// random and never take this form.
func SessionRevocation(sid string) string { return "sid:" + sid }

// Families holds the state of refresh token families: which generation of
// a family is current, whether the family is revoked, and which access
// tokens were issued with it. Refresh tokens themselves carry what they
// stand for (internal/refresh), so a family has no record until its first
// redemption or revocation.
type Families interface {
	// Load reads a family's record; found is false when it has none.
	Load(ctx context.Context, id string) (rec Family, found bool, err error)
	// Update is the compare-and-set of a redemption or revocation: it
	// calls decide with the family's current record and stores the record
	// decide returns when write is true, so that of any number of
	// concurrent Updates of one family across all instances each sees the
	// result of the ones before it. decide may be called more than once
	// (a backend may retry an optimistic transaction) and must only
	// decide; its error is returned as is, and nothing is stored.
	Update(ctx context.Context, id string, decide func(rec Family, found bool) (next Family, write bool, err error)) error
}

// Family is the record of a refresh token family.
type Family struct {
	ClientID string `json:"client_id"`
	// Generation is the generation of the family's current refresh token:
	// a token of an earlier generation is a reuse. A family without a
	// record is at generation 0.
	Generation uint64 `json:"generation,omitempty"`
	// Rotated is when Generation was reached: a retry of the previous
	// generation within the reuse interval gets the same answer.
	Rotated time.Time `json:"rotated,omitzero"`
	// Expires is when the family's newest token expires; the record may
	// be deleted after it.
	Expires time.Time  `json:"expires"`
	Revoked *time.Time `json:"revoked,omitempty"`
	// Access lists unexpired access tokens issued with the family's
	// refresh tokens that carry no sid claim, so revoking the family
	// revokes them one by one (RFC 7009 §2.1). Records written before the
	// sid claim list every one; a new record holds at most the first
	// access token, which a refresh token of the old format names.
	Access []AccessRef `json:"access,omitempty"`
	// AccessExpires is when the latest access token issued with the
	// family (carrying its id in sid) expires: revoking the family writes
	// one revocation (SessionRevocation) lasting until then, so the record
	// stays the same size however often the family is redeemed.
	AccessExpires time.Time `json:"access_exp,omitzero"`
}

// AccessRef names an access token issued together with a refresh token.
type AccessRef struct {
	JTI     string    `json:"jti"`
	Expires time.Time `json:"exp"`
	// InSession: the token carries its family's id in its sid claim, so
	// the family's one revocation covers it and it is not listed.
	InSession bool `json:"-"`
}

// SeenOnceMaxTTL is the longest a SeenOnce claim may last: a backend may
// refuse a claim whose until lies further ahead.
const SeenOnceMaxTTL = 15 * time.Minute

// SeenOnce is the issuer's cluster-wide replay set: values (the jti of a
// client assertion) that may each be accepted once until they expire.
type SeenOnce interface {
	// Claim records key until the time given and reports whether this is
	// its first claim: of any number of concurrent Claims of one key
	// across every instance sharing the state, exactly one is first, until
	// the key's time has passed; then the key may be claimed again. A
	// backend stores a hash of key, never key itself. When the store
	// cannot be reached the error wraps ErrUnavailable and the claim must
	// be refused: nothing is known to be recorded.
	Claim(ctx context.Context, key string, until time.Time) (first bool, err error)
}

// Package refresh issues, rotates and revokes refresh tokens so that every
// instance sharing the issuer's state can redeem them, each generation at
// most once, and so that issuing one writes nothing.
//
// # A token carries what it stands for
//
// A refresh token is its family id (random), its generation in the family,
// the client, the grant (scopes, audiences), its lifetime and, for a
// family's first token, the access token issued with it, all under an
// HMAC-SHA-256 with a key kept in storage (mackey.go, made once under the
// storage lock like the signing keys, named by a kid in every token).
// Issuing one is a MAC: nothing is written, so a million outstanding
// refresh tokens cost no storage and no memory anywhere.
//
// # A family's record is written when something happens to it
//
// A family gets a record (state.Family) at its first redemption or
// revocation; the record holds the generation of its current token. A
// redemption is one compare-and-set of that record (state.Families.Update,
// under the storage lock of the family on Caddy's storage): a token of the
// current generation advances the family and gets the next generation's
// token; a token of an earlier one is a reuse, and revokes the whole family
// (RFC 9700 §4.14.2): whoever holds the newest token loses it too, since
// the server cannot tell the thief from the client. A token whose family
// has no record is of generation 0, never redeemed, so reuse is detected
// although nothing was stored when it was issued.
//
// # Retries within the reuse interval
//
// A client whose answer was lost retries with the same token. Within
// ReuseInterval of the redemption it gets the same answer again: the same
// successor token (derived, not stored: the successor's fields are the
// family, the next generation, the time of the redemption and the grant, so
// its MAC comes out the same) and a newly minted access token. After the
// interval the retry is a reuse and revokes the family. This also settles
// two instances redeeming one token at the same moment: both answer with
// the one successor, and the family has one new state.
//
// # When the store loses its data
//
// A family's record is only in the store. A store that lost its data (a
// Redis restarted empty) can no longer tell a redeemed token from one
// never redeemed, so every token made before the loss is refused: the MAC
// keys are never written back (StoreBound), and a redemption counts only if
// the token's key is still in the store after the family's record was read
// and written (keyStored). A backend that notices the loss tells the store
// (state.ResetNotifier), which then loads or makes the new key at once.
//
// # Old tokens
//
// Refresh tokens of the earlier format (random, stored by hash at issuance,
// legacy.go) are redeemed, revoked and introspected as before; their
// successors are tokens of this format, in the same family.
package refresh

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"sync"
	"sync/atomic"
	"time"

	"github.com/caddyserver/certmagic"
	"go.uber.org/zap"

	"github.com/tokengate/tokengate/internal/state"
)

// Grant is what a refresh token stands for.
type Grant struct {
	ClientID string   `json:"client_id"`
	Scopes   []string `json:"scopes,omitempty"`
	Audience []string `json:"audience,omitempty"`
	// Family is the id of the refresh token family (hex), the sid claim
	// of the access tokens issued with it. Redeem sets it in the grant it
	// gives mint; Issue takes it from the caller (NewFamily), or makes one
	// when empty. It is not part of a refresh token's grant.
	Family string `json:"-"`
}

// NewFamily makes the id of a new refresh token family, for Issue and the
// sid claim of the access token issued with it.
func NewFamily() (string, error) {
	var f [16]byte
	if _, err := rand.Read(f[:]); err != nil {
		return "", err
	}
	return hex.EncodeToString(f[:]), nil
}

// AccessRef names an access token issued together with a refresh token.
type AccessRef = state.AccessRef

// Errors of Redeem. Both are answered with invalid_grant.
var (
	// ErrInvalid: unknown, malformed, expired, revoked, or another client's token.
	ErrInvalid = errors.New("refresh token is invalid, expired or revoked")
	// ErrReused: the token was already used; its family is now revoked.
	ErrReused = errors.New("refresh token was already used; its family is revoked")
)

// ErrForeign is returned by RevokeFamily for another client's token.
var ErrForeign = errors.New("refresh token belongs to another client")

// DefaultReuseInterval is how long a retry of a redeemed refresh token gets
// the same answer rather than revoking the family.
const DefaultReuseInterval = 5 * time.Second

// Config is what a Store needs.
type Config struct {
	Storage certmagic.Storage
	// Prefix is the storage key prefix of the issuer owning the tokens.
	Prefix string
	// Families holds the family records. Default: Caddy's storage
	// (Storage, Prefix), under the storage lock of each family.
	Families state.Families
	// ReuseInterval: a retry of a redeemed token within it gets the same
	// answer. Zero: every reuse revokes the family.
	ReuseInterval time.Duration
	// RevokeAccess, when set, is called for each unexpired access token of
	// a family being revoked.
	RevokeAccess func(ctx context.Context, ref AccessRef) error
	Now          func() time.Time
	Logger       *zap.Logger
}

// Store issues and redeems the refresh tokens of one issuer.
type Store struct {
	cfg      Config
	families state.Families
	legacy   *storageFamilies // where tokens of the old format live

	// ring holds the MAC keys once loaded; a backend unreachable at start
	// leaves it empty until the first request that needs it (kmu).
	ring atomic.Pointer[keyRing]
	kmu  sync.Mutex
}

// New makes a Store and loads (or makes) its MAC key from storage.
func New(ctx context.Context, cfg Config) (*Store, error) {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	if cfg.Storage == nil {
		return nil, errors.New("no storage for refresh tokens")
	}
	s := &Store{cfg: cfg, families: cfg.Families}
	s.legacy = newStorageFamilies(cfg.Storage, cfg.Prefix, cfg.Logger)
	if s.families == nil {
		s.families = s.legacy
	}
	if n, ok := cfg.Storage.(state.ResetNotifier); ok {
		n.OnReset(s.forgetKeys)
	}
	if _, err := s.loadKeys(ctx); errors.Is(err, state.ErrUnavailable) {
		cfg.Logger.Warn("refresh token keys not loaded: state unavailable; loading them when needed", zap.Error(err))
	} else if err != nil {
		return nil, fmt.Errorf("loading refresh token keys: %v", err)
	}
	return s, nil
}

// ready returns the MAC keys, loading them if the state was unreachable
// until now; its error wraps state.ErrUnavailable when it still is.
func (s *Store) ready(ctx context.Context) (*keyRing, error) {
	if r := s.ring.Load(); r != nil {
		return r, nil
	}
	s.kmu.Lock()
	defer s.kmu.Unlock()
	if r := s.ring.Load(); r != nil {
		return r, nil
	}
	r, err := s.loadKeys(ctx)
	if err != nil {
		return nil, fmt.Errorf("loading refresh token keys: %w", err)
	}
	return r, nil
}

// Issue makes the first refresh token of a new family, valid for ttl;
// access names the access token issued with it. It writes nothing.
func (s *Store) Issue(ctx context.Context, g Grant, ttl time.Duration, access ...AccessRef) (string, error) {
	r, err := s.ready(ctx)
	if err != nil {
		return "", err
	}
	fam := g.Family
	if fam == "" {
		if fam, err = NewFamily(); err != nil {
			return "", err
		}
	}
	g.Family = ""
	c := claims{grant: g}
	if len(fam) != hex.EncodedLen(len(c.family)) {
		return "", errors.New("refresh: malformed family id")
	}
	if _, err := hex.Decode(c.family[:], []byte(fam)); err != nil {
		return "", errors.New("refresh: malformed family id")
	}
	now := s.cfg.Now()
	c.issued, c.expires = now.Unix(), now.Add(ttl).Unix()
	if len(access) > 0 {
		c.access = access[0]
		if c.access.InSession {
			// The token names the family's revocation, not its own.
			c.access.JTI = state.SessionRevocation(fam)
		}
	}
	return c.encode(r.current), nil
}

// parse checks a token of this format: its MAC, and that it is unexpired.
// Its error is ErrInvalid, or wraps state.ErrUnavailable when the keys
// cannot be loaded. It returns the keys it checked the token with, which
// make the successor (the store may forget its keys meanwhile).
func (s *Store) parse(ctx context.Context, token string) (*claims, *keyRing, error) {
	r, err := s.ready(ctx)
	if err != nil {
		return nil, nil, err
	}
	c, err := decode(token, r.keyFor)
	if err != nil || s.cfg.Now().Unix() >= c.expires {
		return nil, nil, ErrInvalid
	}
	return c, r, nil
}

// outcome is what a redemption did to a family.
type outcome int

const (
	advanced outcome = iota + 1 // the token's generation was current
	retried                     // the previous generation, within the reuse interval
	reused                      // an earlier generation: the family is revoked
)

// Redeem exchanges a refresh token of clientID for its grant and a new
// refresh token valid for ttl. mint, when not nil, vets the grant and
// mints the access token before anything changes: its error is returned as
// is and the token stays unredeemed (a request asking for too wide a scope
// must not cost the client its refresh token); the access token it names
// joins the family, to be revoked with it.
func (s *Store) Redeem(ctx context.Context, token, clientID string, ttl time.Duration, mint func(Grant) (AccessRef, error)) (Grant, string, error) {
	if isLegacy(token) {
		return s.redeemLegacy(ctx, token, clientID, ttl, mint)
	}
	c, ring, err := s.parse(ctx, token)
	if errors.Is(err, state.ErrUnavailable) {
		return Grant{}, "", err
	}
	if err != nil || c.grant.ClientID != clientID {
		return Grant{}, "", ErrInvalid
	}
	famID := hex.EncodeToString(c.family[:])
	var (
		ref    AccessRef
		minted bool
		out    outcome
		final  state.Family
	)
	err = s.families.Update(ctx, famID, func(rec state.Family, found bool) (state.Family, bool, error) {
		now := s.cfg.Now()
		if !found {
			rec = newRecord(c, famID)
		}
		if rec.Revoked != nil || rec.ClientID != clientID {
			return rec, false, ErrInvalid
		}
		switch {
		case c.generation == rec.Generation:
			out = advanced
			rec.Generation++
			rec.Rotated = now
			rec.Expires = maxTime(rec.Expires, now.Add(ttl))
		case c.generation+1 == rec.Generation && now.Sub(rec.Rotated) < s.cfg.ReuseInterval:
			out = retried
		case c.generation < rec.Generation:
			out = reused
			rec.Revoked = &now
			final = rec
			return rec, true, nil
		default:
			// Ahead of its family: the record was lost or rolled back.
			return rec, false, ErrInvalid
		}
		if !minted && mint != nil {
			var err error
			g := c.grant
			g.Family = famID
			if ref, err = mint(g); err != nil {
				return rec, false, err
			}
			minted = true
		}
		withAccess(&rec, ref, now)
		final = rec
		return rec, true, nil
	})
	if err == nil {
		// Whatever the record said, it counts only if it was the record
		// of the store the token's key belongs to.
		err = s.keyStored(ctx, c.key)
	}
	if err := s.settle(ctx, err, out, final, clientID, famID); err != nil {
		return Grant{}, "", err
	}
	if out == retried {
		s.cfg.Logger.Info("refresh token retried within the reuse interval; same answer", zap.String("client_id", clientID), zap.String("family", famID))
	}
	return c.grant, successor(ring, c.family, c.grant, final, ttl), nil
}

// settle finishes a redemption whose Update returned err: a reuse revokes
// the family's access tokens and is ErrReused; an unreadable record is
// ErrInvalid.
func (s *Store) settle(ctx context.Context, err error, out outcome, final state.Family, clientID, famID string) error {
	switch {
	case errors.Is(err, errCorrupt):
		return ErrInvalid
	case err != nil:
		return err
	case out != reused:
		return nil
	}
	if err := s.revokeAccess(ctx, final, famID); err != nil {
		return err
	}
	s.cfg.Logger.Info("refresh token reused; family revoked", zap.String("client_id", clientID), zap.String("family", famID))
	return ErrReused
}

// newRecord is the record of a family first redeemed or revoked with the
// token c: the access token issued with it is covered by the family's
// revocation (InSession at Issue), or, for a token issued before the sid
// claim, listed.
func newRecord(c *claims, famID string) state.Family {
	rec := state.Family{ClientID: c.grant.ClientID, Expires: time.Unix(c.expires, 0)}
	switch c.access.JTI {
	case "":
	case state.SessionRevocation(famID):
		rec.AccessExpires = c.access.Expires
	default:
		rec.Access = []AccessRef{c.access}
	}
	return rec
}

// withAccess drops the expired access tokens listed in a family's record
// and adds ref: to AccessExpires when it carries the family's id in sid
// (the record keeps its size), to the list otherwise.
func withAccess(rec *state.Family, ref AccessRef, now time.Time) {
	rec.Access = live(rec.Access, now)
	switch {
	case ref.InSession:
		rec.AccessExpires = maxTime(rec.AccessExpires, ref.Expires)
	case ref.JTI != "":
		rec.Access = append(rec.Access, ref)
	}
}

// successor is the token of a family's current generation, made at its
// rotation: every field comes from the record and the grant, so a retry
// gets the same token.
func successor(r *keyRing, family [16]byte, g Grant, rec state.Family, ttl time.Duration) string {
	c := claims{family: family, generation: rec.Generation, grant: g, issued: rec.Rotated.Unix(), expires: rec.Rotated.Add(ttl).Unix()}
	return c.encode(r.current)
}

// revokeAccess revokes the unexpired access tokens of a revoked family:
// with one revocation of its id (SessionRevocation) those that carry it in
// sid, and one by one those listed.
func (s *Store) revokeAccess(ctx context.Context, rec state.Family, famID string) error {
	if s.cfg.RevokeAccess == nil {
		return nil
	}
	refs := rec.Access
	if !rec.AccessExpires.IsZero() {
		refs = append(refs[:len(refs):len(refs)], AccessRef{JTI: state.SessionRevocation(famID), Expires: rec.AccessExpires})
	}
	for _, ref := range live(refs, s.cfg.Now()) {
		if err := s.cfg.RevokeAccess(ctx, ref); err != nil {
			return fmt.Errorf("revoking access tokens of a refresh token family: %w", err)
		}
	}
	return nil
}

// RevokeFamily revokes the family of clientID's refresh token (RFC 7009):
// every refresh token of it, and the access tokens issued with them. An
// unknown, malformed or expired token is ErrInvalid; another client's
// token is ErrForeign. A family never redeemed gets its record now.
func (s *Store) RevokeFamily(ctx context.Context, token, clientID string) error {
	if isLegacy(token) {
		return s.revokeLegacy(ctx, token, clientID)
	}
	c, _, err := s.parse(ctx, token)
	if errors.Is(err, state.ErrUnavailable) {
		return err
	}
	if err != nil {
		return ErrInvalid
	}
	if c.grant.ClientID != clientID {
		return ErrForeign
	}
	famID := hex.EncodeToString(c.family[:])
	fresh := newRecord(c, famID)
	return s.revokeFamily(ctx, s.families, famID, clientID, &fresh)
}

// revokeFamily marks a family revoked and revokes its access tokens. A
// family without a record gets fresh, or is ErrInvalid when fresh is nil.
func (s *Store) revokeFamily(ctx context.Context, fams state.Families, famID, clientID string, fresh *state.Family) error {
	var final state.Family
	revoked := false
	err := fams.Update(ctx, famID, func(rec state.Family, found bool) (state.Family, bool, error) {
		switch {
		case !found && fresh == nil:
			return rec, false, ErrInvalid
		case !found:
			rec = *fresh
		}
		if rec.ClientID != clientID {
			return rec, false, ErrForeign
		}
		if rec.Revoked != nil {
			return rec, false, nil
		}
		now := s.cfg.Now()
		rec.Revoked = &now
		final, revoked = rec, true
		return rec, true, nil
	})
	if errors.Is(err, errCorrupt) {
		return ErrInvalid
	}
	if err != nil || !revoked {
		return err
	}
	if err := s.revokeAccess(ctx, final, famID); err != nil {
		return err
	}
	s.cfg.Logger.Info("refresh token family revoked", zap.String("client_id", clientID), zap.String("family", famID))
	return nil
}

// Info describes a refresh token, for introspection.
type Info struct {
	Grant
	Issued  time.Time
	Expires time.Time
}

// Lookup returns what an active refresh token stands for: authentic, not
// expired, of its family's current generation, the family not revoked.
// Anything else is ErrInvalid.
func (s *Store) Lookup(ctx context.Context, token string) (Info, error) {
	if isLegacy(token) {
		return s.lookupLegacy(ctx, token)
	}
	c, _, err := s.parse(ctx, token)
	if errors.Is(err, state.ErrUnavailable) {
		return Info{}, err
	}
	if err != nil {
		return Info{}, ErrInvalid
	}
	rec, found, err := s.families.Load(ctx, hex.EncodeToString(c.family[:]))
	switch {
	case errors.Is(err, errCorrupt):
		return Info{}, ErrInvalid
	case err != nil:
		return Info{}, err
	case found && (rec.Revoked != nil || rec.Generation != c.generation || rec.ClientID != c.grant.ClientID):
		return Info{}, ErrInvalid
	case !found && c.generation != 0:
		return Info{}, ErrInvalid
	}
	if err := s.keyStored(ctx, c.key); err != nil {
		return Info{}, err
	}
	return Info{Grant: c.grant, Issued: time.Unix(c.issued, 0), Expires: time.Unix(c.expires, 0)}, nil
}

// live drops the access tokens that expired before now.
func live(refs []AccessRef, now time.Time) []AccessRef {
	out := refs[:0:0]
	for _, r := range refs {
		if now.Before(r.Expires.Add(time.Minute)) {
			out = append(out, r)
		}
	}
	return out
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// Sweep deletes the family records and old-format token records that have
// expired. Only families that were redeemed or revoked have records; a
// redeemed old-format record is kept until its own expiry so that its
// reuse is still detected.
func (s *Store) Sweep(ctx context.Context) (int, error) {
	now := s.cfg.Now()
	deleted := 0
	for _, dir := range []string{s.cfg.Prefix + "/refresh", s.cfg.Prefix + "/refresh_families"} {
		keys, err := s.cfg.Storage.List(ctx, dir, false)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return deleted, fmt.Errorf("listing %s: %v", dir, err)
		}
		for _, k := range keys {
			var v struct {
				Expires time.Time `json:"expires"`
			}
			found, err := loadJSON(ctx, s.cfg.Storage, s.cfg.Logger, k, &v)
			if err != nil || !found {
				// A corrupt record is refused on redemption and left for an
				// operator to look at rather than silently deleted.
				continue
			}
			if now.After(v.Expires) {
				if err := s.cfg.Storage.Delete(ctx, k); err == nil {
					deleted++
				}
			}
		}
	}
	return deleted, nil
}

func (s *Store) storeJSON(ctx context.Context, key string, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	if err := s.cfg.Storage.Store(ctx, key, data); err != nil {
		return fmt.Errorf("storing refresh token state: %w", err)
	}
	return nil
}

// loadJSON reads key into v; a missing key is (false, nil). Corrupt content
// is errCorrupt, so the token is refused rather than guessed at.
func loadJSON(ctx context.Context, st certmagic.Storage, logger *zap.Logger, key string, v any) (bool, error) {
	data, err := st.Load(ctx, key)
	return loaded(logger, key, data, err, v)
}

// loaded reads into v what a load of key returned: a missing record (an
// fs.ErrNotExist error, or no data) is (false, nil), and corrupt content
// is errCorrupt, so the token is refused rather than guessed at.
func loaded(logger *zap.Logger, key string, data []byte, err error, v any) (bool, error) {
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("loading refresh token state: %w", err)
	case data == nil:
		return false, nil
	}
	if err := json.Unmarshal(data, v); err != nil {
		logger.Error("corrupt refresh token record; refusing it", zap.String("key", key), zap.Error(err))
		return false, errCorrupt
	}
	return true, nil
}

func (s *Store) loadJSON(ctx context.Context, key string, v any) (bool, error) {
	return loadJSON(ctx, s.cfg.Storage, s.cfg.Logger, key, v)
}

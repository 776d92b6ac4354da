// Package refresh stores refresh tokens in Caddy's storage, so that every
// instance on that storage can redeem them and each is redeemed at most once.
//
// A token is kept only as the SHA-256 of its value. Every redemption rotates
// it: the old token is marked redeemed and a new one of the same family is
// issued. Presenting a redeemed token again revokes its whole family
// (RFC 9700 §4.14.2): whoever holds the newest token loses it too, since the
// server cannot tell the thief from the client.
package refresh

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"time"

	"github.com/caddyserver/certmagic"
	"go.uber.org/zap"
)

// Grant is what a refresh token stands for.
type Grant struct {
	ClientID string   `json:"client_id"`
	Scopes   []string `json:"scopes,omitempty"`
	Audience []string `json:"audience,omitempty"`
}

type record struct {
	Grant
	Family   string     `json:"family"`
	Issued   time.Time  `json:"issued"`
	Expires  time.Time  `json:"expires"`
	Redeemed *time.Time `json:"redeemed,omitempty"`
}

type family struct {
	ClientID string     `json:"client_id"`
	Expires  time.Time  `json:"expires"`
	Revoked  *time.Time `json:"revoked,omitempty"`
	// Access lists the unexpired access tokens issued with the family's
	// refresh tokens, so revoking the family revokes them too (RFC 7009 §2.1).
	Access []AccessRef `json:"access,omitempty"`
}

// AccessRef names an access token issued together with a refresh token.
type AccessRef struct {
	JTI     string    `json:"jti"`
	Expires time.Time `json:"exp"`
}

// Errors of Redeem. Both are answered with invalid_grant.
var (
	// ErrInvalid: unknown, malformed, expired, revoked, or another client's token.
	ErrInvalid = errors.New("refresh token is invalid, expired or revoked")
	// ErrReused: the token was already redeemed; its family is now revoked.
	ErrReused = errors.New("refresh token was already used; its family is revoked")
)

// Store keeps refresh tokens under Prefix in Storage.
type Store struct {
	Storage certmagic.Storage
	Prefix  string
	Now     func() time.Time
	Logger  *zap.Logger
	// RevokeAccess, when set, is called for each unexpired access token of
	// a family being revoked.
	RevokeAccess func(ctx context.Context, ref AccessRef) error
}

// ErrForeign is returned by RevokeFamily for another client's token.
var ErrForeign = errors.New("refresh token belongs to another client")

const tokenBytes = 32

var tokenLen = base64.RawURLEncoding.EncodedLen(tokenBytes)

func (s *Store) recordKey(token string) string {
	sum := sha256.Sum256([]byte(token))
	return s.Prefix + "/refresh/" + hex.EncodeToString(sum[:])
}

func (s *Store) familyKey(id string) string { return s.Prefix + "/refresh_families/" + id }

// lockName is kept apart from the data keys, as some storage modules keep
// locks and data in one namespace.
func (s *Store) lockName(id string) string { return s.Prefix + "/locks/refresh_family_" + id }

func (s *Store) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

func (s *Store) logger() *zap.Logger {
	if s.Logger != nil {
		return s.Logger
	}
	return zap.NewNop()
}

// Issue makes the first refresh token of a new family; access names the
// access tokens issued with it.
func (s *Store) Issue(ctx context.Context, g Grant, ttl time.Duration, access ...AccessRef) (string, error) {
	fam := make([]byte, 16)
	if _, err := rand.Read(fam); err != nil {
		return "", err
	}
	famID := hex.EncodeToString(fam)
	exp := s.now().Add(ttl)
	if err := s.storeJSON(ctx, s.familyKey(famID), family{ClientID: g.ClientID, Expires: exp, Access: access}); err != nil {
		return "", err
	}
	return s.issueIn(ctx, famID, g, exp)
}

func (s *Store) issueIn(ctx context.Context, famID string, g Grant, exp time.Time) (string, error) {
	b := make([]byte, tokenBytes)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	token := base64.RawURLEncoding.EncodeToString(b)
	rec := record{Grant: g, Family: famID, Issued: s.now(), Expires: exp}
	if err := s.storeJSON(ctx, s.recordKey(token), rec); err != nil {
		return "", err
	}
	return token, nil
}

// Redeem exchanges a refresh token of clientID for its grant and a new
// refresh token valid for ttl. mint, when not nil, vets the grant and
// mints the access token before anything changes: its error is returned as
// is and the token stays unredeemed (a request asking for too wide a scope
// must not cost the client its refresh token); the access token it names
// joins the family, to be revoked with it. Redeem holds the storage lock of
// the token's family, so that of two instances redeeming the same token at
// the same moment exactly one succeeds (and the other revokes the family).
func (s *Store) Redeem(ctx context.Context, token, clientID string, ttl time.Duration, mint func(Grant) (AccessRef, error)) (Grant, string, error) {
	rec, unlock, err := s.lockRecord(ctx, token, clientID, ErrInvalid)
	if err != nil {
		return Grant{}, "", err
	}
	defer unlock()
	// Read again under the lock: the first read may predate a redemption.
	found, err := s.loadJSON(ctx, s.recordKey(token), &rec)
	if err != nil || !found {
		return Grant{}, "", errOr(err, ErrInvalid)
	}
	var fam family
	if found, err = s.loadJSON(ctx, s.familyKey(rec.Family), &fam); err != nil || !found {
		return Grant{}, "", errOr(err, ErrInvalid)
	}
	now := s.now()
	if fam.Revoked != nil || fam.ClientID != clientID {
		return Grant{}, "", ErrInvalid
	}
	if rec.Redeemed != nil {
		if err := s.revoke(ctx, rec.Family, &fam); err != nil {
			return Grant{}, "", err
		}
		s.logger().Info("refresh token reused; family revoked", zap.String("client_id", clientID), zap.String("family", rec.Family))
		return Grant{}, "", ErrReused
	}
	if !now.Before(rec.Expires) {
		return Grant{}, "", ErrInvalid
	}
	var ref AccessRef
	if mint != nil {
		if ref, err = mint(rec.Grant); err != nil {
			return Grant{}, "", err
		}
	}
	exp := now.Add(ttl)
	// Store the successor before marking this one redeemed: a crash between
	// the two leaves the old token usable, never the client without one.
	next, err := s.issueIn(ctx, rec.Family, rec.Grant, exp)
	if err != nil {
		return Grant{}, "", err
	}
	rec.Redeemed = &now
	if err := s.storeJSON(ctx, s.recordKey(token), rec); err != nil {
		return Grant{}, "", err
	}
	fam.Expires = maxTime(fam.Expires, exp)
	fam.Access = live(fam.Access, now)
	if ref.JTI != "" {
		fam.Access = append(fam.Access, ref)
	}
	if err := s.storeJSON(ctx, s.familyKey(rec.Family), fam); err != nil {
		return Grant{}, "", err
	}
	return rec.Grant, next, nil
}

// lockRecord reads a token's record, checks it is clientID's (else
// returns mismatch) and takes its family's lock.
func (s *Store) lockRecord(ctx context.Context, token, clientID string, mismatch error) (record, func(), error) {
	var rec record
	if len(token) != tokenLen {
		return rec, nil, ErrInvalid
	}
	if _, err := base64.RawURLEncoding.DecodeString(token); err != nil {
		return rec, nil, ErrInvalid
	}
	found, err := s.loadJSON(ctx, s.recordKey(token), &rec)
	if err != nil || !found {
		return rec, nil, errOr(err, ErrInvalid)
	}
	if rec.ClientID != clientID {
		return rec, nil, mismatch
	}
	lock := s.lockName(rec.Family)
	if err := s.Storage.Lock(ctx, lock); err != nil {
		return rec, nil, fmt.Errorf("locking refresh token family: %v", err)
	}
	return rec, func() {
		if err := s.Storage.Unlock(context.WithoutCancel(ctx), lock); err != nil {
			s.logger().Error("unlocking refresh token family", zap.Error(err))
		}
	}, nil
}

// revoke marks a family revoked and revokes its unexpired access tokens.
// The caller holds the family's lock.
func (s *Store) revoke(ctx context.Context, famID string, fam *family) error {
	now := s.now()
	fam.Revoked = &now
	if err := s.storeJSON(ctx, s.familyKey(famID), fam); err != nil {
		return err
	}
	if s.RevokeAccess == nil {
		return nil
	}
	for _, ref := range live(fam.Access, now) {
		if err := s.RevokeAccess(ctx, ref); err != nil {
			return fmt.Errorf("revoking access tokens of a refresh token family: %v", err)
		}
	}
	return nil
}

// RevokeFamily revokes the family of clientID's refresh token (RFC 7009):
// every refresh token of it, and the access tokens issued with them. An
// unknown, malformed or expired token is ErrInvalid; another client's
// token is ErrForeign.
func (s *Store) RevokeFamily(ctx context.Context, token, clientID string) error {
	rec, unlock, err := s.lockRecord(ctx, token, clientID, ErrForeign)
	if err != nil {
		return err
	}
	defer unlock()
	var fam family
	found, err := s.loadJSON(ctx, s.familyKey(rec.Family), &fam)
	if err != nil || !found {
		return errOr(err, ErrInvalid)
	}
	if fam.Revoked != nil {
		return nil
	}
	if err := s.revoke(ctx, rec.Family, &fam); err != nil {
		return err
	}
	s.logger().Info("refresh token family revoked", zap.String("client_id", clientID), zap.String("family", rec.Family))
	return nil
}

// Info describes a refresh token, for introspection.
type Info struct {
	Grant
	Issued  time.Time
	Expires time.Time
}

// Lookup returns what an active refresh token stands for: not expired, not
// yet redeemed, its family not revoked. Anything else is ErrInvalid.
func (s *Store) Lookup(ctx context.Context, token string) (Info, error) {
	if len(token) != tokenLen {
		return Info{}, ErrInvalid
	}
	var rec record
	found, err := s.loadJSON(ctx, s.recordKey(token), &rec)
	if err != nil || !found {
		return Info{}, errOr(err, ErrInvalid)
	}
	var fam family
	if found, err = s.loadJSON(ctx, s.familyKey(rec.Family), &fam); err != nil || !found {
		return Info{}, errOr(err, ErrInvalid)
	}
	if rec.Redeemed != nil || fam.Revoked != nil || !s.now().Before(rec.Expires) || fam.ClientID != rec.ClientID {
		return Info{}, ErrInvalid
	}
	return Info{Grant: rec.Grant, Issued: rec.Issued, Expires: rec.Expires}, nil
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

// Sweep deletes records whose token and family have expired. Redeemed
// records are kept until their own expiry so that a reuse is still detected.
func (s *Store) Sweep(ctx context.Context) (int, error) {
	now := s.now()
	deleted := 0
	for _, dir := range []string{s.Prefix + "/refresh", s.Prefix + "/refresh_families"} {
		keys, err := s.Storage.List(ctx, dir, false)
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
			found, err := s.loadJSON(ctx, k, &v)
			if err != nil || !found {
				// A corrupt record is refused on redemption and left for an
				// operator to look at rather than silently deleted.
				continue
			}
			if now.After(v.Expires) {
				if err := s.Storage.Delete(ctx, k); err == nil {
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
	if err := s.Storage.Store(ctx, key, data); err != nil {
		return fmt.Errorf("storing refresh token state: %v", err)
	}
	return nil
}

// loadJSON reads key into v; a missing key is (false, nil). Corrupt content
// is an error, so the token is refused rather than guessed at.
func (s *Store) loadJSON(ctx context.Context, key string, v any) (bool, error) {
	data, err := s.Storage.Load(ctx, key)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("loading refresh token state: %v", err)
	}
	if err := json.Unmarshal(data, v); err != nil {
		s.logger().Error("corrupt refresh token record; refusing it", zap.String("key", key), zap.Error(err))
		return false, nil
	}
	return true, nil
}

func errOr(err, fallback error) error {
	if err != nil {
		return err
	}
	return fallback
}

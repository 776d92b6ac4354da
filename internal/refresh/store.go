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
}

const tokenBytes = 32

var tokenLen = base64.RawURLEncoding.EncodedLen(tokenBytes)

func (s *Store) recordKey(token string) string {
	sum := sha256.Sum256([]byte(token))
	return s.Prefix + "/refresh/" + hex.EncodeToString(sum[:])
}

func (s *Store) familyKey(id string) string { return s.Prefix + "/refresh_families/" + id }

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

// Issue makes the first refresh token of a new family.
func (s *Store) Issue(ctx context.Context, g Grant, ttl time.Duration) (string, error) {
	fam := make([]byte, 16)
	if _, err := rand.Read(fam); err != nil {
		return "", err
	}
	famID := hex.EncodeToString(fam)
	exp := s.now().Add(ttl)
	if err := s.storeJSON(ctx, s.familyKey(famID), family{ClientID: g.ClientID, Expires: exp}); err != nil {
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
// refresh token valid for ttl. check, when not nil, vets the grant before
// anything changes: its error is returned as is and the token stays
// unredeemed (a request asking for too wide a scope must not cost the client
// its refresh token). Redeem holds the storage lock of the token's
// family, so that of two instances redeeming the same token at the same
// moment exactly one succeeds (and the other revokes the family).
func (s *Store) Redeem(ctx context.Context, token, clientID string, ttl time.Duration, check func(Grant) error) (Grant, string, error) {
	if len(token) != tokenLen {
		return Grant{}, "", ErrInvalid
	}
	if _, err := base64.RawURLEncoding.DecodeString(token); err != nil {
		return Grant{}, "", ErrInvalid
	}
	var rec record
	found, err := s.loadJSON(ctx, s.recordKey(token), &rec)
	if err != nil || !found {
		return Grant{}, "", errOr(err, ErrInvalid)
	}
	if rec.ClientID != clientID {
		return Grant{}, "", ErrInvalid
	}
	lock := s.familyKey(rec.Family)
	if err := s.Storage.Lock(ctx, lock); err != nil {
		return Grant{}, "", fmt.Errorf("locking refresh token family: %v", err)
	}
	defer func() {
		if err := s.Storage.Unlock(context.WithoutCancel(ctx), lock); err != nil {
			s.logger().Error("unlocking refresh token family", zap.Error(err))
		}
	}()
	// Read again under the lock: the first read may predate a redemption.
	if found, err = s.loadJSON(ctx, s.recordKey(token), &rec); err != nil || !found {
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
		fam.Revoked = &now
		if err := s.storeJSON(ctx, s.familyKey(rec.Family), fam); err != nil {
			return Grant{}, "", err
		}
		s.logger().Info("refresh token reused; family revoked", zap.String("client_id", clientID), zap.String("family", rec.Family))
		return Grant{}, "", ErrReused
	}
	if !now.Before(rec.Expires) {
		return Grant{}, "", ErrInvalid
	}
	if check != nil {
		if err := check(rec.Grant); err != nil {
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
	if exp.After(fam.Expires) {
		fam.Expires = exp
		if err := s.storeJSON(ctx, s.familyKey(rec.Family), fam); err != nil {
			return Grant{}, "", err
		}
	}
	return rec.Grant, next, nil
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

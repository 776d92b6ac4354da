package refresh

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"time"

	"github.com/tokengate/tokengate/internal/state"
)

// Refresh tokens of the earlier format: 32 random bytes, base64url, stored
// at issuance as <prefix>/refresh/<sha256 hex> (legacyRecord), in a family
// whose record (<prefix>/refresh_families/<id>) was written at issuance too.
// They keep working after an upgrade until they expire: a redemption checks
// the stored record under the family's lock exactly as before, marks it
// redeemed, and answers with a token of the new format at the family's
// next generation. A redeemed old token presented again revokes the family
// (the reuse interval does not apply to them).

const legacyTokenBytes = 32

var legacyTokenLen = base64.RawURLEncoding.EncodedLen(legacyTokenBytes)

// legacyRecord is an old-format token's record.
type legacyRecord struct {
	Grant
	Family   string     `json:"family"`
	Issued   time.Time  `json:"issued"`
	Expires  time.Time  `json:"expires"`
	Redeemed *time.Time `json:"redeemed,omitempty"`
}

func isLegacy(token string) bool {
	if len(token) != legacyTokenLen {
		return false
	}
	_, err := base64.RawURLEncoding.DecodeString(token)
	return err == nil
}

func (s *Store) legacyKey(token string) string {
	sum := sha256.Sum256([]byte(token))
	return s.cfg.Prefix + "/refresh/" + hex.EncodeToString(sum[:])
}

// loadLegacy reads an old token's record: ErrInvalid when it has none or
// the record cannot be read.
func (s *Store) loadLegacy(ctx context.Context, token string) (legacyRecord, error) {
	var rec legacyRecord
	found, err := s.loadJSON(ctx, s.legacyKey(token), &rec)
	if errors.Is(err, errCorrupt) || (err == nil && !found) {
		return rec, ErrInvalid
	}
	return rec, err
}

// family16 reads an old family id (hex of 16 bytes, as new ones are).
func family16(id string) ([16]byte, bool) {
	var f [16]byte
	n, err := hex.Decode(f[:], []byte(id))
	return f, err == nil && n == len(f) && len(id) == 2*len(f)
}

func (s *Store) redeemLegacy(ctx context.Context, token, clientID string, ttl time.Duration, mint func(Grant) (AccessRef, error)) (Grant, string, error) {
	// The keys that make the successor, loaded before anything changes.
	ring, err := s.ready(ctx)
	if err != nil {
		return Grant{}, "", err
	}
	rec, err := s.loadLegacy(ctx, token)
	if err != nil {
		return Grant{}, "", err
	}
	fam, ok := family16(rec.Family)
	if rec.ClientID != clientID || !ok {
		return Grant{}, "", ErrInvalid
	}
	var (
		out   outcome
		final state.Family
	)
	// Old records live only in Caddy's storage, so this runs under its
	// family lock, once: the token's record is read again and marked
	// redeemed under it, so two instances cannot both redeem it.
	err = s.legacy.Update(ctx, rec.Family, func(f state.Family, found bool) (state.Family, bool, error) {
		if !found || f.Revoked != nil || f.ClientID != clientID {
			return f, false, ErrInvalid
		}
		var err error
		if rec, err = s.loadLegacy(ctx, token); err != nil {
			return f, false, err
		}
		now := s.cfg.Now()
		if rec.Redeemed != nil {
			out = reused
			f.Revoked = &now
			final = f
			return f, true, nil
		}
		if !now.Before(rec.Expires) {
			return f, false, ErrInvalid
		}
		var ref AccessRef
		if mint != nil {
			g := rec.Grant
			g.Family = rec.Family
			if ref, err = mint(g); err != nil {
				return f, false, err
			}
		}
		rec.Redeemed = &now
		if err := s.storeJSON(ctx, s.legacyKey(token), rec); err != nil {
			return f, false, err
		}
		out = advanced
		f.Generation++
		f.Rotated = now
		f.Expires = maxTime(f.Expires, now.Add(ttl))
		withAccess(&f, ref, now)
		final = f
		return f, true, nil
	})
	if err := s.settle(ctx, err, out, final, clientID, rec.Family); err != nil {
		return Grant{}, "", err
	}
	return rec.Grant, successor(ring, fam, rec.Grant, final, ttl), nil
}

func (s *Store) revokeLegacy(ctx context.Context, token, clientID string) error {
	rec, err := s.loadLegacy(ctx, token)
	if err != nil {
		return err
	}
	if rec.ClientID != clientID {
		return ErrForeign
	}
	return s.revokeFamily(ctx, s.legacy, rec.Family, clientID, nil)
}

func (s *Store) lookupLegacy(ctx context.Context, token string) (Info, error) {
	rec, err := s.loadLegacy(ctx, token)
	if err != nil {
		return Info{}, err
	}
	f, found, err := s.legacy.Load(ctx, rec.Family)
	if errors.Is(err, errCorrupt) || (err == nil && !found) {
		return Info{}, ErrInvalid
	}
	if err != nil {
		return Info{}, err
	}
	if rec.Redeemed != nil || f.Revoked != nil || !s.cfg.Now().Before(rec.Expires) || f.ClientID != rec.ClientID {
		return Info{}, ErrInvalid
	}
	return Info{Grant: rec.Grant, Issued: rec.Issued, Expires: rec.Expires}, nil
}

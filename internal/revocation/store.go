// Package revocation keeps the list of revoked access tokens (by jti) in
// Caddy's storage, with an in-process copy so that a check is a map lookup.
//
// A revocation is written to storage at once and to the local copy at once,
// so the instance that revoked a token refuses it immediately. Other
// instances on the same storage pick it up at their next Sync, every
// SyncInterval (a few seconds). A revocation lives until the token's own
// expiry (plus a margin for clock leeway), then Sweep deletes it, so the list
// never grows without bound.
package revocation

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"sync"
	"time"

	"github.com/caddyserver/certmagic"
	"github.com/patrickmn/go-cache"
	"go.uber.org/zap"
)

// DefaultSyncInterval is how often other instances' revocations are read.
const DefaultSyncInterval = 2 * time.Second

// expiryMargin keeps a revocation past its token's exp, covering the
// validators' clock leeway.
const expiryMargin = 5 * time.Minute

// Store is the revocation list of one issuer.
type Store struct {
	Storage certmagic.Storage
	Prefix  string
	Now     func() time.Time
	Logger  *zap.Logger

	once    sync.Once
	revoked *cache.Cache // storage key name -> struct{}, expiring with the token
	mu      sync.Mutex   // serializes Sync
}

type record struct {
	Expires time.Time `json:"expires"`
}

func (s *Store) init() {
	s.once.Do(func() {
		// No janitor goroutine (it would outlive the issuer): Sync frees
		// expired entries.
		s.revoked = cache.New(cache.NoExpiration, 0)
		if s.Now == nil {
			s.Now = time.Now
		}
		if s.Logger == nil {
			s.Logger = zap.NewNop()
		}
	})
}

func (s *Store) dir() string { return s.Prefix + "/revoked" }

// name is the storage name of a jti; hashing keeps any jti a safe file name.
func name(jti string) string {
	sum := sha256.Sum256([]byte(jti))
	return hex.EncodeToString(sum[:16])
}

// Revoke denies the access token with this jti until exp.
func (s *Store) Revoke(ctx context.Context, jti string, exp time.Time) error {
	s.init()
	n := name(jti)
	data, err := json.Marshal(record{Expires: exp})
	if err != nil {
		return err
	}
	if err := s.Storage.Store(ctx, path.Join(s.dir(), n), data); err != nil {
		return fmt.Errorf("storing revocation: %v", err)
	}
	s.remember(n, exp)
	return nil
}

func (s *Store) remember(n string, exp time.Time) {
	ttl := exp.Add(expiryMargin).Sub(s.Now())
	if ttl <= 0 {
		return
	}
	s.revoked.Set(n, struct{}{}, ttl)
}

// IsRevoked reports whether the access token with this jti is revoked, as
// far as this instance knows (see Sync).
func (s *Store) IsRevoked(jti string) bool {
	s.init()
	_, ok := s.revoked.Get(name(jti))
	return ok
}

// Sync reads revocations made by other instances.
func (s *Store) Sync(ctx context.Context) error {
	s.init()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.revoked.DeleteExpired()
	keys, err := s.Storage.List(ctx, s.dir(), false)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("listing revocations: %v", err)
	}
	for _, k := range keys {
		n := path.Base(k)
		if _, known := s.revoked.Get(n); known {
			continue
		}
		data, err := s.Storage.Load(ctx, k)
		if errors.Is(err, fs.ErrNotExist) {
			continue // swept meanwhile
		}
		if err != nil {
			return fmt.Errorf("loading revocation: %v", err)
		}
		var rec record
		if err := json.Unmarshal(data, &rec); err != nil {
			// A corrupt record must not un-revoke anything: deny for the
			// longest a token of this issuer could live, and say so.
			s.Logger.Error("corrupt revocation record; treating the token as revoked", zap.String("key", k), zap.Error(err))
			rec.Expires = s.Now().Add(24 * time.Hour)
		}
		s.remember(n, rec.Expires)
	}
	return nil
}

// Sweep deletes revocations whose tokens have expired.
func (s *Store) Sweep(ctx context.Context) (int, error) {
	s.init()
	keys, err := s.Storage.List(ctx, s.dir(), false)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("listing revocations: %v", err)
	}
	now, deleted := s.Now(), 0
	for _, k := range keys {
		data, err := s.Storage.Load(ctx, k)
		if err != nil {
			continue
		}
		var rec record
		if json.Unmarshal(data, &rec) != nil {
			continue // left for an operator; Sync keeps treating it as revoked
		}
		if now.After(rec.Expires.Add(expiryMargin)) {
			if s.Storage.Delete(ctx, k) == nil {
				deleted++
			}
		}
	}
	return deleted, nil
}

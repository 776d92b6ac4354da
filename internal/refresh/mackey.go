package refresh

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"time"

	"go.uber.org/zap"

	"github.com/tokengate/tokengate/internal/state"
)

// keyFile is a refresh token MAC key as stored, one file per key under
// <prefix>/refresh_keys/<kid>. Every token names the key it was made with
// (its kid), so a new key can take over while the tokens of the old one
// stay valid until they expire: the newest key makes tokens, every stored
// key verifies them. Deleting a key file invalidates its tokens.
type keyFile struct {
	KID     string    `json:"kid"`
	Secret  []byte    `json:"secret"`
	Created time.Time `json:"created"`
}

const macKeyBytes = 32

func (s *Store) keyDir() string { return s.cfg.Prefix + "/refresh_keys" }

// loadKeys reads the MAC keys, making the first one under the storage lock
// so that instances starting together agree on it.
//
// The read outside the lock is only a fast path: while another instance
// makes the first key, the storage may hold that key's temporary file
// (certmagic's FileStorage writes through a randomly named file in the same
// directory), which reads as corrupt. Keys are written only under the lock,
// so a failed or empty read is repeated under it, where no write is under
// way.
func (s *Store) loadKeys(ctx context.Context) error {
	keys, err := s.readKeys(ctx)
	if errors.Is(err, state.ErrUnavailable) {
		return err
	}
	if err == nil && len(keys) > 0 {
		s.setKeys(keys)
		return nil
	}
	lock := s.cfg.Prefix + "/locks/refresh_keys"
	if err := s.cfg.Storage.Lock(ctx, lock); err != nil {
		return fmt.Errorf("locking refresh token keys: %w", err)
	}
	defer func() {
		if err := s.cfg.Storage.Unlock(context.WithoutCancel(ctx), lock); err != nil {
			s.cfg.Logger.Error("unlocking refresh token keys", zap.Error(err))
		}
	}()
	if keys, err = s.readKeys(ctx); err != nil || len(keys) > 0 {
		s.setKeys(keys)
		return err
	}
	kf := keyFile{Secret: make([]byte, macKeyBytes), Created: s.cfg.Now()}
	id := make([]byte, 4)
	if _, err := rand.Read(id); err != nil {
		return err
	}
	if _, err := rand.Read(kf.Secret); err != nil {
		return err
	}
	kf.KID = hex.EncodeToString(id)
	if err := s.storeJSON(ctx, path.Join(s.keyDir(), kf.KID), kf); err != nil {
		return err
	}
	s.cfg.Logger.Info("made a refresh token key", zap.String("kid", kf.KID))
	s.setKeys([]keyFile{kf})
	return nil
}

// readKeys reads every stored key; a corrupt one is an error, since the
// tokens it made would otherwise fail without a word.
func (s *Store) readKeys(ctx context.Context) ([]keyFile, error) {
	names, err := s.cfg.Storage.List(ctx, s.keyDir(), false)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("listing refresh token keys: %w", err)
	}
	var out []keyFile
	for _, n := range names {
		var kf keyFile
		found, err := s.loadJSON(ctx, n, &kf)
		if err != nil {
			return nil, err
		}
		if !found {
			continue
		}
		if id, err := hex.DecodeString(kf.KID); err != nil || len(id) != 4 || len(kf.Secret) < macKeyBytes || path.Base(n) != kf.KID {
			return nil, fmt.Errorf("refresh token key %s is corrupt", path.Base(n))
		}
		out = append(out, kf)
	}
	return out, nil
}

func (s *Store) setKeys(files []keyFile) {
	if len(files) == 0 {
		return
	}
	keys := make(map[uint32]*macKey, len(files))
	var newest keyFile
	for _, kf := range files {
		id, _ := hex.DecodeString(kf.KID)
		keys[binary.BigEndian.Uint32(id)] = &macKey{id: binary.BigEndian.Uint32(id), secret: kf.Secret}
		if kf.Created.After(newest.Created) || newest.KID == "" {
			newest = kf
		}
	}
	id, _ := hex.DecodeString(newest.KID)
	s.ring.Store(&keyRing{keys: keys, current: keys[binary.BigEndian.Uint32(id)]})
}

// keyRing is the set of MAC keys: the newest makes tokens, all verify.
type keyRing struct {
	keys    map[uint32]*macKey
	current *macKey
}

func (s *Store) keyFor(id uint32) *macKey {
	if r := s.ring.Load(); r != nil {
		return r.keys[id]
	}
	return nil
}

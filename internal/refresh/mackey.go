package refresh

import (
	"context"
	"crypto/hmac"
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

// StoreBound lists the storage directories (each ending in a slash) of the
// refresh state of the issuer with this prefix that belong to one life of
// the store: the MAC keys, and the records of old-format tokens and their
// families. A backend that writes back what an instance holds after its
// store lost its data (a Redis restarted empty, internal/state/redis) must
// not write these back. The family records are lost with the store, so
// the tokens of the keys made before the loss must stay refused: with
// their key gone from the store, they are (keyStored).
func StoreBound(prefix string) []string {
	return []string{prefix + "/refresh_keys/", prefix + "/refresh/", prefix + "/refresh_families/"}
}

// keyStored checks that the MAC key of a token is still in the store,
// after the token's family record was read (and written). A key is never
// written back to a store that lost its data (StoreBound), and a key made
// since has another secret, so finding it afterwards proves that the
// record was read in the life of the store the key was made in, where
// every record of the token's family was kept: a family without a record
// there was truly never redeemed. A key gone means the store lost its
// data since this instance loaded its keys: the token is refused
// (ErrInvalid: the client gets a new one with client_credentials) and the
// instance forgets its keys, to load (or make) the store's current ones.
func (s *Store) keyStored(ctx context.Context, k *macKey) error {
	var kf keyFile
	found, err := s.loadJSON(ctx, path.Join(s.keyDir(), fmt.Sprintf("%08x", k.id)), &kf)
	switch {
	case errors.Is(err, errCorrupt):
		return ErrInvalid
	case err != nil:
		return err
	case found && hmac.Equal(kf.Secret, k.secret):
		return nil
	}
	s.cfg.Logger.Warn("a refresh token key is gone from the state store (it lost its data): refusing the tokens made before; loading the current keys")
	s.forgetKeys()
	return ErrInvalid
}

// forgetKeys drops the MAC keys held in memory: the next use loads the
// store's current ones, or makes one under the lock when there is none. A
// backend that notices it lost its data calls it (state.ResetNotifier).
func (s *Store) forgetKeys() { s.ring.Store(nil) }

// loadKeys reads the MAC keys, making the first one under the storage lock
// so that instances starting together agree on it.
//
// The read outside the lock is only a fast path: while another instance
// makes the first key, the storage may hold that key's temporary file
// (certmagic's FileStorage writes through a randomly named file in the same
// directory), which reads as corrupt. Keys are written only under the lock,
// so a failed or empty read is repeated under it, where no write is under
// way.
func (s *Store) loadKeys(ctx context.Context) (*keyRing, error) {
	keys, err := s.readKeys(ctx)
	if errors.Is(err, state.ErrUnavailable) {
		return nil, err
	}
	if err == nil && len(keys) > 0 {
		return s.setKeys(keys), nil
	}
	lock := s.cfg.Prefix + "/locks/refresh_keys"
	if err := s.cfg.Storage.Lock(ctx, lock); err != nil {
		return nil, fmt.Errorf("locking refresh token keys: %w", err)
	}
	defer func() {
		if err := s.cfg.Storage.Unlock(context.WithoutCancel(ctx), lock); err != nil {
			s.cfg.Logger.Error("unlocking refresh token keys", zap.Error(err))
		}
	}()
	if keys, err = s.readKeys(ctx); err != nil {
		return nil, err
	} else if len(keys) > 0 {
		return s.setKeys(keys), nil
	}
	kf := keyFile{Secret: make([]byte, macKeyBytes), Created: s.cfg.Now()}
	id := make([]byte, 4)
	if _, err := rand.Read(id); err != nil {
		return nil, err
	}
	if _, err := rand.Read(kf.Secret); err != nil {
		return nil, err
	}
	kf.KID = hex.EncodeToString(id)
	if err := s.storeJSON(ctx, path.Join(s.keyDir(), kf.KID), kf); err != nil {
		return nil, err
	}
	s.cfg.Logger.Info("made a refresh token key", zap.String("kid", kf.KID))
	return s.setKeys([]keyFile{kf}), nil
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

// setKeys makes the key ring of files, the newest making tokens, and
// returns it; files must not be empty.
func (s *Store) setKeys(files []keyFile) *keyRing {
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
	r := &keyRing{keys: keys, current: keys[binary.BigEndian.Uint32(id)]}
	s.ring.Store(r)
	return r
}

// keyRing is the set of MAC keys: the newest makes tokens, all verify.
type keyRing struct {
	keys    map[uint32]*macKey
	current *macKey
}

func (s *Store) keyFor(id uint32) *macKey { return s.ring.Load().keyFor(id) }

// keyFor is the key of this id, or nil.
func (r *keyRing) keyFor(id uint32) *macKey {
	if r == nil {
		return nil
	}
	return r.keys[id]
}

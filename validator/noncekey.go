package validator

import (
	"context"
	"crypto/rand"
	"errors"
	"io/fs"
	"time"

	"github.com/caddyserver/certmagic"
	"go.uber.org/zap"

	"github.com/tokengate/tokengate/internal/dpop"
)

// nonceKeyFile is where bearer_auth keeps the key of its DPoP nonces in
// Caddy's storage (32 random bytes), so that every instance sharing the
// storage accepts the nonces of the others: a client whose requests move
// between instances behind one name keeps its nonce. The key is made once,
// under a storage lock, by the first instance that needs it. A nonce only
// proves the proof is fresh (RFC 9449 §9); whoever can read the storage
// could make nonces, and could read the signing keys too.
const (
	nonceKeyFile = "tokengate/dpop/nonce_key"
	nonceKeyLock = "tokengate/locks/dpop_nonce_key"
)

// sharedNonces returns the DPoP nonces of the routes with dpop_nonce: made
// with the key in storage, or, when the storage cannot be read within a
// few seconds, with this process's own key (nonces then good at this
// instance only, as before there was a shared key).
func sharedNonces(ctx context.Context, st certmagic.Storage, logger *zap.Logger) *dpop.Nonces {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	key, err := loadNonceKey(ctx, st)
	if err != nil {
		logger.Warn("DPoP nonce key not read from storage; this instance's nonces are good here only", zap.Error(err))
		return routeNonces()
	}
	return dpop.NewSharedNonces(key, dpopNonceLifetime)
}

func loadNonceKey(ctx context.Context, st certmagic.Storage) ([32]byte, error) {
	if key, ok, err := readNonceKey(ctx, st); err != nil || ok {
		return key, err
	}
	if err := st.Lock(ctx, nonceKeyLock); err != nil {
		return [32]byte{}, err
	}
	defer func() { _ = st.Unlock(context.WithoutCancel(ctx), nonceKeyLock) }()
	// Read again under the lock: another instance may have made it.
	if key, ok, err := readNonceKey(ctx, st); err != nil || ok {
		return key, err
	}
	var key [32]byte
	if _, err := rand.Read(key[:]); err != nil {
		return key, err
	}
	return key, st.Store(ctx, nonceKeyFile, key[:])
}

// readNonceKey reads the key; ok is false when there is none, or none of
// the right size (it is then made again: nonces live minutes, so replacing
// a damaged key costs a client one retry).
func readNonceKey(ctx context.Context, st certmagic.Storage) (key [32]byte, ok bool, err error) {
	data, err := st.Load(ctx, nonceKeyFile)
	if errors.Is(err, fs.ErrNotExist) {
		return key, false, nil
	}
	if err != nil || len(data) != len(key) {
		return key, false, err
	}
	copy(key[:], data)
	return key, true, nil
}

package refresh

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/caddyserver/certmagic"
	"go.uber.org/zap"

	"github.com/tokengate/tokengate/internal/state"
	"github.com/tokengate/tokengate/internal/state/filestorage"
)

// errCorrupt is a family record that cannot be read: the tokens of the
// family are refused rather than guessed at (a corrupt revoked family must
// not come back to life as a new one).
var errCorrupt = state.ErrCorrupt

// storageFamilies keeps family records in Caddy's storage, one per family
// under <prefix>/refresh_families/<id>, and updates them under the storage
// lock of the family: of several instances on one storage, exactly one
// updates a family at a time, and each reads what the one before wrote.
//
// On Caddy's default file storage (on Linux) a record is instead updated
// in place under a lock on its own file (internal/state/filestorage): the
// same key and JSON, without the lock file, the rename and their journal
// commits, which bounded redemptions on that storage.
type storageFamilies struct {
	storage certmagic.Storage
	prefix  string
	logger  *zap.Logger
	file    *filestorage.Dir // nil unless storage is a FileStorage
}

func newStorageFamilies(st certmagic.Storage, prefix string, logger *zap.Logger) *storageFamilies {
	f := &storageFamilies{storage: st, prefix: prefix, logger: logger}
	f.file, _ = filestorage.For(st)
	return f
}

func (f *storageFamilies) key(id string) string { return f.prefix + "/refresh_families/" + id }

// lockName is kept apart from the data keys, as some storage modules keep
// locks and data in one namespace.
func (f *storageFamilies) lockName(id string) string {
	return f.prefix + "/locks/refresh_family_" + id
}

func (f *storageFamilies) Load(ctx context.Context, id string) (state.Family, bool, error) {
	load := f.storage.Load
	if f.file != nil {
		load = f.file.Load
	}
	data, err := load(ctx, f.key(id))
	var rec state.Family
	found, err := loaded(f.logger, f.key(id), data, err, &rec)
	return rec, found, err
}

func (f *storageFamilies) Update(ctx context.Context, id string, decide func(state.Family, bool) (state.Family, bool, error)) error {
	if f.file != nil {
		return f.file.Update(ctx, f.key(id), func(old []byte) ([]byte, bool, error) {
			var rec state.Family
			found, err := loaded(f.logger, f.key(id), old, nil, &rec)
			if err != nil {
				return nil, false, err
			}
			return decideJSON(rec, found, decide)
		})
	}
	if err := f.storage.Lock(ctx, f.lockName(id)); err != nil {
		return fmt.Errorf("locking refresh token family: %v", err)
	}
	defer func() {
		if err := f.storage.Unlock(context.WithoutCancel(ctx), f.lockName(id)); err != nil {
			f.logger.Error("unlocking refresh token family", zap.Error(err))
		}
	}()
	rec, found, err := f.Load(ctx, id)
	if err != nil {
		return err
	}
	data, write, err := decideJSON(rec, found, decide)
	if err != nil || !write {
		return err
	}
	if err := f.storage.Store(ctx, f.key(id), data); err != nil {
		return fmt.Errorf("storing refresh token state: %w", err)
	}
	return nil
}

// decideJSON runs decide and encodes the record it decides to write.
func decideJSON(rec state.Family, found bool, decide func(state.Family, bool) (state.Family, bool, error)) ([]byte, bool, error) {
	next, write, err := decide(rec, found)
	if err != nil || !write {
		return nil, false, err
	}
	data, err := json.Marshal(next)
	return data, err == nil, err
}

var _ state.Families = (*storageFamilies)(nil)

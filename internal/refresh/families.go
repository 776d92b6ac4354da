package refresh

import (
	"context"
	"fmt"

	"github.com/caddyserver/certmagic"
	"go.uber.org/zap"

	"github.com/tokengate/tokengate/internal/state"
)

// errCorrupt is a family record that cannot be read: the tokens of the
// family are refused rather than guessed at (a corrupt revoked family must
// not come back to life as a new one).
var errCorrupt = state.ErrCorrupt

// storageFamilies keeps family records in Caddy's storage, one per family
// under <prefix>/refresh_families/<id>, and updates them under the storage
// lock of the family: of several instances on one storage, exactly one
// updates a family at a time, and each reads what the one before wrote.
type storageFamilies struct {
	storage certmagic.Storage
	prefix  string
	logger  *zap.Logger
}

func (f *storageFamilies) key(id string) string { return f.prefix + "/refresh_families/" + id }

// lockName is kept apart from the data keys, as some storage modules keep
// locks and data in one namespace.
func (f *storageFamilies) lockName(id string) string {
	return f.prefix + "/locks/refresh_family_" + id
}

func (f *storageFamilies) Load(ctx context.Context, id string) (state.Family, bool, error) {
	var rec state.Family
	found, err := loadJSON(ctx, f.storage, f.logger, f.key(id), &rec)
	return rec, found, err
}

func (f *storageFamilies) Update(ctx context.Context, id string, decide func(state.Family, bool) (state.Family, bool, error)) error {
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
	next, write, err := decide(rec, found)
	if err != nil || !write {
		return err
	}
	return storeJSON(ctx, f.storage, f.key(id), next)
}

var _ state.Families = (*storageFamilies)(nil)

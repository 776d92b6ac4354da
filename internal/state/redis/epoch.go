package redis

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"

	goredis "github.com/redis/go-redis/v9"
	"go.uber.org/zap"
)

// checkEpoch finds out whether Redis lost its data since this instance
// last looked: the epoch key, set once per life of the data, is gone, or
// is another than the one this instance saw last (another instance noticed
// first and set a new one, maybe while this one was cut off). When it is
// gone, the instance writes back what it holds (without overwriting what
// another instance wrote back first) before it sets a new one, so that an
// instance seeing the new epoch finds what was written back. Either way it
// tells the refresh store (storage.reset) and reads every revocation
// again.
//
// An instance that finds the epoch changed does not write back: what it
// holds may have been deleted since by an instance that noticed first.
func (b *backend) checkEpoch(ctx context.Context) error {
	b.emu.Lock()
	defer b.emu.Unlock()
	key := b.key("epoch")
	cur, err := b.client.Get(ctx, key).Result()
	if err != nil && !errors.Is(err, goredis.Nil) {
		return unavailable(err)
	}
	lost := errors.Is(err, goredis.Nil)
	if lost {
		if err := b.writeBack(ctx); err != nil {
			return err
		}
		id := make([]byte, 8)
		if _, err := rand.Read(id); err != nil {
			return err
		}
		if err := b.client.SetNX(ctx, key, hex.EncodeToString(id), 0).Err(); err != nil {
			return unavailable(err)
		}
		if cur, err = b.client.Get(ctx, key).Result(); err != nil {
			return unavailable(err)
		}
	}
	if cur == b.epoch {
		return nil
	}
	// At the first look the refresh keys were just loaded; a loss noticed
	// then (lost) still counts.
	if lost || b.epoch != "" {
		b.files.reset()
	}
	b.epoch = cur
	b.revs.resync.Store(true)
	return nil
}

// writeBack writes the files and revocations this instance holds back to
// a Redis that lost them.
func (b *backend) writeBack(ctx context.Context) error {
	files, err := b.files.restore(ctx)
	if err != nil {
		return err
	}
	revs, err := b.revs.restore(ctx)
	if err != nil {
		return err
	}
	if files > 0 || revs > 0 {
		b.logger.Warn("redis had lost the issuer's state; wrote back what this instance holds",
			zap.Int("files", files), zap.Int("revocations", revs))
	}
	return nil
}

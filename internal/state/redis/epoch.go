package redis

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"go.uber.org/zap"
)

// settleGrace is how long after Redis was found without an epoch (a new
// store, or one that lost its data) it counts as settling (Settling): the
// instances still running write back what they hold when their
// subscription comes back (6–88 ms after Redis answered, measured in
// TestRestartedEmptyRefreshTokens) or at their next revocation_sync (2 s
// by default) at the latest. Meanwhile no first signing key is made: an
// instance that starts then waits for the keys in use instead of making
// one that would replace them. The first start of a brand-new cluster
// waits it once, as nothing tells a new store from a lost one.
const settleGrace = 3 * time.Second

// newEpochScript sets the epoch if there is none and, if it did, marks the
// store as settling for settleGrace (one step, so that no instance sees
// the new epoch without the mark); it returns the epoch.
var newEpochScript = goredis.NewScript(`
if redis.call('SET', KEYS[1], ARGV[1], 'NX') then
  redis.call('SET', KEYS[2], '1', 'PX', ARGV[2])
end
return redis.call('GET', KEYS[1])`)

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
// An instance that finds the epoch changed writes back only while the
// store is settling (settleGrace after the new epoch): the one that set it
// may be an instance that had nothing to write back (one starting just
// then), and no first signing key is made meanwhile, so the keys written
// back are still the ones to sign with. Later it does not: what it holds
// may have been deleted since.
func (b *backend) checkEpoch(ctx context.Context) error {
	b.emu.Lock()
	defer b.emu.Unlock()
	key := b.key("epoch")
	cur, err := b.client.Get(ctx, key).Result()
	if err != nil && !errors.Is(err, goredis.Nil) {
		return unavailable(err)
	}
	lost := errors.Is(err, goredis.Nil)
	if !lost && cur != b.epoch && b.epoch != "" {
		settling, err := b.settling(ctx)
		if err != nil {
			return err
		}
		if settling {
			if err := b.writeBack(ctx); err != nil {
				return err
			}
		}
	}
	if lost {
		if err := b.writeBack(ctx); err != nil {
			return err
		}
		id := make([]byte, 8)
		if _, err := rand.Read(id); err != nil {
			return err
		}
		keys := []string{key, b.key("settling")}
		if cur, err = newEpochScript.Run(ctx, b.client, keys, hex.EncodeToString(id), settleGrace.Milliseconds()).Text(); err != nil {
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

// settling reports whether an epoch was set less than settleGrace ago.
func (b *backend) settling(ctx context.Context) (bool, error) {
	n, err := b.client.Exists(ctx, b.key("settling")).Result()
	if err != nil {
		return false, unavailable(err)
	}
	return n > 0, nil
}

// Settling reports whether Redis was found without an epoch (new, or
// lost with its data) less than settleGrace ago, by this instance (which
// looks now) or another: what the store lacks may still be written back.
func (s *storage) Settling(ctx context.Context) (bool, error) {
	if err := s.b.checkEpoch(ctx); err != nil {
		return false, err
	}
	return s.b.settling(ctx)
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

package caddystorage

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/certmagic"
	"go.uber.org/zap"

	"github.com/tokengate/tokengate/internal/state"
	"github.com/tokengate/tokengate/internal/state/filestorage"
)

// SeenOnce is state.SeenOnce on Caddy's storage: the cluster-wide replay
// set of client assertion jtis, with nothing but the certmagic.Storage
// contract (Lock, Load, Store, Unlock, List, Delete), so every Caddy
// storage module can hold it.
//
// # Layout: buckets by claim time, deleted whole
//
//	<prefix>/seen/<bucket>/<hash of key>   the claim's until, Unix milliseconds
//
// A bucket is the Unix time (seconds) at which a span of
// state.SeenOnceMaxTTL began; a claim goes into the bucket of its
// instance's clock. As no claim lasts more than one span, a live claim is
// in the claimer's bucket or the one before; a claim looks in those and in
// the one after, which covers clocks of the instances apart by up to a
// span. A Claim takes the storage lock of its key, loads the three
// candidate records (a record whose until has passed does not count),
// stores its own and unlocks: of concurrent Claims of one key on any
// number of instances, exactly one finds nothing.
//
// Sweep deletes each bucket three spans old or more, whole: storage holds
// at most a few spans of claims, and a sweep costs one List however many
// claims there are.
//
// On Caddy's file storage on Linux the lock is a lock on a file named by
// the key's hash, and the record is written under the lock of its own file
// and fdatasync'd (internal/state/filestorage): the same records, without
// certmagic's lock file and the fsyncs of Lock and Store.
type SeenOnce struct {
	storage certmagic.Storage
	file    *filestorage.Dir // nil unless storage is a FileStorage
	prefix  string
	now     func() time.Time
	logger  *zap.Logger
}

// NewSeenOnce makes the replay set of the issuer whose storage prefix is
// prefix; now and logger may be nil (time.Now, no logs).
func NewSeenOnce(storage certmagic.Storage, prefix string, now func() time.Time, logger *zap.Logger) *SeenOnce {
	if now == nil {
		now = time.Now
	}
	if logger == nil {
		logger = zap.NewNop()
	}
	s := &SeenOnce{storage: storage, prefix: prefix, now: now, logger: logger}
	s.file, _ = filestorage.For(storage)
	return s
}

func (s *SeenOnce) dir() string { return s.prefix + "/seen" }

// span is the length of a bucket, in seconds.
var span = int64(state.SeenOnceMaxTTL / time.Second)

func bucketOf(t time.Time) int64 { return t.Unix() / span * span }

func (s *SeenOnce) recordKey(bucket int64, hash string) string {
	return s.dir() + "/" + strconv.FormatInt(bucket, 10) + "/" + hash
}

// lockName is kept apart from the data keys, as some storage modules keep
// locks and data in one namespace.
func (s *SeenOnce) lockName(hash string) string { return s.prefix + "/locks/seen_" + hash }

// Claim records key until the time given; see state.SeenOnce.
func (s *SeenOnce) Claim(ctx context.Context, key string, until time.Time) (bool, error) {
	now := s.now()
	if until.Sub(now) > state.SeenOnceMaxTTL {
		return false, fmt.Errorf("seen-once claim lasting %v, longer than %v", until.Sub(now), state.SeenOnceMaxTTL)
	}
	sum := sha256.Sum256([]byte(key))
	hash := hex.EncodeToString(sum[:16])
	if s.file != nil {
		return s.claimFile(ctx, hash, until, now)
	}
	if err := s.storage.Lock(ctx, s.lockName(hash)); err != nil {
		return false, fmt.Errorf("%w: locking a seen-once record: %v", state.ErrUnavailable, err)
	}
	defer func() {
		if err := s.storage.Unlock(context.WithoutCancel(ctx), s.lockName(hash)); err != nil {
			s.logger.Error("unlocking a seen-once record", zap.Error(err))
		}
	}()
	bucket := bucketOf(now)
	if live, err := s.anyLive(ctx, bucket, hash, now); err != nil || live {
		return false, err
	}
	if err := s.storage.Store(ctx, s.recordKey(bucket, hash), strconv.AppendInt(nil, until.UnixMilli(), 10)); err != nil {
		return false, fmt.Errorf("%w: storing a seen-once record: %v", state.ErrUnavailable, err)
	}
	return true, nil
}

// claimFile is Claim on the file storage: the same steps under the lock of
// the file <prefix>/locks/seen_<hash>, which is removed again.
func (s *SeenOnce) claimFile(ctx context.Context, hash string, until, now time.Time) (bool, error) {
	first := false
	err := s.file.Update(ctx, s.lockName(hash), func([]byte) ([]byte, bool, error) {
		bucket := bucketOf(now)
		if live, err := s.anyLive(ctx, bucket, hash, now); err != nil || live {
			return nil, false, err
		}
		err := s.file.Update(ctx, s.recordKey(bucket, hash), func(old []byte) ([]byte, bool, error) {
			if old != nil && s.liveRecord(old, now) {
				return nil, false, nil
			}
			first = true
			return strconv.AppendInt(nil, until.UnixMilli(), 10), true, nil
		})
		return nil, false, err
	})
	if err != nil && !errors.Is(err, state.ErrUnavailable) {
		return false, fmt.Errorf("%w: claiming a seen-once record: %v", state.ErrUnavailable, err)
	}
	return first && err == nil, err
}

// anyLive reports whether a live claim of hash is in bucket or either
// bucket beside it.
func (s *SeenOnce) anyLive(ctx context.Context, bucket int64, hash string, now time.Time) (bool, error) {
	for _, b := range []int64{bucket, bucket - span, bucket + span} {
		live, err := s.live(ctx, s.recordKey(b, hash), now)
		if err != nil || live {
			return live, err
		}
	}
	return false, nil
}

// live reports whether the record at key holds a claim that has not
// expired. A record that cannot be read counts as live: forgetting a claim
// would let it be replayed.
func (s *SeenOnce) live(ctx context.Context, key string, now time.Time) (bool, error) {
	data, err := s.storage.Load(ctx, key)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("%w: loading a seen-once record: %v", state.ErrUnavailable, err)
	}
	return s.liveRecord(data, now), nil
}

// liveRecord reports whether a record's claim has not expired; a corrupt
// one counts as live.
func (s *SeenOnce) liveRecord(data []byte, now time.Time) bool {
	// Trimmed: records written in place are padded with spaces.
	until, err := strconv.ParseInt(strings.TrimSpace(string(data)), 10, 64)
	if err != nil {
		s.logger.Error("corrupt seen-once record; counted as seen")
		return true
	}
	return now.UnixMilli() < until
}

// Sweep deletes the buckets three spans old or more and reports how many.
func (s *SeenOnce) Sweep(ctx context.Context) (int, error) {
	names, err := s.storage.List(ctx, s.dir(), false)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("listing seen-once buckets: %v", err)
	}
	oldest := bucketOf(s.now()) - 2*span // the oldest bucket a Claim may look in, a span of clock skew included
	deleted := 0
	for _, name := range names {
		b, err := strconv.ParseInt(path.Base(name), 10, 64)
		if err != nil || b >= oldest {
			continue
		}
		if err := s.storage.Delete(ctx, s.dir()+"/"+path.Base(name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return deleted, fmt.Errorf("deleting a seen-once bucket: %v", err)
		}
		deleted++
	}
	return deleted, nil
}

var _ state.SeenOnce = (*SeenOnce)(nil)

package redis

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/tokengate/tokengate/internal/revocation"
	"github.com/tokengate/tokengate/internal/state"
)

// revocations keeps each revocation as a key of its own that expires with
// its token (plus revocation.MaxLeeway): Redis forgets it, no sweep. The
// same script that stores it publishes it, and every instance subscribed to
// the issuer's channel adds it to its memory at once. After each
// (re)subscription an instance reads every live revocation (a SCAN of the
// issuer's keys), so what was published while it was cut off is not lost.
type revocations struct {
	b       *backend
	mem     revocation.Memory
	resync  atomic.Bool  // a full read is due (start, reconnect, failure)
	subbed  atomic.Bool  // the subscription was confirmed at least once
	reads   atomic.Int64 // full reads done, counted in the debug log
	waiters sync.Map     // barrier token -> chan struct{} (Sync)
}

// barrierWait is how long Sync waits for its own barrier message before
// it reads every revocation instead.
const barrierWait = time.Second

// revokeScript stores a revocation and publishes it, in one step: a
// revocation answered 200 was both stored and pushed. KEYS[1] the
// revocation, ARGV: until (unix seconds), until (unix ms), channel, message.
var revokeScript = goredis.NewScript(`
redis.call('SET', KEYS[1], ARGV[1], 'PXAT', ARGV[2])
redis.call('PUBLISH', ARGV[3], ARGV[4])
return 1`)

func (r *revocations) key(h revocation.Hash) string {
	return r.b.key("rev:" + hex.EncodeToString(h[:]))
}

func message(h revocation.Hash, until time.Time) string {
	return hex.EncodeToString(h[:]) + " " + strconv.FormatInt(until.Unix(), 10)
}

func (r *revocations) Revoke(ctx context.Context, jti string, exp time.Time) error {
	h := revocation.HashOf(jti)
	until := exp.Add(revocation.MaxLeeway)
	if err := r.store(ctx, h, until); err != nil {
		return err
	}
	r.mem.Add(h, until, r.b.now())
	return nil
}

func (r *revocations) store(ctx context.Context, h revocation.Hash, until time.Time) error {
	if !until.After(r.b.now()) {
		return nil // expired already: nothing to deny
	}
	err := revokeScript.Run(ctx, r.b.client, []string{r.key(h)},
		until.Unix(), until.UnixMilli(), r.b.channel(), message(h, until)).Err()
	if err != nil {
		return unavailable(err)
	}
	return nil
}

func (r *revocations) IsRevoked(jti string) bool {
	return r.mem.Has(revocation.HashOf(jti), r.b.now())
}

// Sync forgets expired revocations, writes back what this instance holds
// if Redis came back empty, and makes sure every revocation published
// before it was received: it publishes a barrier of its own and waits for
// it on the subscription (Redis delivers a channel's messages in order).
// When a full read is due, or the barrier does not come back in time, it
// reads every live revocation instead. With the subscription up it costs a
// GET and a PUBLISH.
func (r *revocations) Sync(ctx context.Context) error {
	now := r.b.now()
	r.mem.Forget(now)
	if err := r.b.checkEpoch(ctx); err != nil {
		r.resync.Store(true)
		return err
	}
	// Before the subscription is first confirmed a barrier could not come
	// back: read everything at once instead of waiting for it.
	if !r.resync.Swap(false) && r.subbed.Load() && r.barrier(ctx) {
		return nil
	}
	if err := r.readAll(ctx); err != nil {
		r.resync.Store(true)
		return err
	}
	return nil
}

// readEverything is Sync with a full read, whatever the state of the
// subscription.
func (r *revocations) readEverything(ctx context.Context) error {
	r.resync.Store(false)
	r.mem.Forget(r.b.now())
	err := r.b.checkEpoch(ctx)
	if err == nil {
		err = r.readAll(ctx)
	}
	if err != nil {
		r.resync.Store(true)
	}
	return err
}

// barrier publishes a marker and reports whether this instance's
// subscription received it within barrierWait.
func (r *revocations) barrier(ctx context.Context) bool {
	tok := make([]byte, 8)
	if _, err := rand.Read(tok); err != nil {
		return false
	}
	id := hex.EncodeToString(tok)
	ch := make(chan struct{})
	r.waiters.Store(id, ch)
	defer r.waiters.Delete(id)
	if err := r.b.client.Publish(ctx, r.b.channel(), "sync "+id).Err(); err != nil {
		return false
	}
	select {
	case <-ch:
		return true
	case <-ctx.Done():
		return false
	case <-time.After(barrierWait):
		return false
	}
}

// readAll reads every live revocation of the issuer. On a Redis Cluster
// the issuer's keys share one slot, so one master answers; each is asked.
func (r *revocations) readAll(ctx context.Context) error {
	match := r.b.key("rev:*")
	scan := func(ctx context.Context, c goredis.UniversalClient) error {
		iter := c.Scan(ctx, 0, match, 1000).Iterator()
		var batch []string
		flush := func() error {
			if len(batch) == 0 {
				return nil
			}
			vals, err := c.MGet(ctx, batch...).Result()
			if err != nil {
				return err
			}
			now := r.b.now()
			for i, v := range vals {
				s, ok := v.(string)
				if !ok {
					continue // expired meanwhile
				}
				r.add(strings.TrimPrefix(batch[i], r.b.key("rev:"))+" "+s, now)
			}
			batch = batch[:0]
			return nil
		}
		for iter.Next(ctx) {
			batch = append(batch, iter.Val())
			if len(batch) == 200 {
				if err := flush(); err != nil {
					return err
				}
			}
		}
		if err := iter.Err(); err != nil {
			return err
		}
		return flush()
	}
	var err error
	if cc, ok := r.b.client.(*goredis.ClusterClient); ok {
		err = cc.ForEachMaster(ctx, func(ctx context.Context, c *goredis.Client) error { return scan(ctx, c) })
	} else {
		err = scan(ctx, r.b.client)
	}
	if err != nil {
		return unavailable(err)
	}
	r.b.logger.Debug("read every live revocation", zap.Int64("full_reads", r.reads.Add(1)), zap.Int("held", r.mem.Len()))
	return nil
}

// add reads a published or scanned revocation: "<hex hash> <until>".
func (r *revocations) add(msg string, now time.Time) {
	hs, us, ok := strings.Cut(msg, " ")
	var h revocation.Hash
	until, err := strconv.ParseInt(us, 10, 64)
	if !ok || err != nil || hex.DecodedLen(len(hs)) != len(h) {
		r.b.logger.Error("corrupt revocation in redis; ignored")
		return
	}
	if _, err := hex.Decode(h[:], []byte(hs)); err != nil {
		r.b.logger.Error("corrupt revocation in redis; ignored")
		return
	}
	r.mem.Add(h, time.Unix(until, 0), now)
}

// subscribe follows the issuer's revocation channel until ctx ends. Each
// (re)subscription asks for a full read, done at once, since messages
// published while the connection was down are gone.
func (r *revocations) subscribe(ctx context.Context) {
	ps := r.b.client.Subscribe(ctx, r.b.channel())
	defer ps.Close()
	ch := ps.ChannelWithSubscriptions()
	for {
		var m any
		select {
		case <-ctx.Done():
			return
		case m = <-ch:
		}
		switch m := m.(type) {
		case *goredis.Subscription:
			r.subbed.Store(true)
			// Not Sync: its barrier would wait for this goroutine.
			if err := r.readEverything(ctx); err != nil && !errors.Is(err, context.Canceled) {
				r.b.logger.Warn("reading revocations after subscribing", zap.Error(err))
			}
		case *goredis.Message:
			if id, ok := strings.CutPrefix(m.Payload, "sync "); ok {
				if ch, ok := r.waiters.LoadAndDelete(id); ok {
					close(ch.(chan struct{}))
				}
				continue // another instance's barrier, or this one's
			}
			r.add(m.Payload, r.b.now())
		}
	}
}

// restore writes back the revocations this instance holds (SET NX: one
// that is there stays as it is).
func (r *revocations) restore(ctx context.Context) (int, error) {
	type rv struct {
		h     revocation.Hash
		until time.Time
	}
	var all []rv
	r.mem.Each(r.b.now(), func(h revocation.Hash, until time.Time) { all = append(all, rv{h, until}) })
	n := 0
	for _, x := range all {
		ok, err := r.b.client.SetNX(ctx, r.key(x.h), x.until.Unix(), time.Until(x.until)).Result()
		if err != nil {
			return n, unavailable(err)
		}
		if ok {
			n++
		}
	}
	return n, nil
}

var _ state.Revocations = (*revocations)(nil)

package redis

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"

	goredis "github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/tokengate/tokengate/internal/state"
	"github.com/tokengate/tokengate/internal/state/caddystorage"
)

// clients holds the clients made at run time and every client's cut-off:
// the records and change log of internal/state/caddystorage, kept in this
// backend's storage hash (one implementation of their compare-and-set,
// log and compaction, and written back with the keys when Redis comes back
// empty), with the changes pushed. Update publishes the client's id on the
// issuer's clients channel once the change is stored; every instance
// subscribed reads the change log at once (three HGETs) and tells the
// registry (OnChange), so a client disabled at one instance is refused at
// the others within milliseconds rather than at their next Sync. After
// each (re)subscription it reads the log again, which holds what was
// published while it was cut off (a reader too far behind reads every
// record). Sync every revocation_sync stays as the fallback.
type clients struct {
	*caddystorage.Clients
	b *backend

	// mu serializes reading the log with taking the ids read, so that
	// each change is named by exactly one Sync.
	mu       sync.Mutex
	pending  map[string]bool // read by a push, not yet named by Sync
	onChange atomic.Pointer[func(context.Context)]
	pulls    atomic.Int64 // log reads done on a push or a subscription
}

func newClients(b *backend, prefix string) *clients {
	return &clients{Clients: caddystorage.NewClients(b.files, prefix, b.logger), b: b, pending: map[string]bool{}}
}

func (c *clients) channel() string { return c.b.key("clients") }

// Update stores the change, then publishes the client's id. A publish that
// fails leaves the change stored: the other instances read it at their
// next Sync.
func (c *clients) Update(ctx context.Context, id string, decide func(rec state.Client, found bool) (state.Client, bool, error)) error {
	wrote := false
	err := c.Clients.Update(ctx, id, func(rec state.Client, found bool) (state.Client, bool, error) {
		next, write, err := decide(rec, found)
		wrote = write && err == nil
		return next, write, err
	})
	if err != nil || !wrote {
		return err
	}
	if err := c.b.client.Publish(ctx, c.channel(), id).Err(); err != nil {
		c.b.logger.Warn("client change stored but not pushed; other instances read it at their next sync", zap.Error(err))
	}
	return nil
}

// Sync reads the log (as caddystorage.Clients does) and names also what
// the pushes read since the last Sync.
func (c *clients) Sync(ctx context.Context) ([]string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	changed, err := c.Clients.Sync(ctx)
	if err != nil {
		return nil, err
	}
	for _, id := range changed {
		delete(c.pending, id)
	}
	for id := range c.pending {
		changed = append(changed, id)
	}
	clear(c.pending)
	return changed, nil
}

// OnChange sets f, called with the subscription's context once a push has
// read changes: the registry calls Sync then, and applies them at once.
func (c *clients) OnChange(f func(context.Context)) { c.onChange.Store(&f) }

// pull reads the log after a push or a (re)subscription. After a
// (re)subscription Redis may have come back empty: the instance's state is
// written back first (checkEpoch), or the read would find no record and
// forget every client's cut-off until the next Sync.
func (c *clients) pull(ctx context.Context, subscribed bool) {
	if subscribed {
		if err := c.b.checkEpoch(ctx); err != nil {
			if !errors.Is(err, context.Canceled) {
				c.b.logger.Warn("checking redis after subscribing to client changes; reading them at the next sync", zap.Error(err))
			}
			return
		}
	}
	c.mu.Lock()
	changed, err := c.Clients.Sync(ctx)
	for _, id := range changed {
		c.pending[id] = true
	}
	c.mu.Unlock()
	c.pulls.Add(1)
	if err != nil {
		if !errors.Is(err, context.Canceled) {
			c.b.logger.Warn("reading client changes on a push; reading them at the next sync", zap.Error(err))
		}
		return
	}
	if f := c.onChange.Load(); f != nil && len(changed) > 0 {
		(*f)(ctx)
	}
}

// subscribe follows the issuer's clients channel until ctx ends.
func (c *clients) subscribe(ctx context.Context) {
	ps := c.b.client.Subscribe(ctx, c.channel())
	defer ps.Close()
	ch := ps.ChannelWithSubscriptions()
	for {
		select {
		case <-ctx.Done():
			return
		case m := <-ch:
			_, subscribed := m.(*goredis.Subscription)
			if _, ok := m.(*goredis.Message); !ok && !subscribed {
				continue
			}
			// Which client changed is in the log: one read covers every
			// message queued meanwhile.
			for len(ch) > 0 {
				if _, ok := (<-ch).(*goredis.Subscription); ok {
					subscribed = true
				}
			}
			c.pull(ctx, subscribed)
		}
	}
}

var (
	_ state.Clients       = (*clients)(nil)
	_ state.ClientsPusher = (*clients)(nil)
)

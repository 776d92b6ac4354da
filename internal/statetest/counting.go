package statetest

import (
	"context"
	"sync/atomic"

	"github.com/caddyserver/certmagic"
)

// CountingStorage wraps a Caddy storage and counts the calls made to it, so
// a test can assert what a path costs in storage: nothing at all (Calls),
// or so many reads and listings (Loads, Lists, Stores).
type CountingStorage struct {
	certmagic.Storage
	Loads, Lists, Stores atomic.Int64
	calls                atomic.Int64
}

// Calls is the number of calls of every kind since the last Reset.
func (c *CountingStorage) Calls() int64 { return c.calls.Load() }

// Reset sets every count to zero.
func (c *CountingStorage) Reset() {
	c.Loads.Store(0)
	c.Lists.Store(0)
	c.Stores.Store(0)
	c.calls.Store(0)
}

func (c *CountingStorage) Load(ctx context.Context, key string) ([]byte, error) {
	c.calls.Add(1)
	c.Loads.Add(1)
	return c.Storage.Load(ctx, key)
}

func (c *CountingStorage) List(ctx context.Context, prefix string, recursive bool) ([]string, error) {
	c.calls.Add(1)
	c.Lists.Add(1)
	return c.Storage.List(ctx, prefix, recursive)
}

func (c *CountingStorage) Store(ctx context.Context, key string, value []byte) error {
	c.calls.Add(1)
	c.Stores.Add(1)
	return c.Storage.Store(ctx, key, value)
}

func (c *CountingStorage) Delete(ctx context.Context, key string) error {
	c.calls.Add(1)
	return c.Storage.Delete(ctx, key)
}

func (c *CountingStorage) Exists(ctx context.Context, key string) bool {
	c.calls.Add(1)
	return c.Storage.Exists(ctx, key)
}

func (c *CountingStorage) Stat(ctx context.Context, key string) (certmagic.KeyInfo, error) {
	c.calls.Add(1)
	return c.Storage.Stat(ctx, key)
}

func (c *CountingStorage) Lock(ctx context.Context, name string) error {
	c.calls.Add(1)
	return c.Storage.Lock(ctx, name)
}

func (c *CountingStorage) Unlock(ctx context.Context, name string) error {
	c.calls.Add(1)
	return c.Storage.Unlock(ctx, name)
}

var _ certmagic.Storage = (*CountingStorage)(nil)

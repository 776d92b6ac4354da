// Package caddystorage keeps issuer state in Caddy's configured storage
// (certmagic.Storage), the embedded default backend. Revocations and
// refresh families have their own packages (internal/revocation,
// internal/refresh); this one holds the client records (state.Clients)
// and the replay set of client assertions (state.SeenOnce, seen.go).
//
// # Client records
//
// One record per client id, and a change log that every instance follows
// from a position, so that a Sync with nothing new is one small Load,
// however many clients there are:
//
//	<prefix>/clients/records/<hash of id>  state.Client as JSON
//	<prefix>/clients/log/head              {"next": n, "first": f}
//	<prefix>/clients/log/<i>               {"client_id": id}   f <= i < n
//
// Writers take the storage lock <prefix>/clients, store the record, then
// the log entry, then the head that counts it: a reader never looks for an
// entry that is not there yet, and reads each changed record once. Changes
// are rare (an operator's), so one lock for all of an issuer's clients
// costs nothing. The log keeps the last LogLength entries; a reader that
// fell further behind (or a new one) lists the records and reads them all.
package caddystorage

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strconv"
	"sync"

	"github.com/caddyserver/certmagic"
	"go.uber.org/zap"

	"github.com/tokengate/tokengate/internal/state"
)

// LogLength is how many changes the client log keeps.
const LogLength = 1000

// Clients is state.Clients on Caddy's storage.
type Clients struct {
	storage certmagic.Storage
	prefix  string
	logger  *zap.Logger
	keep    int // log entries kept: LogLength (tests shorten it)

	mu      sync.RWMutex
	records map[string]state.Client

	smu    sync.Mutex // serializes Sync
	pos    int        // log entries read
	loaded bool       // every record read once
}

// NewClients makes the client records of the issuer whose storage prefix
// is prefix; nothing is read until Sync.
func NewClients(storage certmagic.Storage, prefix string, logger *zap.Logger) *Clients {
	if logger == nil {
		logger = zap.NewNop()
	}
	return &Clients{storage: storage, prefix: prefix, logger: logger, keep: LogLength, records: map[string]state.Client{}}
}

func (c *Clients) dir() string     { return c.prefix + "/clients" }
func (c *Clients) logDir() string  { return c.dir() + "/log" }
func (c *Clients) recDir() string  { return c.dir() + "/records" }
func (c *Clients) headKey() string { return c.logDir() + "/head" }

func (c *Clients) recordKey(id string) string {
	sum := sha256.Sum256([]byte(id))
	return c.recDir() + "/" + hex.EncodeToString(sum[:16])
}

type logHead struct {
	Next  int `json:"next"`
	First int `json:"first"`
}

type logEntry struct {
	ClientID string `json:"client_id"`
}

// Get returns the record of a client as this handle knows it.
func (c *Clients) Get(id string) (state.Client, bool) {
	c.mu.RLock()
	rec, ok := c.records[id]
	c.mu.RUnlock()
	return rec, ok
}

// All returns every record this handle knows.
func (c *Clients) All() []state.Client {
	c.mu.RLock()
	defer c.mu.RUnlock()
	out := make([]state.Client, 0, len(c.records))
	for _, rec := range c.records {
		out = append(out, rec)
	}
	return out
}

// Update is the compare-and-set of one client's record.
func (c *Clients) Update(ctx context.Context, id string, decide func(rec state.Client, found bool) (state.Client, bool, error)) error {
	if err := c.storage.Lock(ctx, c.dir()); err != nil {
		return fmt.Errorf("locking client records: %w", err)
	}
	defer func() {
		if err := c.storage.Unlock(context.WithoutCancel(ctx), c.dir()); err != nil {
			c.logger.Error("unlocking client records", zap.Error(err))
		}
	}()
	rec, found, err := c.load(ctx, id)
	if errors.Is(err, state.ErrCorruptClient) {
		// Written over by the operator's next change; until then refused.
		rec, found, err = state.Client{ID: id, Disabled: true}, true, nil
	}
	if err != nil {
		return err
	}
	next, write, err := decide(rec, found)
	if err != nil || !write {
		return err
	}
	next.ID = id
	if err := c.storeJSON(ctx, c.recordKey(id), next); err != nil {
		return err
	}
	var hd logHead
	if _, err := c.loadJSON(ctx, c.headKey(), &hd); err != nil {
		return err
	}
	if err := c.storeJSON(ctx, c.logDir()+"/"+strconv.Itoa(hd.Next), logEntry{ClientID: id}); err != nil {
		return err
	}
	hd.Next++
	for hd.Next-hd.First > c.keep {
		// Readers this far behind list the records instead.
		if err := c.storage.Delete(ctx, c.logDir()+"/"+strconv.Itoa(hd.First)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			c.logger.Warn("deleting an old client log entry", zap.Error(err))
		}
		hd.First++
	}
	if err := c.storeJSON(ctx, c.headKey(), hd); err != nil {
		return err
	}
	c.mu.Lock()
	c.records[id] = next
	c.mu.Unlock()
	return nil
}

// Sync reads the records changed since the last Sync.
func (c *Clients) Sync(ctx context.Context) ([]string, error) {
	c.smu.Lock()
	defer c.smu.Unlock()
	var hd logHead
	if _, err := c.loadJSON(ctx, c.headKey(), &hd); err != nil {
		return nil, err
	}
	if !c.loaded || hd.Next < c.pos || c.pos < hd.First {
		return c.readAll(ctx, hd)
	}
	ids := map[string]bool{}
	for i := c.pos; i < hd.Next; i++ {
		var e logEntry
		found, err := c.loadJSON(ctx, c.logDir()+"/"+strconv.Itoa(i), &e)
		if err != nil {
			return nil, err
		}
		if !found || e.ClientID == "" {
			// Compacted under our feet, or corrupt: read everything.
			return c.readAll(ctx, hd)
		}
		ids[e.ClientID] = true
	}
	changed := make([]string, 0, len(ids))
	for id := range ids {
		if err := c.refresh(ctx, id); err != nil {
			return nil, err
		}
		changed = append(changed, id)
	}
	c.pos = hd.Next
	return changed, nil
}

// refresh reads one record into memory.
func (c *Clients) refresh(ctx context.Context, id string) error {
	rec, found, err := c.load(ctx, id)
	if errors.Is(err, state.ErrCorruptClient) {
		c.logger.Error("corrupt client record; the client is refused until it is written again", zap.String("client_id", id))
		rec, found, err = state.Client{ID: id, Disabled: true}, true, nil
	}
	if err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if found {
		c.records[id] = rec
	} else {
		delete(c.records, id)
	}
	return nil
}

// readAll lists and reads every record, replacing memory, and takes up
// the log at hd (read before the list, so a change made meanwhile is read
// again next time rather than missed).
func (c *Clients) readAll(ctx context.Context, hd logHead) ([]string, error) {
	keys, err := c.storage.List(ctx, c.recDir(), false)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("listing client records: %w", err)
	}
	records := make(map[string]state.Client, len(keys))
	for _, k := range keys {
		var rec state.Client
		found, err := c.loadJSON(ctx, k, &rec)
		if err != nil {
			return nil, err
		}
		if !found {
			continue
		}
		if rec.ID == "" || c.recordKey(rec.ID) != k {
			// Its client cannot be named, so it cannot be refused.
			c.logger.Error("corrupt client record; ignored", zap.String("key", k))
			continue
		}
		records[rec.ID] = rec
	}
	c.mu.Lock()
	changed := make([]string, 0, len(records)+len(c.records))
	for id := range c.records {
		if _, ok := records[id]; !ok {
			changed = append(changed, id)
		}
	}
	for id := range records {
		changed = append(changed, id)
	}
	c.records = records
	c.mu.Unlock()
	c.pos, c.loaded = hd.Next, true
	return changed, nil
}

// load reads one record; a corrupt one is state.ErrCorruptClient.
func (c *Clients) load(ctx context.Context, id string) (state.Client, bool, error) {
	var rec state.Client
	data, err := c.storage.Load(ctx, c.recordKey(id))
	if errors.Is(err, fs.ErrNotExist) {
		return rec, false, nil
	}
	if err != nil {
		return rec, false, fmt.Errorf("loading client record: %w", err)
	}
	if err := json.Unmarshal(data, &rec); err != nil || rec.ID != id {
		return rec, true, state.ErrCorruptClient
	}
	return rec, true, nil
}

// loadJSON reads key into v; a missing key is (false, nil). A corrupt
// log head or entry is an error: the log cannot be followed past it.
func (c *Clients) loadJSON(ctx context.Context, key string, v any) (bool, error) {
	data, err := c.storage.Load(ctx, key)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("loading %s: %w", path.Base(key), err)
	}
	if err := json.Unmarshal(data, v); err != nil {
		c.logger.Error("corrupt client state", zap.String("key", key), zap.Error(err))
		return true, nil
	}
	return true, nil
}

func (c *Clients) storeJSON(ctx context.Context, key string, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	if err := c.storage.Store(ctx, key, data); err != nil {
		return fmt.Errorf("storing client state: %w", err)
	}
	return nil
}

var _ state.Clients = (*Clients)(nil)

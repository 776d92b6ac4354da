// Package filestorage updates a record of Caddy's default storage,
// certmagic.FileStorage, in place under a lock on the record's own file,
// for the one operation of the issuer that must happen exactly once across
// instances on every request that does it: the compare-and-set of a
// refresh token family (internal/refresh).
//
// # Why not through certmagic.Storage
//
// Through the Storage interface a compare-and-set is Lock, Load, Store and
// Unlock. On FileStorage that is four changes to directories (create and
// delete a lock file, create a temporary file and rename it over the
// record) and two fsyncs, one in Lock and one in Store. Each directory
// change goes through the file system's journal, which every process
// writing to the disk shares: measured on a 2-core machine with other
// builds running, Lock+Load+Store+Unlock without any fsync took 0.35–3 ms
// per redemption, against 14–30 µs for the same update made in place under
// a lock on the record (BENCHMARKS.md, issue 13). Redemptions were capped
// near 1,500 a second on the file storage, whatever the issuer did.
//
// # What is done instead (Linux)
//
// The record keeps its key, its file and its JSON, so FileStorage.Load
// (Sweep, an older instance reading) reads it as before. An Update opens
// the record's file, takes an exclusive open-file-description lock on it
// (fcntl F_OFD_SETLK, which holds between processes and between goroutines
// of one process, and which the kernel drops when the holder dies), checks
// that the file is still the one at the key (a Sweep may have deleted it),
// reads it, writes the new record over it from offset 0, padded with
// spaces (valid JSON whitespace) to at least the file's size so that it
// never shrinks, and returns once it is on disk: the writes waiting at one
// moment share one syncfs(2) of the storage's file system (a group commit:
// one disk flush for every redemption in flight rather than one each,
// which is what bounds redemptions once nothing else does). As
// FileStorage.Store does, it does not sync the directory: a new record's
// file is durable with its directory entry where the file system journals
// both in one transaction (ext4, XFS). Load takes the shared lock, so it
// never reads a record half-written.
//
// These locks are not certmagic's lock files: all instances sharing a
// storage directory must take them, so the instances of a cluster on one
// directory are upgraded together (docs/clusters.md). Other storage
// modules (Redis, Consul, S3, …), and Caddy's file storage elsewhere than
// on Linux, go through the Storage interface unchanged.
package filestorage

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/caddyserver/certmagic"
)

// Dir is a FileStorage whose records are updated in place.
type Dir struct {
	fs     *certmagic.FileStorage
	commit *committer
}

// For returns the Dir of st when st is Caddy's file storage on a system
// with open-file-description locks, and false otherwise.
func For(st certmagic.Storage) (*Dir, bool) {
	fs, ok := st.(*certmagic.FileStorage)
	if !ok || fs == nil || fs.Path == "" || !supported {
		return nil, false
	}
	commitsMu.Lock()
	defer commitsMu.Unlock()
	c := commits[fs.Path]
	if c == nil {
		c = &committer{}
		c.cond.L = &c.mu
		commits[fs.Path] = c
	}
	return &Dir{fs: fs, commit: c}, true
}

// commits holds one committer per storage path, so that every issuer of
// the process shares its flushes.
var (
	commitsMu sync.Mutex
	commits   = map[string]*committer{}
)

// padding is the size records are rounded up to, so that rewriting one
// rarely changes its file's size.
const padding = 256

// maxRecord bounds what is read of a record.
const maxRecord = 1 << 20

// Update calls update with the record at key (nil when there is none) while
// holding the record's exclusive lock, and writes what it returns when
// write is true; of any number of concurrent Updates of one key, in any
// process on the storage, each sees what the ones before it wrote. The
// write is on disk when Update returns.
func (d *Dir) Update(ctx context.Context, key string, update func(old []byte) (next []byte, write bool, err error)) error {
	name := d.fs.Filename(key)
	for {
		f, created, err := openRecord(name)
		if err != nil {
			return err
		}
		done, err := d.updateLocked(ctx, f, name, created, update)
		f.Close() // drops the lock
		if done || err != nil {
			return err
		}
	}
}

// updateLocked locks f and runs update; done is false when f is no longer
// the file at name and the caller must start again.
func (d *Dir) updateLocked(ctx context.Context, f *os.File, name string, created bool, update func([]byte) ([]byte, bool, error)) (done bool, err error) {
	if err := lock(ctx, f, true); err != nil {
		return false, err
	}
	size, current, err := stillAt(f, name)
	if err != nil || !current {
		return false, err
	}
	old, err := readRecord(f, size)
	if err != nil {
		return false, err
	}
	next, write, err := update(old)
	if err != nil || !write {
		if created && size == 0 {
			// Ours and empty: leave nothing behind (a concurrent opener
			// sees it unlinked and starts again).
			_ = os.Remove(name)
		}
		return true, err
	}
	if err := writeRecord(f, next, size, d.commit.sync); err != nil {
		return true, fmt.Errorf("writing %s: %w", filepath.Base(name), err)
	}
	return true, nil
}

// Load reads the record at key as FileStorage.Load does (a missing one
// wraps fs.ErrNotExist), under the record's shared lock.
func (d *Dir) Load(ctx context.Context, key string) ([]byte, error) {
	f, err := os.Open(d.fs.Filename(key))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if err := lock(ctx, f, false); err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	data, err := readRecord(f, st.Size())
	if err == nil && data == nil {
		// Created by an Update that has not written yet.
		return nil, fmt.Errorf("%s: %w", key, fs.ErrNotExist)
	}
	return data, err
}

// openRecord opens the record's file for update, making it (and its
// directory) when there is none.
func openRecord(name string) (f *os.File, created bool, err error) {
	for {
		f, err = os.OpenFile(name, os.O_RDWR, 0)
		if !errors.Is(err, fs.ErrNotExist) {
			return f, false, err
		}
		f, err = os.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
		if errors.Is(err, fs.ErrNotExist) {
			if err := os.MkdirAll(filepath.Dir(name), 0o700); err != nil {
				return nil, false, err
			}
			continue
		}
		if errors.Is(err, fs.ErrExist) {
			continue // made by another at the same moment
		}
		return f, err == nil, err
	}
}

// lock takes f's lock, polling so that ctx can end the wait.
func lock(ctx context.Context, f *os.File, exclusive bool) error {
	wait := 100 * time.Microsecond
	for {
		ok, err := tryLock(f, exclusive)
		if ok || err != nil {
			return err
		}
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return ctx.Err()
		}
		wait = min(2*wait, 20*time.Millisecond)
	}
}

// readRecord reads a record of size bytes; an empty file is no record.
func readRecord(f *os.File, size int64) ([]byte, error) {
	if size == 0 {
		return nil, nil
	}
	if size > maxRecord {
		return nil, fmt.Errorf("record of %d bytes is too large", size)
	}
	data := make([]byte, size)
	if _, err := f.ReadAt(data, 0); err != nil {
		return nil, err
	}
	return data, nil
}

// writeRecord writes data over f from its start, padded with spaces to at
// least the file's size, and syncs it.
func writeRecord(f *os.File, data []byte, size int64, sync func(*os.File) error) error {
	n := max(int64(len(data)+padding-1)/padding*padding, size)
	buf := make([]byte, n)
	copy(buf, data)
	for i := len(data); i < len(buf); i++ {
		buf[i] = ' '
	}
	if _, err := f.WriteAt(buf, 0); err != nil {
		return err
	}
	return sync(f)
}

// committer makes writes durable in groups: a write waiting for its sync
// while none runs syncs its group (Linux: syncfs(2), one flush of the file
// system for every record written before it began); the writes arriving
// meanwhile gather into the next group, which one of them syncs when the
// running one ends. Concurrent redemptions so share a flush instead of
// each waiting for its own (BENCHMARKS.md, issue 13).
type committer struct {
	mu      sync.Mutex
	cond    sync.Cond
	group   *group // gathering
	running bool
}

type group struct {
	finished bool
	err      error
}

func (c *committer) sync(f *os.File) error {
	if syncGroup == nil {
		return datasync(f)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.group == nil {
		c.group = &group{}
	}
	g := c.group
	for !g.finished {
		if c.running {
			c.cond.Wait()
			continue
		}
		// Nothing runs, so g is still gathering: sync it.
		c.running, c.group = true, nil
		c.mu.Unlock()
		err := syncGroup(f)
		c.mu.Lock()
		g.err, g.finished, c.running = err, true, false
		c.cond.Broadcast()
	}
	return g.err
}

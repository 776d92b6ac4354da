// Package revocation keeps the list of revoked access tokens (by jti) in
// Caddy's storage, with an in-process copy so that a check is a map lookup.
//
// A revocation is written to storage at once and to the local copy at once,
// so the instance that revoked a token refuses it immediately. Other
// instances on the same storage pick it up at their next Sync, every
// revocation_sync (a few seconds). A revocation lives until the token's own
// expiry plus MaxLeeway; then it leaves memory and, with its log, storage.
//
// # What a sync costs: only what changed
//
// Each Store writes its revocations to logs of its own, one per writer and
// hour, so that nobody else ever writes there:
//
//	<prefix>/revocations/heads/<hour>-<writer>        {"next": n, "until": t}
//	<prefix>/revocations/entries/<hour>-<writer>/<i>  {"jti": hash, "expires": exp}  i < n
//
// An entry is stored before the head that counts it, so a reader never
// looks for an entry that is not yet there; concurrent revocations store
// their entries in parallel and share one head write (group commit). A Sync
// lists the heads (a handful: writers × hours of live tokens; heads and
// entries live apart because listing a directory reads its subdirectories'
// names too), loads each head, and reads only the entries past the position
// it reached last time: with nothing new it is one List and one small Load
// per log, however many revocations are live. Memory holds a 16-byte hash of each live jti (not
// the jti, not a hex string), dropped by expiry minute as the clock passes
// it. A log whose hour is over and whose `until` (the last expiry in it plus
// MaxLeeway) has passed is deleted whole by the first Sync that sees it so,
// so storage holds expired entries for at most an hour more than needed.
//
// # Old records
//
// Revocations written before this layout (one record per token under
// <prefix>/revoked/, found by listing them all) are still honoured: the
// first Sync reads them, and Sweep (hourly) reads new ones and deletes the
// expired ones, as before. During a rolling upgrade, a revocation made by a
// not yet upgraded instance reaches the upgraded ones at their next Sweep.
package revocation

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/caddyserver/certmagic"
	"go.uber.org/zap"

	"github.com/tokengate/tokengate/internal/state"
)

// DefaultSyncInterval is how often other instances' revocations are read.
const DefaultSyncInterval = 2 * time.Second

// MaxLeeway keeps a revocation past its token's exp, covering the
// validators' clock leeway: a validator may accept a token that long after
// its exp, so its revocation must be known that long.
const MaxLeeway = 5 * time.Minute

// logSpan is how long a writer appends to one log before starting the next;
// a log is deleted whole once its span is over (plus logGrace, for
// revocations still being written at the turn) and its entries expired.
const (
	logSpan  = time.Hour
	logGrace = 10 * time.Minute
)

// Config is what a Store needs.
type Config struct {
	Storage certmagic.Storage
	// Prefix is the storage key prefix of the issuer owning the list.
	Prefix string
	Now    func() time.Time
	Logger *zap.Logger
}

// Store is the revocation list of one issuer. It is safe for concurrent
// use; IsRevoked never waits for storage.
type Store struct {
	cfg    Config
	writer string // this Store's name in log names, random per process

	mem Memory

	wmu   sync.Mutex // guards logs
	wcond *sync.Cond // on wmu: a head was written, or an entry stored
	logs  map[string]*logWriter

	smu      sync.Mutex     // serializes Sync and Sweep
	read     map[string]int // log -> entries read
	legacyOK bool           // old-format records read once
}

// New makes a Store; nothing is read until Sync.
func New(cfg Config) *Store {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	w := make([]byte, 6)
	if _, err := rand.Read(w); err != nil {
		panic(err) // crypto/rand never fails on supported platforms
	}
	s := &Store{
		cfg:    cfg,
		writer: hex.EncodeToString(w),
		mem:    NewMemory(),
		read:   map[string]int{},
		logs:   map[string]*logWriter{},
	}
	s.wcond = sync.NewCond(&s.wmu)
	return s
}

func (s *Store) headKey(log string) string  { return s.cfg.Prefix + "/revocations/heads/" + log }
func (s *Store) entryDir(log string) string { return s.cfg.Prefix + "/revocations/entries/" + log }
func (s *Store) entryKey(log string, i int) string {
	return s.entryDir(log) + "/" + strconv.Itoa(i)
}
func (s *Store) legacyDir() string { return s.cfg.Prefix + "/revoked" }

// logWriter is the state of one of this Store's logs.
type logWriter struct {
	name     string
	next     int           // the next entry's number
	stored   map[int]int64 // entries stored (until; 0 when the store failed), not yet counted by the head
	head     int           // entries counted by the stored head
	until    int64         // the stored head's until
	writing  bool          // a head is being stored
	inflight int           // Revokes using this log
}

type head struct {
	Next  int   `json:"next"`
	Until int64 `json:"until"` // unix seconds: every entry is expired by then
}

type entry struct {
	JTI     string    `json:"jti"` // hex of the jti's hash
	Expires time.Time `json:"expires"`
}

// Revoke denies the access token with this jti until exp (plus MaxLeeway).
// When it returns nil the revocation is in storage, and this Store refuses
// the token from then on.
func (s *Store) Revoke(ctx context.Context, jti string, exp time.Time) error {
	h := HashOf(jti)
	data, err := json.Marshal(entry{JTI: hex.EncodeToString(h[:]), Expires: exp})
	if err != nil {
		return err
	}
	now := s.cfg.Now()
	s.wmu.Lock()
	name := s.logName(now)
	lw := s.logs[name]
	if lw == nil {
		lw = &logWriter{name: name, stored: map[int]int64{}}
		s.logs[name] = lw
	}
	i := lw.next
	lw.next++
	lw.inflight++
	s.wmu.Unlock()

	// The entry first, then a head that counts it: a reader never looks for
	// an entry that is not there yet.
	err = s.cfg.Storage.Store(ctx, s.entryKey(name, i), data)
	s.wmu.Lock()
	defer s.wmu.Unlock()
	defer func() {
		if lw.inflight--; lw.inflight == 0 && name != s.logName(s.cfg.Now()) {
			delete(s.logs, name)
		}
	}()
	if err != nil {
		// Counted by the next head all the same: readers skip a missing
		// entry, and must not wait for it.
		lw.stored[i] = 0
		s.wcond.Broadcast()
		return fmt.Errorf("storing revocation: %v", err)
	}
	lw.stored[i] = exp.Add(MaxLeeway).Unix()
	if err := s.commit(ctx, lw, i); err != nil {
		return err
	}
	s.remember(h, exp, now)
	return nil
}

// commit returns once a stored head counts entry i of lw. Whoever finds
// entries stored and no head being written writes one for all of them, so
// concurrent revocations share head writes. The caller holds wmu.
func (s *Store) commit(ctx context.Context, lw *logWriter, i int) error {
	for lw.head <= i {
		n, until := lw.head, lw.until
		for {
			u, ok := lw.stored[n]
			if !ok {
				break
			}
			until = max(until, u)
			n++
		}
		if lw.writing || n == lw.head {
			// A head is under way, or an earlier entry is still being
			// stored: its owner writes the head.
			s.wcond.Wait()
			continue
		}
		lw.writing = true
		s.wmu.Unlock()
		data, _ := json.Marshal(head{Next: n, Until: until})
		err := s.cfg.Storage.Store(ctx, s.headKey(lw.name), data)
		s.wmu.Lock()
		lw.writing = false
		if err == nil {
			for k := lw.head; k < n; k++ {
				delete(lw.stored, k)
			}
			lw.head, lw.until = n, until
		}
		s.wcond.Broadcast()
		if err != nil {
			return fmt.Errorf("storing revocation: %v", err)
		}
	}
	return nil
}

// logName is this writer's log for the span holding now. The span comes
// first so that logs sort by age.
func (s *Store) logName(now time.Time) string {
	return strconv.FormatInt(now.Truncate(logSpan).Unix(), 10) + "-" + s.writer
}

// remember adds a revocation to memory unless it has already expired.
func (s *Store) remember(h Hash, exp, now time.Time) { s.mem.Add(h, exp.Add(MaxLeeway), now) }

// IsRevoked reports whether the access token with this jti is revoked, as
// far as this instance knows (see Sync).
func (s *Store) IsRevoked(jti string) bool { return s.mem.Has(HashOf(jti), s.cfg.Now()) }

// Sync reads the revocations other instances made since the last Sync,
// forgets the expired ones, and deletes logs that have wholly expired.
func (s *Store) Sync(ctx context.Context) error {
	s.smu.Lock()
	defer s.smu.Unlock()
	now := s.cfg.Now()
	s.mem.Forget(now)
	if !s.legacyOK {
		if _, err := s.readLegacy(ctx, now, false); err != nil {
			return err
		}
		s.legacyOK = true
	}
	logs, err := s.cfg.Storage.List(ctx, s.cfg.Prefix+"/revocations/heads", false)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("listing revocation logs: %v", err)
	}
	seen := make(map[string]bool, len(logs))
	for _, l := range logs {
		log := path.Base(l)
		seen[log] = true
		if err := s.follow(ctx, log, now); err != nil {
			return err
		}
	}
	for log := range s.read {
		if !seen[log] {
			delete(s.read, log) // deleted by another instance
		}
	}
	return nil
}

// follow reads the new entries of one log, or deletes the log when it is
// over and expired.
func (s *Store) follow(ctx context.Context, log string, now time.Time) error {
	start, writer, ok := strings.Cut(log, "-")
	span, err := strconv.ParseInt(start, 10, 64)
	if !ok || err != nil {
		return nil // not a log of ours; left alone
	}
	own := writer == s.writer
	var hd head
	switch found, err := s.loadJSON(ctx, s.headKey(log), &hd); {
	case err != nil:
		return err
	case !found:
		return nil // deleted meanwhile
	}
	if now.Unix() >= span+int64((logSpan+logGrace)/time.Second) && now.Unix() > hd.Until {
		// The writer has moved on and every entry has expired.
		s.deleteLog(ctx, log)
		return nil
	}
	if own {
		return nil // already in memory
	}
	from := s.read[log]
	entries, err := s.loadEntries(ctx, log, from, hd.Next)
	if err != nil {
		return err
	}
	for k, e := range entries {
		var h Hash
		// A missing entry failed to store (its revocation was answered
		// with an error); a corrupt one names no jti to deny.
		if e.found && len(e.JTI) != hex.EncodedLen(len(h)) {
			s.cfg.Logger.Error("corrupt revocation record; its token cannot be identified", zap.String("key", s.entryKey(log, from+k)))
		} else if e.found {
			if _, err := hex.Decode(h[:], []byte(e.JTI)); err != nil {
				s.cfg.Logger.Error("corrupt revocation record; its token cannot be identified", zap.String("key", s.entryKey(log, from+k)))
			} else {
				s.remember(h, e.Expires, now)
			}
		}
	}
	s.read[log] = hd.Next
	return nil
}

// loaded is an entry as read from storage.
type loaded struct {
	entry
	found bool
}

// loadParallel is how many entries a sync loads at once when it has many
// to read (a start, or a burst of revocations elsewhere): a storage read is
// mostly waiting.
const loadParallel = 8

// loadEntries loads the entries [from, to) of a log, in parallel when there
// are many.
func (s *Store) loadEntries(ctx context.Context, log string, from, to int) ([]loaded, error) {
	out := make([]loaded, max(0, to-from))
	var next atomic.Int64
	next.Store(int64(from))
	workers := min(loadParallel, 1+len(out)/64)
	errs := make(chan error, workers)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= to || ctx.Err() != nil {
					return
				}
				e := &out[i-from]
				found, err := s.loadJSON(ctx, s.entryKey(log, i), &e.entry)
				if err != nil {
					errs <- err
					return
				}
				e.found = found
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return nil, err
	}
	return out, ctx.Err()
}

// deleteLog deletes a whole log, its entries before its head (a head
// without entries is skipped by readers and deleted again); several
// instances may do so at once.
func (s *Store) deleteLog(ctx context.Context, log string) {
	for _, key := range []string{s.entryDir(log), s.headKey(log)} {
		if err := s.cfg.Storage.Delete(ctx, key); err != nil && !errors.Is(err, fs.ErrNotExist) {
			s.cfg.Logger.Warn("deleting an expired revocation log", zap.String("log", log), zap.Error(err))
			return
		}
	}
	delete(s.read, log)
}

// loadJSON reads key into v; a missing key is (false, nil), corrupt
// content (true, nil) with v unchanged.
func (s *Store) loadJSON(ctx context.Context, key string, v any) (bool, error) {
	data, err := s.cfg.Storage.Load(ctx, key)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("loading revocation: %v", err)
	}
	if err := json.Unmarshal(data, v); err != nil {
		s.cfg.Logger.Error("corrupt revocation record", zap.String("key", key), zap.Error(err))
	}
	return true, nil
}

// Sweep reads and prunes the revocations of the old format: it picks up
// any made meanwhile by instances not yet upgraded and deletes the expired
// ones. It also deletes the entries of logs that never got a head (their
// writer failed to store one and stopped), a day after their span. Logs
// with a head need no sweep: Sync deletes them.
func (s *Store) Sweep(ctx context.Context) (int, error) {
	s.smu.Lock()
	defer s.smu.Unlock()
	now := s.cfg.Now()
	dirs, err := s.cfg.Storage.List(ctx, s.cfg.Prefix+"/revocations/entries", false)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return 0, fmt.Errorf("listing revocation logs: %v", err)
	}
	for _, d := range dirs {
		log := path.Base(d)
		start, _, _ := strings.Cut(log, "-")
		span, err := strconv.ParseInt(start, 10, 64)
		if err != nil || now.Unix() < span+int64((logSpan+24*time.Hour)/time.Second) {
			continue
		}
		if _, err := s.cfg.Storage.Load(ctx, s.headKey(log)); errors.Is(err, fs.ErrNotExist) {
			s.deleteLog(ctx, log)
		}
	}
	return s.readLegacy(ctx, now, true)
}

// readLegacy reads every old-format record (one file per token,
// named by the hex of the jti's hash), remembering the live ones; with del
// it deletes the expired ones and reports how many.
func (s *Store) readLegacy(ctx context.Context, now time.Time, del bool) (int, error) {
	keys, err := s.cfg.Storage.List(ctx, s.legacyDir(), false)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("listing revocations: %v", err)
	}
	deleted := 0
	for _, k := range keys {
		var h Hash
		if n, err := hex.Decode(h[:], []byte(path.Base(k))); err != nil || n != len(h) {
			continue
		}
		data, err := s.cfg.Storage.Load(ctx, k)
		if errors.Is(err, fs.ErrNotExist) {
			continue // swept meanwhile
		}
		if err != nil {
			return deleted, fmt.Errorf("loading revocation: %v", err)
		}
		var rec struct {
			Expires time.Time `json:"expires"`
		}
		if err := json.Unmarshal(data, &rec); err != nil {
			// A corrupt record must not un-revoke anything: deny for the
			// longest a token of this issuer could live, and say so; it
			// is left for an operator.
			s.cfg.Logger.Error("corrupt revocation record; treating the token as revoked", zap.String("key", k), zap.Error(err))
			s.remember(h, now.Add(24*time.Hour), now)
			continue
		}
		if del && now.After(rec.Expires.Add(MaxLeeway)) {
			if s.cfg.Storage.Delete(ctx, k) == nil {
				deleted++
			}
			continue
		}
		s.remember(h, rec.Expires, now)
	}
	return deleted, nil
}

var _ state.Revocations = (*Store)(nil)

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
//	<prefix>/revocations/<hour>-<writer>/head  {"next": n, "until": t}
//	<prefix>/revocations/<hour>-<writer>/<i>   {"jti": hash, "expires": exp}  i < n
//
// An entry is stored before the head that counts it, so a reader never
// looks for an entry that is not yet there. A Sync lists the log
// directories (a handful: writers × hours of live tokens), loads the head of
// each, and reads only the entries past the position it reached last time:
// with nothing new it is one List and one small Load per log, however many
// revocations are live. Memory holds a 16-byte hash of each live jti (not
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
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strconv"
	"strings"
	"sync"
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
// a log is deleted whole once its span is over and its entries expired.
const logSpan = time.Hour

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

	mu       sync.RWMutex
	revoked  map[hash]uint32  // live jti hashes -> expiry (+MaxLeeway) in unix seconds
	byMinute map[int64][]hash // expiry minute -> hashes, to drop them in order
	oldest   int64            // no byMinute key is below this minute

	wmu  sync.Mutex // serializes Revoke's writes to this writer's log
	wlog string     // current log
	wn   int        // entries in it
	wend int64      // latest expiry (+MaxLeeway) in it, unix seconds

	smu      sync.Mutex     // serializes Sync and Sweep
	read     map[string]int // log -> entries read
	legacyOK bool           // old-format records read once
}

// hash is what a Store keeps of a jti.
type hash [16]byte

func hashOf(jti string) hash {
	sum := sha256.Sum256([]byte(jti))
	return hash(sum[:16])
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
	return &Store{
		cfg:      cfg,
		writer:   hex.EncodeToString(w),
		revoked:  map[hash]uint32{},
		byMinute: map[int64][]hash{},
		read:     map[string]int{},
	}
}

func (s *Store) dir() string       { return s.cfg.Prefix + "/revocations" }
func (s *Store) legacyDir() string { return s.cfg.Prefix + "/revoked" }

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
	h := hashOf(jti)
	data, err := json.Marshal(entry{JTI: hex.EncodeToString(h[:]), Expires: exp})
	if err != nil {
		return err
	}
	now := s.cfg.Now()
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if log := s.logName(now); log != s.wlog {
		s.wlog, s.wn, s.wend = log, 0, 0
	}
	// The entry first, then the head that counts it: a reader never looks
	// for an entry that is not there yet. A failure leaves the head as it
	// was, and the next revocation takes the same place.
	if err := s.cfg.Storage.Store(ctx, path.Join(s.dir(), s.wlog, strconv.Itoa(s.wn)), data); err != nil {
		return fmt.Errorf("storing revocation: %v", err)
	}
	hd := head{Next: s.wn + 1, Until: max(s.wend, exp.Add(MaxLeeway).Unix())}
	if data, err = json.Marshal(hd); err != nil {
		return err
	}
	if err := s.cfg.Storage.Store(ctx, path.Join(s.dir(), s.wlog, "head"), data); err != nil {
		return fmt.Errorf("storing revocation: %v", err)
	}
	s.wn, s.wend = hd.Next, hd.Until
	s.remember(h, exp, now)
	return nil
}

// logName is this writer's log for the span holding now. The span comes
// first so that logs sort by age.
func (s *Store) logName(now time.Time) string {
	return strconv.FormatInt(now.Truncate(logSpan).Unix(), 10) + "-" + s.writer
}

// remember adds a revocation to memory unless it has already expired.
func (s *Store) remember(h hash, exp, now time.Time) {
	until := exp.Add(MaxLeeway).Unix()
	if until <= now.Unix() {
		return
	}
	minute := until / 60
	s.mu.Lock()
	defer s.mu.Unlock()
	if old, ok := s.revoked[h]; ok && int64(old) >= until {
		return
	}
	if len(s.byMinute) == 0 || minute < s.oldest {
		s.oldest = minute
	}
	s.revoked[h] = uint32(until)
	s.byMinute[minute] = append(s.byMinute[minute], h)
}

// IsRevoked reports whether the access token with this jti is revoked, as
// far as this instance knows (see Sync).
func (s *Store) IsRevoked(jti string) bool {
	h := hashOf(jti)
	now := s.cfg.Now().Unix()
	s.mu.RLock()
	until, ok := s.revoked[h]
	s.mu.RUnlock()
	return ok && int64(until) > now
}

// forget drops the revocations that expired before now, minute by minute:
// the cost is the number of entries dropped, not the size of the list.
func (s *Store) forget(now time.Time) {
	cur := now.Unix() / 60
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.byMinute) == 0 {
		return
	}
	for ; s.oldest < cur; s.oldest++ {
		for _, h := range s.byMinute[s.oldest] {
			if until, ok := s.revoked[h]; ok && int64(until) <= now.Unix() {
				delete(s.revoked, h)
			}
		}
		delete(s.byMinute, s.oldest)
		if len(s.byMinute) == 0 {
			s.oldest = cur
			return
		}
	}
}

// Sync reads the revocations other instances made since the last Sync,
// forgets the expired ones, and deletes logs that have wholly expired.
func (s *Store) Sync(ctx context.Context) error {
	s.smu.Lock()
	defer s.smu.Unlock()
	now := s.cfg.Now()
	s.forget(now)
	if !s.legacyOK {
		if _, err := s.readLegacy(ctx, now, false); err != nil {
			return err
		}
		s.legacyOK = true
	}
	logs, err := s.cfg.Storage.List(ctx, s.dir(), false)
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
	switch found, err := s.loadJSON(ctx, path.Join(s.dir(), log, "head"), &hd); {
	case err != nil:
		return err
	case !found:
		// Entries stored, head not yet: nothing to read yet. A log that
		// never got a head acknowledged no revocation; it goes a day after
		// its span.
		if now.Unix() >= span+int64((logSpan+24*time.Hour)/time.Second) {
			s.deleteLog(ctx, log)
		}
		return nil
	}
	if now.Unix() >= span+int64(logSpan/time.Second) && now.Unix() > hd.Until {
		// The writer has moved on and every entry has expired.
		s.deleteLog(ctx, log)
		return nil
	}
	if own {
		return nil // already in memory
	}
	for i := s.read[log]; i < hd.Next; i++ {
		key := path.Join(s.dir(), log, strconv.Itoa(i))
		var e entry
		found, err := s.loadJSON(ctx, key, &e)
		if err != nil {
			return err
		}
		var h hash
		if !found || len(e.JTI) != hex.EncodedLen(len(h)) {
			// Missing entries were deleted with an expired log; a corrupt
			// one names no jti to deny.
			if found {
				s.cfg.Logger.Error("corrupt revocation record; its token cannot be identified", zap.String("key", key))
			}
			s.read[log] = i + 1
			continue
		}
		if _, err := hex.Decode(h[:], []byte(e.JTI)); err != nil {
			s.cfg.Logger.Error("corrupt revocation record; its token cannot be identified", zap.String("key", key))
		} else {
			s.remember(h, e.Expires, now)
		}
		s.read[log] = i + 1
	}
	return nil
}

// deleteLog deletes a whole log; several instances may do so at once.
func (s *Store) deleteLog(ctx context.Context, log string) {
	if err := s.cfg.Storage.Delete(ctx, path.Join(s.dir(), log)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		s.cfg.Logger.Warn("deleting an expired revocation log", zap.String("log", log), zap.Error(err))
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
// ones. The new logs need no sweep (Sync deletes them).
func (s *Store) Sweep(ctx context.Context) (int, error) {
	s.smu.Lock()
	defer s.smu.Unlock()
	return s.readLegacy(ctx, s.cfg.Now(), true)
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
		var h hash
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

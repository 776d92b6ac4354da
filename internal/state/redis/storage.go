package redis

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/certmagic"
	goredis "github.com/redis/go-redis/v9"

	"github.com/tokengate/tokengate/internal/state"
)

// storage is a certmagic.Storage on one Redis hash per issuer, for what the
// issuer keeps as files: the signing keys (keys.json) and the refresh token
// MAC keys, a handful of small values. One hash is one key, so it sits in
// one slot of a Redis Cluster with the issuer's other keys (same hash tag).
//
// It remembers every file it stored or loaded, so that when Redis comes
// back empty (restarted without persistence, or flushed) the instance
// writes back what it holds instead of letting another instance mint new
// keys (restore, driven by the revocation Sync). The refresh token state
// is not written back (refresh.StoreBound): the families' records are lost,
// so the tokens made before must stay refused, and their MAC keys with
// them; the refresh store is told (OnReset) and loads the new ones.
type storage struct {
	b     *backend
	files string // the hash: path -> 8-byte unix nanos modified + data
	locks map[string]string
	lmu   sync.Mutex

	mu      sync.Mutex
	held    map[string][]byte // path -> stored value, for restore
	bound   []string          // path prefixes never restored
	onReset []func()
}

// OnReset registers f, called when this instance notices that Redis lost
// the issuer's data (checkEpoch).
func (s *storage) OnReset(f func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.onReset = append(s.onReset, f)
}

// reset tells those registered with OnReset.
func (s *storage) reset() {
	s.mu.Lock()
	hooks := slices.Clone(s.onReset)
	s.mu.Unlock()
	for _, f := range hooks {
		f()
	}
}

// lockTTL bounds how long a lock outlives an instance that died holding
// it; what the issuer does under a lock (making a key) takes milliseconds.
const lockTTL = 30 * time.Second

// lockPoll is how often a waiting Lock retries.
const lockPoll = 25 * time.Millisecond

func (s *storage) remember(key string, v []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.held[key] = v
}

func (s *storage) Store(ctx context.Context, key string, value []byte) error {
	v := make([]byte, 8+len(value))
	binary.BigEndian.PutUint64(v, uint64(time.Now().UnixNano()))
	copy(v[8:], value)
	if err := s.b.client.HSet(ctx, s.files, key, v).Err(); err != nil {
		return unavailable(err)
	}
	s.remember(key, v)
	return nil
}

func (s *storage) Load(ctx context.Context, key string) ([]byte, error) {
	v, err := s.b.client.HGet(ctx, s.files, key).Bytes()
	switch {
	case errors.Is(err, goredis.Nil):
		return nil, fs.ErrNotExist
	case err != nil:
		return nil, unavailable(err)
	case len(v) < 8:
		return nil, fmt.Errorf("stored value of %s is corrupt", key)
	}
	s.remember(key, v)
	return v[8:], nil
}

func (s *storage) Delete(ctx context.Context, key string) error {
	names, err := s.names(ctx, key, true)
	if err != nil {
		return err
	}
	if err := s.b.client.HDel(ctx, s.files, append(names, key)...).Err(); err != nil {
		return unavailable(err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.held, key)
	for _, n := range names {
		delete(s.held, n)
	}
	return nil
}

func (s *storage) Exists(ctx context.Context, key string) bool {
	_, err := s.Stat(ctx, key)
	return err == nil
}

// names lists the paths under dir (all levels with recursive, else the
// direct children, files or directories).
func (s *storage) names(ctx context.Context, dir string, recursive bool) ([]string, error) {
	all, err := s.b.client.HKeys(ctx, s.files).Result()
	if err != nil {
		return nil, unavailable(err)
	}
	pre := strings.TrimSuffix(dir, "/") + "/"
	seen := map[string]bool{}
	var out []string
	for _, k := range all {
		rest, ok := strings.CutPrefix(k, pre)
		if !ok {
			continue
		}
		if !recursive {
			first, _, _ := strings.Cut(rest, "/")
			k = pre + first
		}
		if !seen[k] {
			seen[k] = true
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out, nil
}

func (s *storage) List(ctx context.Context, dir string, recursive bool) ([]string, error) {
	out, err := s.names(ctx, dir, recursive)
	if err == nil && len(out) == 0 {
		return nil, fs.ErrNotExist
	}
	return out, err
}

func (s *storage) Stat(ctx context.Context, key string) (certmagic.KeyInfo, error) {
	v, err := s.b.client.HGet(ctx, s.files, key).Bytes()
	switch {
	case errors.Is(err, goredis.Nil):
		if names, err := s.names(ctx, key, false); err != nil {
			return certmagic.KeyInfo{}, err
		} else if len(names) > 0 {
			return certmagic.KeyInfo{Key: key}, nil
		}
		return certmagic.KeyInfo{}, fs.ErrNotExist
	case err != nil:
		return certmagic.KeyInfo{}, unavailable(err)
	case len(v) < 8:
		return certmagic.KeyInfo{}, fmt.Errorf("stored value of %s is corrupt", key)
	}
	mod := time.Unix(0, int64(binary.BigEndian.Uint64(v)))
	return certmagic.KeyInfo{Key: key, Modified: mod, Size: int64(len(v) - 8), IsTerminal: true}, nil
}

// Lock takes a cluster-wide lock: SET NX with an expiry, so that a lock of
// a crashed instance frees itself after lockTTL. It waits until it gets
// the lock or ctx ends.
func (s *storage) Lock(ctx context.Context, name string) error {
	tok := make([]byte, 16)
	if _, err := rand.Read(tok); err != nil {
		return err
	}
	val := hex.EncodeToString(tok)
	key := s.b.key("lock:" + name)
	for {
		ok, err := s.b.client.SetNX(ctx, key, val, lockTTL).Result()
		if err != nil {
			return unavailable(err)
		}
		if ok {
			s.lmu.Lock()
			s.locks[name] = val
			s.lmu.Unlock()
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(lockPoll):
		}
	}
}

// unlockScript deletes a lock only if it is still the caller's.
var unlockScript = goredis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`)

func (s *storage) Unlock(ctx context.Context, name string) error {
	s.lmu.Lock()
	val, ok := s.locks[name]
	delete(s.locks, name)
	s.lmu.Unlock()
	if !ok {
		return fmt.Errorf("lock %s is not held", name)
	}
	if err := unlockScript.Run(ctx, s.b.client, []string{s.b.key("lock:" + name)}, val).Err(); err != nil {
		return unavailable(err)
	}
	return nil
}

// restore writes back the files this instance holds that the hash lacks
// (HSETNX: what another instance wrote back first stays), but for the
// refresh token state, which belongs to the store that was lost.
func (s *storage) restore(ctx context.Context) (int, error) {
	s.mu.Lock()
	held := make(map[string][]byte, len(s.held))
	for k, v := range s.held {
		if !slices.ContainsFunc(s.bound, func(p string) bool { return strings.HasPrefix(k, p) }) {
			held[k] = v
		}
	}
	s.mu.Unlock()
	n := 0
	for k, v := range held {
		ok, err := s.b.client.HSetNX(ctx, s.files, k, v).Result()
		if err != nil {
			return n, unavailable(err)
		}
		if ok {
			n++
		}
	}
	return n, nil
}

// unavailable marks a Redis failure as state.ErrUnavailable; the reply
// errors of Redis itself (a script error, a wrong type) stay as they are.
func unavailable(err error) error {
	if err == nil {
		return nil
	}
	var re goredis.Error
	if errors.As(err, &re) && !isConnectivity(re.Error()) {
		return err
	}
	return fmt.Errorf("%w: redis: %v", state.ErrUnavailable, err)
}

// isConnectivity tells the replies that mean "not now" (a node loading its
// data, a cluster being reconfigured; a server or Sentinel refusing the
// configured password, as a TLS failure is) from real errors.
func isConnectivity(msg string) bool {
	for _, p := range []string{"LOADING", "CLUSTERDOWN", "TRYAGAIN", "MASTERDOWN", "READONLY", "WRONGPASS", "NOAUTH"} {
		if strings.HasPrefix(msg, p) {
			return true
		}
	}
	return false
}

var (
	_ certmagic.Storage   = (*storage)(nil)
	_ state.ResetNotifier = (*storage)(nil)
	_ state.Settler       = (*storage)(nil)
)

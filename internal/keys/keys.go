// Package keys holds an issuer's signing keys: it generates them, keeps them
// in Caddy's storage so that every instance on that storage signs with the
// same keys, rotates them under a storage lock, and publishes the public
// halves as a JWK set.
package keys

import (
	"context"
	"crypto"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/caddyserver/certmagic"
	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"go.uber.org/zap"

	"github.com/tokengate/tokengate/internal/state"
)

// Key is one signing key. Its algorithm is fixed when it is made; verifiers
// must use Alg and never the algorithm a token names.
type Key struct {
	KID       string
	Alg       jwa.SignatureAlgorithm
	Signer    crypto.Signer
	Public    jwk.Key // carries kid, alg and use=sig
	Created   time.Time
	Activates time.Time // the key signs from this time on
}

// storedKey is the storage form of a key.
type storedKey struct {
	KID       string    `json:"kid"`
	Alg       string    `json:"alg"`
	Created   time.Time `json:"created"`
	Activates time.Time `json:"activates"`
	PKCS8     []byte    `json:"pkcs8"`
}

type storedSet struct {
	Keys []storedKey `json:"keys"`
}

// Config tells a Manager where its keys live and how they age.
type Config struct {
	Storage certmagic.Storage
	// Prefix is the storage key prefix of the issuer owning the keys.
	Prefix string
	// Alg is the algorithm of newly made keys.
	Alg string
	// Rotation is how long a key signs before a new one takes over.
	Rotation time.Duration
	// MaxTokenTTL is the longest lifetime of a token the issuer signs; a
	// replaced key stays published that long (plus a margin) after its
	// successor took over, so every token it signed can still be verified.
	MaxTokenTTL time.Duration
	// Static, when set, is the only key: nothing is generated, stored or
	// rotated (the signing_key option).
	Static crypto.Signer
	Now    func() time.Time
	Logger *zap.Logger
}

// ErrNotLoaded: the keys could not be loaded yet (the state store was
// unreachable at start); it wraps state.ErrUnavailable, answered 503.
var ErrNotLoaded = fmt.Errorf("signing keys not loaded yet: %w", state.ErrUnavailable)

// errSettling: the storage holds no signing key but is settling
// (state.Settler), so the keys running instances hold may still be
// written back; none is made meanwhile.
var errSettling = fmt.Errorf("no signing key in a state store that just came back empty or is new: waiting for running instances to write theirs back: %w", state.ErrUnavailable)

// settlePoll is how often Load looks again for signing keys written back
// while the storage settles.
const settlePoll = 100 * time.Millisecond

// retireMargin is added to MaxTokenTTL before a replaced key is dropped; it
// covers verifiers' clock leeway.
const retireMargin = 5 * time.Minute

// reloadMinInterval bounds how often a lookup of an unknown kid may reread
// the storage: a flood of random kids costs at most one read per interval.
const reloadMinInterval = time.Second

// Manager serves the current signing key and the published key set.
// It is safe for concurrent use; reads never block on storage.
type Manager struct {
	cfg        Config
	snap       atomic.Pointer[snapshot]
	reloadMu   sync.Mutex
	lastReload time.Time // guarded by reloadMu
}

type snapshot struct {
	keys  []*Key // ascending by Activates
	byKID map[string]*Key
	jwks  []byte // the public keys as a JWK set
}

// New makes a Manager; call Load before use.
func New(cfg Config) (*Manager, error) {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	if cfg.Static != nil {
		if cfg.Alg == "" {
			cfg.Alg = algFor(cfg.Static)
		}
		if err := checkAlg(cfg.Static, cfg.Alg); err != nil {
			return nil, err
		}
		return &Manager{cfg: cfg}, nil
	}
	if cfg.Alg == "" {
		cfg.Alg = DefaultAlg
	}
	if !ValidAlg(cfg.Alg) {
		return nil, fmt.Errorf("unsupported signing algorithm %q", cfg.Alg)
	}
	if cfg.Storage == nil {
		return nil, errors.New("no storage for signing keys")
	}
	if cfg.Rotation <= 0 {
		return nil, errors.New("key rotation interval must be positive")
	}
	return &Manager{cfg: cfg}, nil
}

func (m *Manager) storageKey() string { return m.cfg.Prefix + "/keys.json" }
func (m *Manager) lockName() string   { return m.cfg.Prefix + "/keys" }

// lead is how long a new key is published before it signs, so verifiers
// that cache the JWKS (and instances that reread the storage) know it first.
func (m *Manager) lead() time.Duration {
	return min(m.cfg.Rotation/2, time.Hour)
}

// CheckInterval is how often Check should reread the storage and checks
// whether a rotation is due.
func (m *Manager) CheckInterval() time.Duration {
	return max(min(m.lead()/2, time.Minute), time.Second)
}

// Load reads the keys from storage, making the first key (under the storage
// lock, so that instances starting together agree on it) if there is none
// or if the configured algorithm changed. On a storage that is settling
// (state.Settler: a Redis just found empty) it waits, looking again every
// settlePoll, until keys are written back or the storage settled, so that
// the instance starts with the keys in use; the first start of a new
// cluster on Redis waits so once.
func (m *Manager) Load(ctx context.Context) error {
	if m.cfg.Static != nil {
		kid, err := thumbprintKID(m.cfg.Static)
		if err != nil {
			return fmt.Errorf("deriving key id of signing_key: %v", err)
		}
		k, err := newKey(kid, m.cfg.Alg, m.cfg.Static, time.Time{}, time.Time{})
		if err != nil {
			return err
		}
		return m.publish([]*Key{k})
	}
	if err := m.reload(ctx); err != nil {
		return err
	}
	for waited := false; ; waited = true {
		err := m.rotateIfDue(ctx)
		if !errors.Is(err, errSettling) {
			return err
		}
		if !waited {
			m.cfg.Logger.Info("no signing key in a state store that just came back empty or is new; waiting for running instances to write theirs back")
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(settlePoll):
		}
	}
}

// Check rereads the keys from storage and rotates them when due; the
// issuer runs it every CheckInterval. Errors are logged and the last good
// keys stay in use until the next check.
func (m *Manager) Check(ctx context.Context) {
	if m.cfg.Static != nil {
		return
	}
	if err := m.reload(ctx); err != nil {
		m.cfg.Logger.Error("reloading signing keys", zap.Error(err))
		return
	}
	if err := m.rotateIfDue(ctx); errors.Is(err, errSettling) {
		m.cfg.Logger.Info("signing keys not made yet", zap.Error(err))
	} else if err != nil {
		m.cfg.Logger.Error("rotating signing keys", zap.Error(err))
	}
}

// Current returns the key that signs now: the newest active one.
func (m *Manager) Current() (*Key, error) {
	s := m.snap.Load()
	if s == nil {
		return nil, ErrNotLoaded
	}
	now := m.cfg.Now()
	for i := len(s.keys) - 1; i >= 0; i-- {
		if !s.keys[i].Activates.After(now) {
			return s.keys[i], nil
		}
	}
	return nil, errors.New("no active signing key")
}

// Lookup finds a published key by kid. An unknown kid makes it reread the
// storage (at most once per second), so a key another instance just made
// is found at once.
func (m *Manager) Lookup(ctx context.Context, kid string) (*Key, bool) {
	if s := m.snap.Load(); s != nil {
		if k, ok := s.byKID[kid]; ok {
			return k, true
		}
	}
	if m.cfg.Static != nil {
		return nil, false
	}
	m.reloadMu.Lock()
	now := m.cfg.Now()
	due := now.Sub(m.lastReload) >= reloadMinInterval || m.lastReload.After(now)
	if due {
		// Claim the reread now: concurrent lookups that also found the kid
		// unknown must not each reread the storage once this one is done.
		m.lastReload = now
	}
	m.reloadMu.Unlock()
	if !due {
		return nil, false
	}
	if err := m.reload(ctx); err != nil {
		m.cfg.Logger.Warn("rereading signing keys for an unknown kid", zap.Error(err))
		return nil, false
	}
	s := m.snap.Load()
	if s == nil {
		return nil, false // the storage holds no keys yet
	}
	k, ok := s.byKID[kid]
	return k, ok
}

// JWKS returns the public key set as served at the jwks endpoint.
func (m *Manager) JWKS() []byte {
	if s := m.snap.Load(); s != nil {
		return s.jwks
	}
	return []byte(`{"keys":[]}`)
}

// reload reads the stored key set and publishes it.
func (m *Manager) reload(ctx context.Context) error {
	m.reloadMu.Lock()
	defer m.reloadMu.Unlock()
	m.lastReload = m.cfg.Now()
	set, err := m.read(ctx)
	if err != nil {
		return err
	}
	if len(set.Keys) == 0 {
		return nil
	}
	ks, err := decode(set)
	if err != nil {
		return err
	}
	return m.publish(ks)
}

func (m *Manager) read(ctx context.Context) (storedSet, error) {
	var set storedSet
	data, err := m.cfg.Storage.Load(ctx, m.storageKey())
	if errors.Is(err, fs.ErrNotExist) {
		return set, nil
	}
	if err != nil {
		return set, fmt.Errorf("loading signing keys from storage: %w", err)
	}
	if err := json.Unmarshal(data, &set); err != nil {
		return set, fmt.Errorf("signing keys in storage at %q are corrupt: %v", m.storageKey(), err)
	}
	return set, nil
}

func decode(set storedSet) ([]*Key, error) {
	ks := make([]*Key, 0, len(set.Keys))
	for _, sk := range set.Keys {
		signer, err := parsePrivate(sk.PKCS8)
		if err != nil {
			return nil, fmt.Errorf("signing key %q in storage is corrupt: %v", sk.KID, err)
		}
		if err := checkAlg(signer, sk.Alg); err != nil {
			return nil, fmt.Errorf("signing key %q in storage: %v", sk.KID, err)
		}
		k, err := newKey(sk.KID, sk.Alg, signer, sk.Created, sk.Activates)
		if err != nil {
			return nil, err
		}
		ks = append(ks, k)
	}
	return ks, nil
}

// rotateIfDue makes a new key when the newest one is old enough, under the
// storage lock so that several instances make one key, not one each.
func (m *Manager) rotateIfDue(ctx context.Context) error {
	if !m.due(m.snap.Load()) {
		return nil
	}
	if err := m.cfg.Storage.Lock(ctx, m.lockName()); err != nil {
		return fmt.Errorf("locking signing keys: %w", err)
	}
	defer func() {
		if err := m.cfg.Storage.Unlock(context.WithoutCancel(ctx), m.lockName()); err != nil {
			m.cfg.Logger.Error("unlocking signing keys", zap.Error(err))
		}
	}()
	// Another instance may have rotated while we waited for the lock.
	if err := m.reload(ctx); err != nil {
		return err
	}
	if !m.due(m.snap.Load()) {
		return nil
	}
	if s := m.snap.Load(); s == nil || len(s.keys) == 0 {
		// The first key of an empty storage. If it is a Redis that came
		// back empty, the running instances write their keys back within
		// moments and never over a key made now, which would replace
		// theirs: every token they signed would be refused.
		if st, ok := m.cfg.Storage.(state.Settler); ok {
			settling, err := st.Settling(ctx)
			if err != nil {
				return fmt.Errorf("checking the state store before making the first signing key: %w", err)
			}
			if settling {
				return errSettling
			}
		}
	}
	now := m.cfg.Now()
	var old []*Key
	if s := m.snap.Load(); s != nil {
		for _, k := range s.keys {
			// A key still waiting to sign has signed nothing; it is only
			// found here when its algorithm is no longer the configured one,
			// and it must not take over from the key made now.
			if !k.Activates.After(now) {
				old = append(old, k)
			}
		}
	}
	activates := now.Add(m.lead())
	if cur, err := m.Current(); err != nil || cur.Alg.String() != m.cfg.Alg {
		// Nothing signs yet, or the operator chose another algorithm:
		// the new key must sign at once.
		activates = now
	}
	signer, err := generate(m.cfg.Alg)
	if err != nil {
		return fmt.Errorf("generating %s signing key: %v", m.cfg.Alg, err)
	}
	kid, err := thumbprintKID(signer)
	if err != nil {
		return err
	}
	nk, err := newKey(kid, m.cfg.Alg, signer, now, activates)
	if err != nil {
		return err
	}
	keep := m.prune(append(append([]*Key(nil), old...), nk), now)
	if err := m.write(ctx, keep); err != nil {
		return err
	}
	m.cfg.Logger.Info("signing key created",
		zap.String("kid", kid), zap.String("alg", m.cfg.Alg),
		zap.Time("activates", activates), zap.Int("published_keys", len(keep)))
	return m.publish(keep)
}

// due reports whether a new key should be made.
func (m *Manager) due(s *snapshot) bool {
	if s == nil || len(s.keys) == 0 {
		return true
	}
	newest := s.keys[len(s.keys)-1]
	now := m.cfg.Now()
	if newest.Alg.String() != m.cfg.Alg {
		return true // even over a waiting successor: a changed alg applies at once
	}
	if newest.Activates.After(now) {
		return false // a successor is already published and waiting
	}
	return now.Sub(newest.Activates) >= m.cfg.Rotation-m.lead()
}

// prune drops keys that no token still valid can have been signed with.
// keys must be ascending by Activates.
func (m *Manager) prune(keys []*Key, now time.Time) []*Key {
	sort.SliceStable(keys, func(i, j int) bool { return keys[i].Activates.Before(keys[j].Activates) })
	var keep []*Key
	for i, k := range keys {
		if i+1 < len(keys) {
			replacedAt := keys[i+1].Activates
			if !replacedAt.After(now) && now.Sub(replacedAt) > m.cfg.MaxTokenTTL+retireMargin {
				continue
			}
		}
		keep = append(keep, k)
	}
	return keep
}

func (m *Manager) write(ctx context.Context, keys []*Key) error {
	var set storedSet
	for _, k := range keys {
		der, err := marshalPrivate(k.Signer)
		if err != nil {
			return fmt.Errorf("encoding signing key %q: %v", k.KID, err)
		}
		set.Keys = append(set.Keys, storedKey{KID: k.KID, Alg: k.Alg.String(), Created: k.Created, Activates: k.Activates, PKCS8: der})
	}
	data, err := json.Marshal(set)
	if err != nil {
		return err
	}
	if err := m.cfg.Storage.Store(ctx, m.storageKey(), data); err != nil {
		return fmt.Errorf("storing signing keys: %w", err)
	}
	return nil
}

func newKey(kid, alg string, signer crypto.Signer, created, activates time.Time) (*Key, error) {
	a, ok := jwa.LookupSignatureAlgorithm(alg)
	if !ok {
		return nil, fmt.Errorf("signing key %q: unknown algorithm %q", kid, alg)
	}
	pub, err := jwk.Import(signer.Public())
	if err != nil {
		return nil, fmt.Errorf("signing key %q: %v", kid, err)
	}
	for name, v := range map[string]any{jwk.KeyIDKey: kid, jwk.AlgorithmKey: a, jwk.KeyUsageKey: "sig"} {
		if err := pub.Set(name, v); err != nil {
			return nil, fmt.Errorf("signing key %q: setting %s: %v", kid, name, err)
		}
	}
	return &Key{KID: kid, Alg: a, Signer: signer, Public: pub, Created: created, Activates: activates}, nil
}

func (m *Manager) publish(keys []*Key) error {
	sort.SliceStable(keys, func(i, j int) bool { return keys[i].Activates.Before(keys[j].Activates) })
	s := &snapshot{keys: keys, byKID: make(map[string]*Key, len(keys))}
	set := jwk.NewSet()
	for _, k := range keys {
		s.byKID[k.KID] = k
		if err := set.AddKey(k.Public); err != nil {
			return fmt.Errorf("publishing key %q: %v", k.KID, err)
		}
	}
	data, err := json.Marshal(set)
	if err != nil {
		return fmt.Errorf("encoding JWKS: %v", err)
	}
	s.jwks = data
	m.snap.Store(s)
	return nil
}

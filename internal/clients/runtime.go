package clients

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/tokengate/tokengate/internal/metrics"
	"github.com/tokengate/tokengate/internal/state"
)

// Clients made at run time (through the admin API) live in the issuer's
// state, next to a cut-off record for any client. The registry is the one
// lookup of both kinds: a configured client wins over a runtime one of the
// same id (the API refuses to make one, but a reload may add it).
//
// Their secrets are made by the server, 256 random bits, and stored as
// SHA-256 hashes. A password hash (bcrypt, argon2id) is for secrets people
// choose, which can be guessed from a list; nobody can enumerate 2^256
// secrets, so a fast hash protects these as well and keeps every check
// below a microsecond: no hash slots, no secret cache, and a rotation or a
// disable takes effect on the next request.

// DefaultGrace is how long a secret replaced by a rotation stays valid
// unless the caller chooses otherwise.
const DefaultGrace = 24 * time.Hour

// Errors of the runtime operations, besides *OptionError for a client's
// configuration.
var (
	ErrNotFound = errors.New("no such client")
	ErrExists   = errors.New("a client with this id exists")
	// ErrConfigured: the client comes from the config, which the API does
	// not change; it may only be disabled, enabled and have its tokens
	// revoked.
	ErrConfigured = errors.New("the client is defined in the config; change it there (the API may only disable, enable and revoke its tokens)")
)

// runtimeClient is a client made at run time, as the registry checks it.
type runtimeClient struct {
	cfg     *Config
	secrets []runtimeSecret
}

type runtimeSecret struct {
	sum     [sha256.Size]byte
	expires time.Time // zero: no end
}

func (r *Registry) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

func (r *Registry) runtimeClient(id string) *runtimeClient {
	r.rmu.RLock()
	defer r.rmu.RUnlock()
	return r.runtime[id]
}

// authenticateRuntime checks a runtime client's secret against each of its
// live secrets, in constant time each.
func (r *Registry) authenticateRuntime(rc *runtimeClient, sum [sha256.Size]byte, admit func() error) (*Config, error) {
	if err := admit(); err != nil {
		return nil, err
	}
	now := r.now()
	ok := 0
	for _, s := range rc.secrets {
		live := s.expires.IsZero() || now.Before(s.expires)
		if subtle.ConstantTimeCompare(s.sum[:], sum[:]) == 1 && live {
			ok = 1
		}
	}
	if ok == 0 || r.disabled(rc.cfg.ClientID) {
		return nil, ErrInvalidClient
	}
	return rc.cfg, nil
}

// disabled reports whether a client is disabled (no I/O).
func (r *Registry) disabled(id string) bool {
	if r.State == nil {
		return false
	}
	rec, ok := r.State.Get(id)
	return ok && rec.Disabled
}

// CutOff reports whether a token of the client issued at iat (Unix
// seconds) is refused: the client is disabled, or its tokens were revoked
// after iat. It reads memory only; gates call it on every request.
func (r *Registry) CutOff(clientID string, iat int64) bool {
	if r.State == nil {
		return false
	}
	rec, ok := r.State.Get(clientID)
	return ok && rec.Refuses(iat)
}

// HasCutOff reports whether the client has a cut-off at all, so that
// callers skip the work of finding a token's issue time when not.
func (r *Registry) HasCutOff(clientID string) bool {
	if r.State == nil {
		return false
	}
	rec, ok := r.State.Get(clientID)
	return ok && (rec.Disabled || rec.NotBefore > 0)
}

// Sync reads the changes made through other instances since the last
// Sync. The issuer calls it every revocation_sync.
func (r *Registry) Sync(ctx context.Context) error {
	if r.State == nil {
		return nil
	}
	changed, err := r.State.Sync(ctx)
	if err != nil {
		return fmt.Errorf("reading client records: %w", err)
	}
	for _, id := range changed {
		r.apply(id)
	}
	return nil
}

// apply rebuilds the runtime client of id from its record.
func (r *Registry) apply(id string) {
	// The record is read under the lock, so that two applies of one id
	// (a Sync and an API change) cannot store an older record last.
	r.rmu.Lock()
	defer r.rmu.Unlock()
	rec, ok := r.State.Get(id)
	var rc *runtimeClient
	if ok && len(rec.Config) > 0 {
		var err error
		if rc, err = runtimeFromRecord(rec); err != nil {
			// Unusable as a client; its cut-off still holds.
			rc = nil
		}
	}
	if r.runtime == nil {
		r.runtime = map[string]*runtimeClient{}
	}
	if rc == nil {
		delete(r.runtime, id)
	} else {
		r.runtime[id] = rc
	}
}

func runtimeFromRecord(rec state.Client) (*runtimeClient, error) {
	cfg := new(Config)
	if err := json.Unmarshal(rec.Config, cfg); err != nil {
		return nil, err
	}
	cfg.ClientID = rec.ID
	if err := cfg.ValidateRuntime(); err != nil {
		return nil, err
	}
	var err error
	if cfg.claimsJSON, err = encodeClaims(cfg.Claims); err != nil {
		return nil, err
	}
	rc := &runtimeClient{cfg: cfg}
	for _, s := range rec.Secrets {
		var sum [sha256.Size]byte
		if n, err := hex.Decode(sum[:], []byte(s.SHA256)); err != nil || n != len(sum) {
			continue // matches nothing
		}
		rc.secrets = append(rc.secrets, runtimeSecret{sum: sum, expires: s.Expires})
	}
	return rc, nil
}

// View is a client as the admin API shows it: its configuration (never a
// secret), where it comes from, and its state.
type View struct {
	Config
	// Source is "config" or "api".
	Source    string    `json:"source"`
	Disabled  bool      `json:"disabled,omitempty"`
	NotBefore int64     `json:"tokens_not_before,omitempty"`
	Created   time.Time `json:"created,omitzero"`
	Updated   time.Time `json:"updated,omitzero"`
	// SecretsExpire lists when the secrets replaced by rotations stop
	// being accepted.
	SecretsExpire []time.Time `json:"previous_secrets_expire,omitempty"`
}

// MarshalJSON keeps secrets out of every answer.
func (v View) MarshalJSON() ([]byte, error) {
	type plain View
	p := plain(v)
	p.Secret, p.SecretHash = "", ""
	return json.Marshal(p)
}

// List returns every client, configured and made at run time, by id.
func (r *Registry) List() []View {
	ids := make([]string, 0, len(r.byID))
	for id := range r.byID {
		ids = append(ids, id)
	}
	r.rmu.RLock()
	for id := range r.runtime {
		if _, dup := r.byID[id]; !dup {
			ids = append(ids, id)
		}
	}
	r.rmu.RUnlock()
	slices.Sort(ids)
	out := make([]View, 0, len(ids))
	for _, id := range ids {
		if v, ok := r.View(id); ok {
			out = append(out, v)
		}
	}
	return out
}

// View returns one client as the admin API shows it.
func (r *Registry) View(id string) (View, bool) {
	var v View
	if c, ok := r.byID[id]; ok {
		v = View{Config: *c.cfg, Source: "config"}
	} else if rc := r.runtimeClient(id); rc != nil {
		v = View{Config: *rc.cfg, Source: "api"}
	} else {
		return View{}, false
	}
	v.claimsJSON = nil
	if r.State != nil {
		if rec, ok := r.State.Get(id); ok {
			v.Disabled, v.NotBefore, v.Created, v.Updated = rec.Disabled, rec.NotBefore, rec.Created, rec.Updated
			now := r.now()
			for _, s := range rec.Secrets {
				if !s.Expires.IsZero() && now.Before(s.Expires) {
					v.SecretsExpire = append(v.SecretsExpire, s.Expires)
				}
			}
		}
	}
	return v, true
}

// newSecret makes a client secret: 256 random bits, base64url.
func newSecret() (string, state.Secret) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand never fails on supported platforms
	}
	secret := base64.RawURLEncoding.EncodeToString(b)
	sum := sha256.Sum256([]byte(secret))
	return secret, state.Secret{SHA256: hex.EncodeToString(sum[:])}
}

// checkRuntime applies the rules of a runtime client's configuration.
func (r *Registry) checkRuntime(cfg *Config) error {
	if err := cfg.ValidateRuntime(); err != nil {
		return err
	}
	if o := cfg.keyOption(); o != "" {
		// Assertions and certificates are checked against the keys the
		// config registers at start: a runtime client's would be taken
		// and never used. (Records stored before this check still load.)
		return &OptionError{ClientID: cfg.ClientID, Option: o,
			Err: errors.New("a client made at run time authenticates with its secret only; register keys and certificates in the config")}
	}
	if r.MaxTokenTTL > 0 && time.Duration(cfg.TokenTTL) > r.MaxTokenTTL {
		return &OptionError{ClientID: cfg.ClientID, Option: "token_ttl",
			Err: fmt.Errorf("at most %s, the longest token_ttl of the config", r.MaxTokenTTL.String())}
	}
	return nil
}

// runtimeConfig is what a record keeps of a runtime client's config.
func runtimeConfig(cfg *Config) (json.RawMessage, error) {
	c := *cfg
	c.Secret, c.SecretHash, c.claimsJSON = "", "", nil
	return json.Marshal(&c)
}

// update runs a change of one client's record through the state and
// applies it here at once.
func (r *Registry) update(ctx context.Context, op, id string, decide func(rec state.Client, found bool) (state.Client, error)) error {
	if r.State == nil {
		return errors.New("the issuer keeps no client state")
	}
	err := r.State.Update(ctx, id, func(rec state.Client, found bool) (state.Client, bool, error) {
		next, err := decide(rec, found)
		if err != nil {
			return state.Client{}, false, err
		}
		now := r.now()
		if !found {
			next.Created = now
		}
		next.Updated = now
		return next, true, nil
	})
	if err != nil {
		return err
	}
	r.apply(id)
	metrics.ClientChanges.WithLabelValues(op).Inc()
	return nil
}

// Create makes a client at run time and returns its secret, which is
// shown this once. A configured client or a live runtime client of the
// same id is ErrConfigured or ErrExists. A deleted client's id may be used
// again; the tokens of the deleted one stay refused.
func (r *Registry) Create(ctx context.Context, cfg *Config) (string, error) {
	if err := r.checkRuntime(cfg); err != nil {
		return "", err
	}
	if _, ok := r.byID[cfg.ClientID]; ok {
		return "", ErrConfigured
	}
	raw, err := runtimeConfig(cfg)
	if err != nil {
		return "", err
	}
	secret, hash := newSecret()
	err = r.update(ctx, "create", cfg.ClientID, func(rec state.Client, found bool) (state.Client, error) {
		if found && len(rec.Config) > 0 {
			return rec, ErrExists
		}
		// A previous record (a deleted client's) keeps its cut-off.
		rec.Config, rec.Secrets, rec.Disabled = raw, []state.Secret{hash}, false
		return rec, nil
	})
	return secret, err
}

// Replace changes a runtime client's configuration; its secrets and state
// stay.
func (r *Registry) Replace(ctx context.Context, cfg *Config) error {
	if _, ok := r.byID[cfg.ClientID]; ok {
		return ErrConfigured
	}
	if err := r.checkRuntime(cfg); err != nil {
		return err
	}
	raw, err := runtimeConfig(cfg)
	if err != nil {
		return err
	}
	return r.update(ctx, "update", cfg.ClientID, func(rec state.Client, found bool) (state.Client, error) {
		if !found || len(rec.Config) == 0 {
			return rec, ErrNotFound
		}
		rec.Config = raw
		return rec, nil
	})
}

// Delete removes a runtime client. Its record stays as a cut-off, so that
// its live tokens are refused everywhere.
func (r *Registry) Delete(ctx context.Context, id string) error {
	if _, ok := r.byID[id]; ok {
		return ErrConfigured
	}
	return r.update(ctx, "delete", id, func(rec state.Client, found bool) (state.Client, error) {
		if !found || len(rec.Config) == 0 {
			return rec, ErrNotFound
		}
		return state.Client{NotBefore: r.cutOffNow(), Created: rec.Created}, nil
	})
}

// RotateSecret gives a runtime client a new secret, returned this once;
// the secrets it had stay valid for grace (0: not at all), so that its
// deployments can move without downtime. Secrets already past their
// grace are dropped.
func (r *Registry) RotateSecret(ctx context.Context, id string, grace time.Duration) (string, error) {
	if _, ok := r.byID[id]; ok {
		return "", ErrConfigured
	}
	if grace < 0 {
		return "", &OptionError{ClientID: id, Option: "grace", Err: errors.New("must not be negative")}
	}
	secret, hash := newSecret()
	err := r.update(ctx, "rotate_secret", id, func(rec state.Client, found bool) (state.Client, error) {
		if !found || len(rec.Config) == 0 {
			return rec, ErrNotFound
		}
		now := r.now()
		until := now.Add(grace)
		kept := []state.Secret{hash}
		for _, s := range rec.Secrets {
			switch {
			case !s.Expires.IsZero() && !now.Before(s.Expires):
				continue // its grace is over
			case s.Expires.IsZero() || s.Expires.After(until):
				s.Expires = until
			}
			if grace > 0 {
				kept = append(kept, s)
			}
		}
		rec.Secrets = kept
		return rec, nil
	})
	return secret, err
}

// cutOffNow is the NotBefore that refuses every token issued until now:
// iat has a resolution of seconds, so a token issued in this second is
// refused too.
func (r *Registry) cutOffNow() int64 { return r.now().Unix() + 1 }

// Disable refuses a client at the token endpoint and every token it
// holds, on every instance within revocation_sync. Enabling it again does
// not bring those tokens back.
func (r *Registry) Disable(ctx context.Context, id string) error {
	return r.cutOff(ctx, "disable", id, func(rec *state.Client) {
		rec.Disabled = true
		rec.NotBefore = r.cutOffNow()
	})
}

// Enable lets a disabled client get tokens again.
func (r *Registry) Enable(ctx context.Context, id string) error {
	return r.cutOff(ctx, "enable", id, func(rec *state.Client) { rec.Disabled = false })
}

// RevokeTokens refuses every token the client holds now, access and
// refresh tokens, on every instance within revocation_sync; it may get new
// ones at once.
func (r *Registry) RevokeTokens(ctx context.Context, id string) error {
	return r.cutOff(ctx, "revoke_tokens", id, func(rec *state.Client) { rec.NotBefore = r.cutOffNow() })
}

func (r *Registry) cutOff(ctx context.Context, op, id string, change func(*state.Client)) error {
	_, configured := r.byID[id]
	return r.update(ctx, op, id, func(rec state.Client, found bool) (state.Client, error) {
		if !configured && (!found || len(rec.Config) == 0) {
			return rec, ErrNotFound
		}
		change(&rec)
		return rec, nil
	})
}

// DecodeConfig reads a client's JSON as the admin API takes it: the shape
// of a configured client, unknown fields refused, one value only.
func DecodeConfig(data []byte) (*Config, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	cfg := new(Config)
	if err := dec.Decode(cfg); err != nil {
		return nil, fmt.Errorf("decoding client: %s", strings.TrimPrefix(err.Error(), "json: "))
	}
	if dec.More() {
		return nil, errors.New("decoding client: more than one JSON value")
	}
	return cfg, nil
}

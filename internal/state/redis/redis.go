// Package redis keeps an issuer's state in Redis (the tokengate.state.redis
// module): standalone, Sentinel or Redis Cluster, through go-redis's
// universal client. Several Caddy instances on one Redis act as one issuer.
//
// # Layout
//
// Every key of an issuer carries the same hash tag, the issuer's storage id,
// so that on a Redis Cluster all of them sit in one slot and every script
// touches one slot:
//
//	<key_prefix>{<issuer id>}:files      hash: signing keys, refresh MAC keys (storage.go),
//	                                     runtime clients' records and change log (clients.go)
//	<key_prefix>{<issuer id>}:lock:<n>   SET NX PX lock for key rotation
//	<key_prefix>{<issuer id>}:rev:<h>    a revocation, expiring with its token (revocations.go)
//	<key_prefix>{<issuer id>}:fam:<id>   a refresh token family, expiring with it (families.go)
//	<key_prefix>{<issuer id>}:seen:<h>   a client assertion's jti, expiring with it (seen.go)
//	<key_prefix>{<issuer id>}:epoch      set once per life of the data
//	<key_prefix>{<issuer id>}:settling   set with it, expiring after settleGrace (epoch.go)
//	<key_prefix>{<issuer id>}:revocations  pub/sub channel of new revocations
//	<key_prefix>{<issuer id>}:clients      pub/sub channel of client changes (clients.go)
//
// # When Redis goes away
//
// Every operation that needs Redis fails with state.ErrUnavailable (the
// endpoints answer 503 temporarily_unavailable), never a success for
// something not stored. The gate keeps reading the revocations and keys in
// memory. When the subscription comes back, the instance reads every live
// revocation again. When the epoch key is gone, Redis lost its data: the
// instance writes back the signing keys and revocations it holds (without
// overwriting what another instance wrote back first) before it sets a new
// epoch, so nobody mints new keys over the ones in use. For settleGrace
// after a new epoch no first signing key is made (state.Settler), and an
// instance that finds the epoch set by another (one that had nothing to
// write back) still writes back (epoch.go). Refresh token families are not
// held in memory and are lost with Redis' data, so the refresh token MAC
// keys are not written back: every refresh token made before the loss is
// refused (internal/refresh, keyStored), and the instances load or make
// new keys. Run Redis with persistence (appendonly yes).
package redis

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"path"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
	goredis "github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/tokengate/tokengate/internal/refresh"
	"github.com/tokengate/tokengate/internal/revocation"
	"github.com/tokengate/tokengate/internal/state"
)

func init() {
	caddy.RegisterModule(Redis{})
}

// Defaults of the Redis options.
const (
	DefaultAddress         = "127.0.0.1:6379"
	DefaultSentinelAddress = "127.0.0.1:26379"
	DefaultKeyPrefix       = "tokengate:"
	DefaultTimeout         = time.Second
)

// Redis keeps the issuer's state in Redis (`state redis { ... }` in
// oauth_issuer). With one address it is a standalone server; with several,
// or with cluster, a Redis Cluster; with master_name, the Sentinels at the
// addresses. When Redis cannot be reached the token, refresh, revocation
// and introspection endpoints answer 503 temporarily_unavailable with
// Retry-After; bearer_auth keeps validating with what it holds.
type Redis struct {
	// Addresses are host:port of the server, the cluster's nodes (some
	// suffice) or the Sentinels. Default: 127.0.0.1:6379, or
	// 127.0.0.1:26379 with master_name.
	Addresses []string `json:"addresses,omitempty"`
	// Cluster forces Redis Cluster with a single address. Default: off
	// (on with several addresses).
	Cluster bool `json:"cluster,omitempty"`
	// MasterName is the Sentinel master's name; set, Addresses are
	// Sentinels. Default: none.
	MasterName string `json:"master_name,omitempty"`
	// Username and Password of a Redis ACL user (or the password of
	// requirepass); placeholders such as {env.REDIS_PASSWORD} or
	// {file./run/secrets/redis} are replaced at provision. Default: none.
	Username string `json:"username,omitempty"`
	Password string `json:"password,omitempty"`
	// SentinelUsername and SentinelPassword are what the Sentinels
	// require (their requirepass, or an ACL user of theirs), apart from the
	// master's Username and Password; placeholders are replaced at
	// provision as for Password. Only with master_name. Default: none.
	SentinelUsername string `json:"sentinel_username,omitempty"`
	SentinelPassword string `json:"sentinel_password,omitempty"`
	// TLS turns TLS on; TLSCA is a PEM file of the CAs to trust instead of
	// the system's. With Sentinel, the Sentinels are reached over TLS too.
	// Default: off.
	TLS   bool   `json:"tls,omitempty"`
	TLSCA string `json:"tls_ca,omitempty"`
	// TLSCert and TLSKey are PEM files of the client certificate and its
	// key, for a server that asks for one (tls-auth-clients); they turn
	// TLS on. Default: none.
	TLSCert string `json:"tls_cert,omitempty"`
	TLSKey  string `json:"tls_key,omitempty"`
	// KeyPrefix starts every key. Default: tokengate:.
	KeyPrefix string `json:"key_prefix,omitempty"`
	// DialTimeout and Timeout (of each read and write) bound how long a
	// request waits for Redis before it is answered 503. Default: 1s each.
	DialTimeout caddy.Duration `json:"dial_timeout,omitempty"`
	Timeout     caddy.Duration `json:"timeout,omitempty"`

	client goredis.UniversalClient
	logger *zap.Logger
}

// CaddyModule returns the Caddy module information.
func (Redis) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "tokengate.state.redis",
		New: func() caddy.Module { return new(Redis) },
	}
}

// Provision resolves the placeholders and makes the client; it does not
// connect, so Caddy starts while Redis is away.
func (r *Redis) Provision(ctx caddy.Context) error {
	r.logger = ctx.Logger()
	c, err := r.Options(caddy.NewReplacer())
	if err != nil {
		return err
	}
	r.client = goredis.NewUniversalClient(c)
	return nil
}

// Options are the go-redis options the config stands for, with
// placeholders replaced and defaults filled.
func (r *Redis) Options(repl *caddy.Replacer) (*goredis.UniversalOptions, error) {
	o := &goredis.UniversalOptions{
		Addrs:         r.Addresses,
		IsClusterMode: r.Cluster,
		MasterName:    r.MasterName,
		DialTimeout:   time.Duration(r.DialTimeout),
		ReadTimeout:   time.Duration(r.Timeout),
		WriteTimeout:  time.Duration(r.Timeout),
		// One retry: a request waits for Redis at most about two
		// timeouts before it is answered 503.
		MaxRetries: 1,
	}
	if len(o.Addrs) == 0 {
		o.Addrs = []string{DefaultAddress}
		if r.MasterName != "" {
			o.Addrs = []string{DefaultSentinelAddress}
		}
	}
	if o.DialTimeout == 0 {
		o.DialTimeout = DefaultTimeout
	}
	if o.ReadTimeout == 0 {
		o.ReadTimeout, o.WriteTimeout = DefaultTimeout, DefaultTimeout
	}
	var err error
	for _, f := range []struct {
		name string
		in   string
		out  *string
	}{
		{"username", r.Username, &o.Username},
		{"password", r.Password, &o.Password},
		{"sentinel_username", r.SentinelUsername, &o.SentinelUsername},
		{"sentinel_password", r.SentinelPassword, &o.SentinelPassword},
	} {
		if f.in == "" {
			continue
		}
		// An unset variable must not become an empty password.
		if *f.out, err = repl.ReplaceOrErr(f.in, true, true); err != nil {
			return nil, fmt.Errorf("redis %s: %v", f.name, err)
		}
	}
	if r.TLS || r.TLSCA != "" || r.TLSCert != "" {
		o.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12}
		if r.TLSCA != "" {
			pem, err := os.ReadFile(r.TLSCA)
			if err != nil {
				return nil, fmt.Errorf("redis tls_ca: %v", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("redis tls_ca: no certificate in %s", r.TLSCA)
			}
			o.TLSConfig.RootCAs = pool
		}
		if r.TLSCert != "" {
			cert, err := tls.LoadX509KeyPair(r.TLSCert, r.TLSKey)
			if err != nil {
				return nil, fmt.Errorf("redis tls client certificate: %v", err)
			}
			o.TLSConfig.Certificates = []tls.Certificate{cert}
		}
	}
	return o, nil
}

// Validate checks the options that need no placeholder replaced.
func (r *Redis) Validate() error {
	if r.DialTimeout < 0 || r.Timeout < 0 {
		return errors.New("redis timeouts must be positive")
	}
	if r.Cluster && r.MasterName != "" {
		return errors.New("redis: cluster and master_name (Sentinel) exclude each other")
	}
	if r.MasterName == "" && (r.SentinelUsername != "" || r.SentinelPassword != "") {
		return errors.New("redis: sentinel_username and sentinel_password need master_name (Sentinel)")
	}
	if (r.TLSCert == "") != (r.TLSKey == "") {
		return errors.New("redis: a TLS client certificate needs both its certificate and its key file")
	}
	return nil
}

// Cleanup closes the client.
func (r *Redis) Cleanup() error {
	if r.client != nil {
		return r.client.Close()
	}
	return nil
}

// Open returns one issuer's state on this Redis and starts following its
// revocations and client changes. Nothing is read yet: the first Sync, or the subscription
// when it comes up, reads them.
func (r *Redis) Open(_ context.Context, prefix string) (*state.Handles, error) {
	return r.open(prefix, time.Now), nil
}

func (r *Redis) open(prefix string, now func() time.Time) *state.Handles {
	kp := r.KeyPrefix
	if kp == "" {
		kp = DefaultKeyPrefix
	}
	b := &backend{client: r.client, base: kp + "{" + path.Base(prefix) + "}:", logger: r.logger, now: now}
	b.files = &storage{b: b, files: b.key("files"), locks: map[string]string{}, held: map[string][]byte{}, bound: refresh.StoreBound(prefix)}
	b.revs = &revocations{b: b, mem: revocation.NewMemory()}
	b.revs.resync.Store(true)
	cl := newClients(b, prefix)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); b.revs.subscribe(ctx) }()
	go func() { defer wg.Done(); cl.subscribe(ctx) }()
	return &state.Handles{
		Storage:     b.files,
		Revocations: b.revs,
		Families:    &families{b: b},
		Clients:     cl,
		SeenOnce:    &seenOnce{b: b},
		Close:       func() { cancel(); wg.Wait() },
	}
}

// backend is one issuer's state on Redis.
type backend struct {
	client goredis.UniversalClient
	base   string // key prefix and hash tag
	logger *zap.Logger
	now    func() time.Time

	files *storage
	revs  *revocations

	emu   sync.Mutex
	epoch string
}

func (b *backend) key(s string) string { return b.base + s }
func (b *backend) channel() string     { return b.key("revocations") }

var (
	_ caddy.Provisioner  = (*Redis)(nil)
	_ caddy.Validator    = (*Redis)(nil)
	_ caddy.CleanerUpper = (*Redis)(nil)
	_ state.Backend      = (*Redis)(nil)
)

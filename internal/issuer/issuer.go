// Package issuer is the core of an OAuth 2.0 authorization server: it
// holds an issuer's clients, keys, refresh tokens and revocations, issues
// RFC 9068 JWT access tokens (signed by internal/accesstoken) and refresh
// tokens, and tells the gates of the same process how its tokens are
// verified (Local, VerifierConfig).
package issuer

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/certmagic"
	"go.uber.org/zap"

	"github.com/tokengate/tokengate/internal/accesstoken"
	"github.com/tokengate/tokengate/internal/clientauth"
	"github.com/tokengate/tokengate/internal/clients"
	"github.com/tokengate/tokengate/internal/dpop"
	"github.com/tokengate/tokengate/internal/keys"
	"github.com/tokengate/tokengate/internal/localissuer"
	"github.com/tokengate/tokengate/internal/refresh"
	"github.com/tokengate/tokengate/internal/revocation"
	"github.com/tokengate/tokengate/internal/state"
	"github.com/tokengate/tokengate/internal/state/caddystorage"
	"github.com/tokengate/tokengate/internal/throttle"
)

// AppName is the Caddy app (module ID) holding the issuers.
const AppName = localissuer.AppName

// DefaultName is the name of an issuer configured without one.
const DefaultName = localissuer.DefaultName

// Provider is implemented by the tokengate app; oauth_token uses it to find
// the issuer it serves without importing the app's package (bearer_auth
// needs less: localissuer.Issuers).
type Provider interface {
	Issuer(name string) (*Issuer, error)
}

// Issuer is a provisioned OAuth authorization server.
type Issuer struct {
	Name    string
	Config  *Config // resolved: placeholders replaced, defaults filled
	Keys    *keys.Manager
	Clients *clients.Registry
	Refresh *refresh.Store
	// Assertions checks private_key_jwt client assertions.
	Assertions *clientauth.Verifier
	// Revocations lists revoked access tokens (by jti).
	Revocations state.Revocations
	// ClientFailures and AddressFailures count failed client
	// authentications (see ThrottleConfig); nil when throttling is off.
	ClientFailures, AddressFailures *throttle.Limiter

	// Now is the issuer's clock; tests replace it.
	Now func() time.Time

	logger *zap.Logger
	seen   state.SeenOnce // client assertion jtis, cluster-wide
	close  func()         // releases the state backend's handles
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// StoragePrefix is where an issuer's state lives in Caddy's storage. It is
// derived from the issuer URL, so instances that share a storage and an
// issuer URL share keys and tokens, and distinct issuers never mix.
func StoragePrefix(issuerURL string) string {
	sum := sha256.Sum256([]byte(baseURL(issuerURL)))
	return "tokengate/issuers/" + hex.EncodeToString(sum[:8])
}

// New provisions an issuer: it resolves the config, builds the client
// registry and loads (or makes) the signing keys from storage.
func New(ctx context.Context, name string, cfg *Config, storage certmagic.Storage, logger *zap.Logger) (*Issuer, error) {
	rc, err := cfg.resolve(caddy.NewReplacer())
	if err != nil {
		return nil, err
	}
	reg, err := clients.NewRegistry(rc.Clients)
	if err != nil {
		return nil, err
	}
	iss := &Issuer{Name: name, Config: rc, Clients: reg, Now: time.Now, logger: logger}
	now := func() time.Time { return iss.Now() }
	if th := rc.Throttle; !th.Disabled {
		iss.ClientFailures = &throttle.Limiter{Max: th.PerClient, Window: time.Duration(th.Window), Now: now}
		iss.AddressFailures = &throttle.Limiter{Max: th.PerAddress, Window: time.Duration(th.Window), Now: now}
	}
	prefix := StoragePrefix(rc.Issuer)
	st := state.Handles{Storage: storage}
	if rc.Backend != nil {
		h, err := rc.Backend.Open(ctx, prefix)
		if err != nil {
			return nil, fmt.Errorf("state: %v", err)
		}
		st = *h
		storage = h.Storage
		iss.close = h.Close
	}
	if st.SeenOnce == nil {
		st.SeenOnce = caddystorage.NewSeenOnce(storage, prefix, now, logger)
	}
	iss.seen = st.SeenOnce
	// RFC 7523 §3: the aud of an assertion is the token endpoint's URL;
	// the issuer URL is accepted too (OpenID Connect's private_key_jwt).
	base := rc.BaseURL()
	if iss.Assertions, err = clientauth.NewVerifier(rc.Clients, []string{base + TokenPath, base, base + "/"}, st.SeenOnce, now); err != nil {
		if iss.close != nil {
			iss.close()
		}
		return nil, err
	}
	kc := keys.Config{
		Storage:     storage,
		Prefix:      prefix,
		Alg:         rc.SigningAlg,
		Rotation:    time.Duration(rc.KeyRotation),
		MaxTokenTTL: rc.maxTokenTTL(),
		Now:         now,
		Logger:      logger,
	}
	if rc.SigningKey != "" {
		if kc.Static, err = keys.LoadPEM(rc.SigningKey); err != nil {
			return nil, fmt.Errorf("signing_key: loading %q: %v", rc.SigningKey, err)
		}
	}
	if iss.Keys, err = keys.New(kc); err != nil {
		return nil, fmt.Errorf("signing_key: %v", err)
	}
	// A state backend that cannot be reached at start (Redis) must not
	// keep Caddy from starting: the keys are loaded when it is back, and
	// until then the endpoints that need them answer 503.
	if err := iss.Keys.Load(ctx); errors.Is(err, state.ErrUnavailable) {
		logger.Warn("signing keys not loaded: state unavailable; retrying every second", zap.Error(err))
	} else if err != nil {
		return nil, fmt.Errorf("loading signing keys: %v", err)
	}
	iss.Revocations = st.Revocations
	if iss.Revocations == nil {
		iss.Revocations = revocation.New(revocation.Config{Storage: storage, Prefix: prefix, Now: now, Logger: logger})
	}
	iss.Refresh, err = refresh.New(ctx, refresh.Config{
		Storage:       storage,
		Prefix:        prefix,
		Families:      st.Families,
		ReuseInterval: max(0, time.Duration(rc.RefreshReuseInterval)),
		RevokeAccess: func(ctx context.Context, ref refresh.AccessRef) error {
			return iss.Revocations.Revoke(ctx, ref.JTI, ref.Expires)
		},
		Now:    now,
		Logger: logger,
	})
	if err != nil {
		return nil, err
	}
	if err := iss.Revocations.Sync(ctx); errors.Is(err, state.ErrUnavailable) {
		logger.Warn("revocations not read: state unavailable; reading them when it is back", zap.Error(err))
	} else if err != nil {
		return nil, err
	}
	reg.State = st.Clients
	if reg.State == nil {
		reg.State = caddystorage.NewClients(storage, prefix, logger)
	}
	if p, ok := reg.State.(state.ClientsPusher); ok {
		// Changes pushed by other instances apply at once, not at the next
		// revocation_sync.
		p.OnChange(func(ctx context.Context) {
			if err := reg.Sync(ctx); err != nil {
				logger.Warn("applying pushed client changes", zap.Error(err))
			}
		})
	}
	reg.Now, reg.MaxTokenTTL = now, rc.maxTokenTTL()
	if err := reg.Sync(ctx); errors.Is(err, state.ErrUnavailable) {
		logger.Warn("client changes not read: state unavailable; reading them when it is back", zap.Error(err))
	} else if err != nil {
		return nil, err
	}
	// Last, so that no failure above leaves a fetcher held; Stop releases them.
	if err := iss.Assertions.FetchClientKeys(rc.Clients, logger); err != nil {
		return nil, err
	}
	return iss, nil
}

// sweepInterval is how often expired refresh token records are deleted and
// old-format revocation records are read and pruned.
const sweepInterval = time.Hour

// Start runs the background work: key reload and rotation, reading other
// instances' revocations, and the sweep of expired refresh tokens,
// revocations, remembered secret checks and throttle entries.
func (i *Issuer) Start() {
	ctx, cancel := context.WithCancel(context.Background())
	i.cancel = cancel
	i.every(ctx, i.Keys.CheckInterval(), func() { i.Keys.Check(ctx) })
	if _, err := i.Keys.Current(); errors.Is(err, keys.ErrNotLoaded) {
		// The state was unreachable at start: try every second until the
		// keys are loaded, rather than every CheckInterval.
		i.every(ctx, time.Second, func() {
			if _, err := i.Keys.Current(); errors.Is(err, keys.ErrNotLoaded) {
				i.Keys.Check(ctx)
			}
		})
	}
	i.every(ctx, time.Duration(i.Config.RevocationSync), func() {
		if err := i.Revocations.Sync(ctx); err != nil {
			i.logger.Error("reading revocations", zap.Error(err))
		}
		if err := i.Clients.Sync(ctx); err != nil {
			i.logger.Error("reading client changes", zap.Error(err))
		}
	})
	i.every(ctx, time.Minute, func() {
		i.Clients.DeleteExpired()
		// Throttle entries leave memory when their window ends, not only
		// when the map is full.
		i.ClientFailures.Sweep()
		i.AddressFailures.Sweep()
	})
	i.every(ctx, sweepInterval, func() {
		if n, err := i.Refresh.Sweep(ctx); err != nil {
			i.logger.Error("sweeping expired refresh tokens", zap.Error(err))
		} else if n > 0 {
			i.logger.Debug("swept expired refresh tokens", zap.Int("deleted", n))
		}
		i.sweep(ctx, "revocations", i.Revocations)
		i.sweep(ctx, "client assertion jtis", i.seen)
	})
}

// sweep runs the Sweep of a state handle that has one (those on Caddy's
// storage: what expired is deleted by whoever comes by).
func (i *Issuer) sweep(ctx context.Context, what string, h any) {
	sw, ok := h.(interface {
		Sweep(context.Context) (int, error)
	})
	if !ok {
		return
	}
	if n, err := sw.Sweep(ctx); err != nil {
		i.logger.Error("sweeping expired "+what, zap.Error(err))
	} else if n > 0 {
		i.logger.Debug("swept expired "+what, zap.Int("deleted", n))
	}
}

// every runs f every interval until ctx is done.
func (i *Issuer) every(ctx context.Context, interval time.Duration, f func()) {
	i.wg.Add(1)
	go func() {
		defer i.wg.Done()
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				f()
			}
		}
	}()
}

// IsRevoked reports whether the access token with this jti was revoked. It
// is a map lookup; verifiers call it on every request.
func (i *Issuer) IsRevoked(jti string) bool { return i.Revocations.IsRevoked(jti) }

// IsSessionRevoked reports whether the refresh token family sid, and so
// every access token naming it in its sid claim, was revoked. It does no
// I/O.
func (i *Issuer) IsSessionRevoked(sid string) bool {
	return i.Revocations.IsRevoked(state.SessionRevocation(sid))
}

// Local is the issuer as a gate of this instance sees it.
func (i *Issuer) Local() localissuer.Issuer {
	li := localissuer.Issuer{Name: i.Name, Verifier: i.VerifierConfig()}
	for _, c := range i.Config.Clients {
		li.Grants = append(li.Grants, localissuer.Grant{Scopes: c.Scopes, Audience: i.Audience(c)})
	}
	return li
}

// VerifierConfig is how the issuer's own access tokens are verified in
// this process: with its keys, its issuer URL, its default audience, typ
// at+jwt required, its revocations and its clients' cut-offs refused, its
// clock, and the default leeway.
func (i *Issuer) VerifierConfig() accesstoken.VerifierConfig {
	return accesstoken.VerifierConfig{
		Keys:           accesstoken.LocalKeys{Keys: i.Keys},
		Issuer:         i.Config.Issuer,
		Audience:       i.DefaultAudience(),
		Leeway:         accesstoken.DefaultLeeway,
		RequireTyp:     true,
		Revoked:        i.IsRevoked,
		SessionRevoked: i.IsSessionRevoked,
		CutOff:         i.Clients.CutOff,
		Now:            func() time.Time { return i.Now() },
	}
}

// Stop ends the background work and waits for it, and releases the state
// backend.
func (i *Issuer) Stop() {
	if i.cancel != nil {
		i.cancel()
		i.wg.Wait()
	}
	i.Assertions.Close()
	if i.close != nil {
		i.close()
		i.close = nil
	}
}

// TokenTTL is the access token lifetime of a client.
func (i *Issuer) TokenTTL(c *clients.Config) time.Duration {
	if c.TokenTTL > 0 {
		return time.Duration(c.TokenTTL)
	}
	return time.Duration(i.Config.TokenTTL)
}

// DefaultAudience is the `aud` of tokens for a client without `audience`.
func (i *Issuer) DefaultAudience() []string { return []string{i.Config.Issuer} }

// Audience is the `aud` a client's tokens carry when not narrowed.
func (i *Issuer) Audience(c *clients.Config) []string {
	if len(c.Audience) > 0 {
		return c.Audience
	}
	return i.DefaultAudience()
}

// AccessToken is a signed access token and what it says.
type AccessToken struct {
	Token  string
	Claims accesstoken.Claims
	TTL    time.Duration
}

// Issue signs an access token for a client with the given scopes and
// audience, both already checked against what the client is allowed.
func (i *Issuer) Issue(c *clients.Config, scopes, aud []string) (*AccessToken, error) {
	return i.IssueBound(c, scopes, aud, nil)
}

// IssueBound is Issue for a token bound to the key cnf names (a DPoP key's
// thumbprint); with a nil cnf it issues a bearer token.
func (i *Issuer) IssueBound(c *clients.Config, scopes, aud []string, cnf *accesstoken.Confirmation) (*AccessToken, error) {
	return i.IssueInSession(c, scopes, aud, cnf, "")
}

// IssueInSession is IssueBound for a token issued with the refresh token
// family sid (its sid claim): revoking the family revokes the token.
func (i *Issuer) IssueInSession(c *clients.Config, scopes, aud []string, cnf *accesstoken.Confirmation, sid string) (*AccessToken, error) {
	key, err := i.Keys.Current()
	if err != nil {
		return nil, err
	}
	jti, err := randomID()
	if err != nil {
		return nil, err
	}
	now := i.Now()
	ttl := i.TokenTTL(c)
	at := &AccessToken{TTL: ttl}
	at.Claims = accesstoken.Claims{
		Issuer:    i.Config.Issuer,
		Subject:   c.ClientID,
		Audience:  aud,
		Expiry:    now.Add(ttl).Unix(),
		NotBefore: now.Unix(),
		IssuedAt:  now.Unix(),
		JTI:       jti,
		ClientID:  c.ClientID,
		SessionID: sid,
		Scope:     strings.Join(scopes, " "),
		Extra:     c.ClaimsJSON(),

		Confirmation: cnf,
	}
	if at.Token, err = accesstoken.Sign(key, &at.Claims); err != nil {
		return nil, err
	}
	return at, nil
}

// Metadata is the RFC 8414 authorization server metadata.
func (i *Issuer) Metadata() map[string]any {
	base := i.Config.BaseURL()
	grants := map[string]bool{clients.GrantClientCredentials: true}
	scopeSet := map[string]bool{}
	var scopes []string
	all := i.Config.Clients
	for _, v := range i.Clients.List() {
		if v.Source == "api" {
			// Clients made at run time count too, after the configured ones.
			all = append(all[:len(all):len(all)], &v.Config)
		}
	}
	for _, c := range all {
		if c.Allows(clients.GrantRefreshToken) {
			grants[clients.GrantRefreshToken] = true
		}
		for _, s := range c.Scopes {
			if !scopeSet[s] {
				scopeSet[s] = true
				scopes = append(scopes, s)
			}
		}
	}
	grantList := []string{clients.GrantClientCredentials}
	if grants[clients.GrantRefreshToken] {
		grantList = append(grantList, clients.GrantRefreshToken)
	}
	// Revocation and introspection authenticate clients as the token
	// endpoint does (tokenhandler's authenticate), so the three lists agree.
	authMethods := []string{"client_secret_basic", "client_secret_post"}
	if i.Assertions.HasKeys() {
		authMethods = append(authMethods, "private_key_jwt")
	}
	tlsMethods := i.Assertions.Methods()
	authMethods = append(authMethods, tlsMethods...)
	md := map[string]any{
		"issuer":                                        i.Config.Issuer,
		"token_endpoint":                                base + TokenPath,
		"jwks_uri":                                      base + JWKSPath,
		"grant_types_supported":                         grantList,
		"response_types_supported":                      []string{},
		"token_endpoint_auth_methods_supported":         authMethods,
		"revocation_endpoint":                           base + RevokePath,
		"revocation_endpoint_auth_methods_supported":    authMethods,
		"introspection_endpoint":                        base + IntrospectPath,
		"introspection_endpoint_auth_methods_supported": authMethods,
		"scopes_supported":                              append([]string{}, scopes...),
		"dpop_signing_alg_values_supported":             dpop.DefaultAlgs,
	}
	if i.Assertions.HasKeys() {
		for _, ep := range []string{"token", "revocation", "introspection"} {
			md[ep+"_endpoint_auth_signing_alg_values_supported"] = clientauth.SigningAlgs
		}
	}
	if len(tlsMethods) > 0 {
		md["tls_client_certificate_bound_access_tokens"] = true
	}
	return md
}

// Endpoint paths, relative to the issuer URL.
const (
	TokenPath      = "/oauth/token"
	RevokePath     = "/oauth/revoke"
	IntrospectPath = "/oauth/introspect"
	JWKSPath       = "/.well-known/jwks.json"
	MetadataPath   = "/.well-known/oauth-authorization-server"
)

func randomID() (string, error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

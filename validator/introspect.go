package validator

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"golang.org/x/sync/singleflight"

	"github.com/tokengate/tokengate/internal/accesstoken"
	"github.com/tokengate/tokengate/internal/remotekeys"
)

// Introspection lets a route accept opaque (non-JWT) access tokens of its
// remote issuer by asking the issuer's RFC 7662 introspection endpoint.
// JWTs are still verified locally. An active answer must name the route's
// issuer (iss), one of its audiences (aud) and an expiry (exp); it is then
// checked like a JWT's claims (leeway, scopes, claim rules) and cached
// until its exp or CacheFor, whichever is first. An inactive answer is
// cached for NegativeCacheFor. The cache is keyed by the token's SHA-256
// (one entry per token) and bounded by entries and bytes.
type Introspection struct {
	// Endpoint is the issuer's introspection endpoint URL. Required.
	Endpoint string `json:"endpoint"`
	// ClientID and ClientSecret authenticate this gate to the endpoint
	// (HTTP Basic, RFC 6749 §2.3.1). Placeholders such as {env.SECRET} or
	// {file./run/secrets/introspection} are replaced when the config
	// loads. Required.
	ClientID     string `json:"client_id"`
	ClientSecret string `json:"client_secret"`
	// CacheFor bounds how long an active answer is reused. Default: 2m.
	CacheFor caddy.Duration `json:"cache_for,omitempty"`
	// NegativeCacheFor is how long an inactive answer is reused. Default: 5s.
	NegativeCacheFor caddy.Duration `json:"negative_cache_for,omitempty"`
	// MaxCachedTokens and MaxCachedBytes bound the cache.
	// Default: 10000 and 8 MiB.
	MaxCachedTokens int `json:"max_cached_tokens,omitempty"`
	MaxCachedBytes  int `json:"max_cached_bytes,omitempty"`
}

const (
	defaultIntrospectCache    = 2 * time.Minute
	defaultIntrospectNegative = 5 * time.Second
	defaultIntrospectEntries  = 10000
	defaultIntrospectBytes    = 8 << 20
	// maxIntrospectionAnswer caps an introspection answer.
	maxIntrospectionAnswer = 64 << 10
	introspectTimeout      = 5 * time.Second
)

// errInactive is an opaque token the issuer does not vouch for.
var (
	errInactive         = errors.New("token is not active")
	errIntrospectFailed = errors.New("the issuer could not be asked about the token")
)

// introspector asks the issuer about opaque tokens and caches the answers.
type introspector struct {
	endpoint, clientID, secret string
	client                     *http.Client
	verifier                   *accesstoken.Verifier
	cacheFor, negativeFor      time.Duration
	maxEntries, maxBytes       int
	now                        func() time.Time

	calls singleflight.Group

	mu      sync.Mutex
	entries map[[32]byte]*introspected
	bytes   int
}

type introspected struct {
	claims *accesstoken.Claims // nil: inactive
	until  time.Time
	size   int
}

// validateIntrospection checks the Introspection option; validate calls it.
func (h *Handler) validateIntrospection() error {
	in := h.Introspection
	if in == nil {
		return nil
	}
	if len(h.Issuers) > 0 {
		return errors.New("introspection: not available with several issuers")
	}
	if in.Endpoint == "" || in.ClientID == "" || in.ClientSecret == "" {
		return errors.New("introspection: endpoint, client_id and client_secret are required")
	}
	if in.CacheFor < 0 || in.NegativeCacheFor < 0 || in.MaxCachedTokens < 0 || in.MaxCachedBytes < 0 {
		return errors.New("introspection: cache bounds must not be negative")
	}
	return nil
}

// provisionIntrospection sets up the introspector for the route's remote
// issuer, after the issuer itself.
func (h *Handler) provisionIntrospection() error {
	in := h.Introspection
	if in == nil {
		return nil
	}
	if h.remote == nil {
		return errors.New("introspection: only for a remote issuer (a local issuer's tokens are JWTs)")
	}
	repl := caddy.NewReplacer()
	var vals [3]string
	for i, s := range []string{in.Endpoint, in.ClientID, in.ClientSecret} {
		v, err := repl.ReplaceOrErr(s, true, true)
		if err != nil {
			return fmt.Errorf("introspection: %v", err)
		}
		vals[i] = strings.TrimSpace(v) // {file.*} keeps the file's newline
	}
	if err := remotekeys.CheckJWKSURL(h.iss, vals[0]); err != nil {
		return fmt.Errorf("introspection: endpoint: %v", err)
	}
	in2 := &introspector{
		endpoint: vals[0], clientID: vals[1], secret: vals[2],
		client:      &http.Client{Timeout: introspectTimeout, CheckRedirect: remotekeys.NoRedirects},
		cacheFor:    orDefault(time.Duration(in.CacheFor), defaultIntrospectCache),
		negativeFor: orDefault(time.Duration(in.NegativeCacheFor), defaultIntrospectNegative),
		maxEntries:  orDefault(in.MaxCachedTokens, defaultIntrospectEntries),
		maxBytes:    orDefault(in.MaxCachedBytes, defaultIntrospectBytes),
		now:         h.now,
		entries:     map[[32]byte]*introspected{},
	}
	// The introspection answer has no header: typ cannot be required.
	in2.verifier = accesstoken.NewVerifier(accesstoken.VerifierConfig{
		Issuer: h.iss, Audience: h.audience, Leeway: time.Duration(h.Leeway), Now: h.now,
	})
	h.intro = in2
	return nil
}

func orDefault[T int | time.Duration](v, def T) T {
	if v == 0 {
		return def
	}
	return v
}

// isJWT tells a compact JWS from an opaque token.
func isJWT(tok string) bool { return strings.Count(tok, ".") == 2 }

// token returns the issuer's answer about an opaque token as a Token to
// check, from the cache when it is fresh.
func (in *introspector) token(ctx context.Context, tok string) (*accesstoken.Token, error) {
	key := sha256.Sum256([]byte(tok))
	now := in.now()
	in.mu.Lock()
	e := in.entries[key]
	in.mu.Unlock()
	if e == nil || !now.Before(e.until) {
		v, err, _ := in.calls.Do(string(key[:]), func() (any, error) {
			// The answer serves every waiting request: not cut short
			// when this one's client goes away.
			c, err := in.ask(context.WithoutCancel(ctx), tok)
			if err != nil {
				return nil, err
			}
			return in.store(key, c, len(tok)), nil
		})
		if err != nil {
			return nil, err
		}
		e = v.(*introspected)
	}
	if e.claims == nil {
		return nil, errInactive
	}
	return &accesstoken.Token{Claims: e.claims}, nil
}

// ask posts the token to the introspection endpoint and reads the answer:
// nil claims for an inactive token.
func (in *introspector) ask(ctx context.Context, tok string) (*accesstoken.Claims, error) {
	form := url.Values{"token": {tok}, "token_type_hint": {"access_token"}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, in.endpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return nil, errIntrospectFailed
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	req.SetBasicAuth(url.QueryEscape(in.clientID), url.QueryEscape(in.secret))
	resp, err := in.client.Do(req)
	if err != nil {
		return nil, errIntrospectFailed
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxIntrospectionAnswer+1))
	if err != nil || resp.StatusCode != http.StatusOK || len(body) > maxIntrospectionAnswer {
		return nil, errIntrospectFailed
	}
	var active struct {
		Active bool `json:"active"`
	}
	if json.Unmarshal(body, &active) != nil {
		return nil, errIntrospectFailed
	}
	if !active.Active {
		return nil, nil
	}
	// The answer's members are the token's claims (RFC 7662 §2.2), read
	// as strictly as a JWT's.
	c, err := accesstoken.ParseClaims(body)
	if err != nil {
		return nil, err
	}
	return c, nil
}

// store caches an answer until the token's exp or the configured bound,
// whichever is first (an inactive one for the negative bound), evicting
// expired entries, then arbitrary ones, to stay within the bounds.
func (in *introspector) store(key [32]byte, c *accesstoken.Claims, tokLen int) *introspected {
	now := in.now()
	e := &introspected{claims: c, until: now.Add(in.negativeFor), size: tokLen + entryOverhead}
	if c != nil {
		e.until = now.Add(in.cacheFor)
		if exp := time.Unix(c.Expiry, 0); exp.Before(e.until) {
			e.until = exp
		}
		e.size += len(c.Scope) + len(c.Subject) + len(c.ClientID) + 512
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	if old := in.entries[key]; old != nil {
		in.bytes -= old.size
		delete(in.entries, key)
	}
	over := func() bool { return len(in.entries) >= in.maxEntries || in.bytes+e.size > in.maxBytes }
	if over() {
		for k, v := range in.entries {
			if !now.Before(v.until) {
				in.bytes -= v.size
				delete(in.entries, k)
			}
		}
	}
	for k, v := range in.entries {
		if !over() {
			break
		}
		in.bytes -= v.size
		delete(in.entries, k)
	}
	if e.size <= in.maxBytes {
		in.entries[key] = e
		in.bytes += e.size
	}
	return e
}

// unmarshalIntrospection reads
//
//	introspection <endpoint> {
//	    client_id      <id>
//	    client_secret  <secret>        # e.g. {env.INTROSPECTION_SECRET}
//	    cache          <duration>      # default: 2m (never past the token's exp)
//	    negative_cache <duration>      # default: 5s
//	}
func (h *Handler) unmarshalIntrospection(d *caddyfile.Dispenser) error {
	in := &Introspection{}
	if !d.NextArg() {
		return d.ArgErr()
	}
	in.Endpoint = d.Val()
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		opt := d.Val()
		var v string
		if !d.AllArgs(&v) {
			return d.ArgErr()
		}
		switch opt {
		case "client_id":
			in.ClientID = v
		case "client_secret":
			in.ClientSecret = v
		case "cache", "negative_cache":
			dur, err := caddy.ParseDuration(v)
			if err != nil || dur < time.Second {
				return d.Errf("introspection %s: %q is not a duration of at least 1s", opt, v)
			}
			if opt == "cache" {
				in.CacheFor = caddy.Duration(dur)
			} else {
				in.NegativeCacheFor = caddy.Duration(dur)
			}
		default:
			return d.Errf("unrecognized option %q in introspection (client_id, client_secret, cache, negative_cache)", opt)
		}
	}
	h.Introspection = in
	return nil
}

package validator

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/tokengate/tokengate/internal/accesstoken"
	"github.com/tokengate/tokengate/internal/dpop"
	"github.com/tokengate/tokengate/internal/localissuer"
	"github.com/tokengate/tokengate/internal/metrics"
	"github.com/tokengate/tokengate/internal/remotekeys"
	"github.com/tokengate/tokengate/internal/revocation"
)

func init() {
	caddy.RegisterModule(Handler{})
}

// Defaults of the handler's options.
const (
	DefaultLeeway = accesstoken.DefaultLeeway
	DefaultRealm  = "restricted"
)

// Handler is the `bearer_auth` middleware: it lets a request through only
// with a valid OAuth 2.0 access token (a JWT) in its `Authorization: Bearer`
// header, issued by the issuer the route trusts, for one of the route's
// audiences, and granting all of the route's scopes.
//
// A refused request never reaches the next handler. It gets a 401 with
// `WWW-Authenticate: Bearer realm="…"` when it carries no bearer token,
// a 401 with `error="invalid_token"` and a generic `error_description` when
// the token is bad (malformed, badly signed, expired, revoked, for another
// issuer or audience), a 403 with `error="insufficient_scope"` and the
// route's `scope` when the token lacks a scope or a required claim, and a
// 400 with `error="invalid_request"` when the request has several
// Authorization headers. The refusal is returned as a Caddy handler error,
// so `handle_errors` routes can shape the answer.
//
// On success it sets these placeholders for the rest of the route (e.g. for
// `reverse_proxy`'s `header_up`); when no token was accepted (a refusal, a
// preflight) they are empty strings:
//
//	{http.auth.user.id}           the token's sub
//	{http.auth.user.client_id}    client_id (or azp)
//	{http.auth.user.scope}        granted scopes, space-separated
//	{http.auth.user.iss}          iss
//	{http.auth.user.aud}          aud values, comma-separated
//	{http.auth.user.jti}          jti
//	{http.auth.user.exp}          exp, Unix seconds
//	{http.auth.user.claims.NAME}  any claim: strings as they are, other
//	                              values as compact JSON
//
// Verified tokens are cached (by the SHA-256 of their signed part, until
// their expiry at the latest; at most MaxCachedTokens entries and
// MaxCachedBytes), so a client reusing its token costs a hash and a lookup
// rather than a signature check; each request still checks expiry,
// revocation, audience, scopes and claims.
type Handler struct {
	// Issuer is the issuer whose tokens are accepted: the name of an
	// `oauth_issuer` of this Caddy instance (its keys are read in process,
	// so rotations are seen at once), or the http(s) URL of a remote
	// issuer (its `iss` value exactly; its keys are fetched from its JWKS).
	// The URL of an `oauth_issuer` of this instance counts as that local
	// issuer, unless jwks_url is set.
	// Placeholders such as {env.ISSUER} are replaced when the config loads.
	// Default: the local issuer "default".
	Issuer string `json:"issuer,omitempty"`

	// Issuers are several issuers the route accepts, each with its own
	// audience (a provider in migration, two tenants); a token is verified
	// only with the keys of the one its `iss` names. Not allowed with
	// Issuer or JWKSURL. Default: none (the one Issuer). See TrustedIssuer.
	Issuers []TrustedIssuer `json:"issuers,omitempty"`

	// JWKSURL is the JWK set of a remote issuer that offers neither RFC 8414
	// nor OpenID Connect discovery. Not allowed with a local issuer.
	// Default: found by discovery at `<issuer>/.well-known/oauth-authorization-server`,
	// then `<issuer>/.well-known/openid-configuration`.
	JWKSURL string `json:"jwks_url,omitempty"`

	// Audience lists the accepted audiences: the token's `aud` must contain
	// one of them. Required with a remote issuer. Default for a local
	// issuer: its issuer URL, the audience of tokens of clients configured
	// without `audience`.
	Audience []string `json:"audience,omitempty"`

	// Scopes the token must all grant (in its `scope` claim, or `scp`, or
	// the claim ScopeClaim names). Repeated `scopes` lines add scopes that
	// are all required (AND). Default: none.
	Scopes []string `json:"scopes,omitempty"`

	// ScopeClaim names the claim the scopes are read from instead of
	// `scope`/`scp`: an array of strings or a space-separated string, found
	// by name or by a path into nested objects such as Keycloak's
	// `realm_access.roles` (see Claims for the path rule). Default: empty,
	// the token's `scope` (or `scp`).
	ScopeClaim string `json:"scope_claim,omitempty"`

	// Claims are further requirements on the token: for each claim name,
	// the claim (or, for an array claim, one of its elements) must equal one
	// of the listed values. Numbers and booleans compare as their JSON text.
	// All listed claims must match; a mismatch is a 403. Repeated `claim`
	// lines for one claim add accepted values (OR).
	//
	// A name reaches into nested objects: a top-level claim of exactly that
	// name wins (so `https://example.com/roles` needs nothing special);
	// otherwise dots separate the members of a path, like
	// `realm_access.roles` or `resource_access.my-app.roles`, and `\.` is a
	// dot inside a member name (`resource_access.my\.app.roles`). The
	// {http.auth.user.claims.NAME} placeholders follow the same rule.
	// Default: none.
	Claims map[string][]string `json:"claims,omitempty"`

	// Leeway is the clock skew tolerated on exp, nbf and iat.
	// Default: 30s. The smallest meaningful value is 1s. With a local
	// issuer it may be at most 5m, how long revocations are kept past a
	// token's expiry.
	Leeway caddy.Duration `json:"leeway,omitempty"`

	// RequireTyp makes a remote issuer's tokens need the RFC 9068 header
	// `typ: at+jwt` (or `application/at+jwt`), which keeps ID tokens and
	// other JWTs signed by the same keys out. Default: false, since many
	// identity providers still send `typ: JWT`. Tokens of a local issuer
	// always need it.
	RequireTyp bool `json:"require_typ,omitempty"`

	// Realm is the realm of the WWW-Authenticate challenge.
	// Default: "restricted".
	Realm string `json:"realm,omitempty"`

	// AllowPreflight answers CORS preflight requests (OPTIONS with Origin
	// and Access-Control-Request-Method headers) without a token, since
	// browsers never send credentials with them: bearer_auth answers 204
	// itself, with the headers handlers before it set (put the
	// Access-Control-Allow-* headers in a `header` directive), and never
	// passes a preflight on to the upstream. Default: false.
	AllowPreflight bool `json:"allow_preflight,omitempty"`

	// StripAuthorization removes the Authorization header from the request
	// once the token is accepted, so the upstream never sees the token.
	// Default: false (the header is passed on).
	StripAuthorization bool `json:"strip_authorization,omitempty"`

	// Introspection accepts the remote issuer's opaque access tokens by
	// asking its RFC 7662 introspection endpoint (see Introspection).
	// Default: none (only JWTs are accepted).
	Introspection *Introspection `json:"introspection,omitempty"`

	// ForwardAuth makes the route a decision endpoint for another proxy
	// (nginx auth_request, Traefik forwardAuth, Envoy ext_authz over HTTP):
	// an accepted token is answered 200 with no body and the identity
	// headers X-Auth-Subject, X-Auth-Client-Id, X-Auth-Scope,
	// X-Auth-Issuer, X-Auth-Audience and X-Auth-Expires (more with a
	// deferred `header` directive and the placeholders); the request is not
	// passed on. Refusals are as without it: 401 or 403 with the RFC 6750
	// challenge (400 for a malformed request, which nginx turns into 500).
	// Not allowed with Require. Default: false.
	ForwardAuth bool `json:"forward_auth,omitempty"`

	// Require makes the route accept only sender-constrained tokens:
	// `dpop` (RFC 9449: `Authorization: DPoP` with a valid `DPoP` proof by
	// the token's key), `mtls` (RFC 8705: a token bound to the request's
	// TLS client certificate) or `any` (either). Another token is then
	// refused with 401 invalid_token. Whatever this says, a bound token is
	// only ever accepted with what it is bound to. Default: "" (bearer and
	// bound tokens).
	Require string `json:"require,omitempty"`

	// DPoPNonce makes DPoP proofs carry a server nonce (RFC 9449 §9): a
	// proof without a fresh one is answered 401 `use_dpop_nonce` with a
	// `DPoP-Nonce` header to retry with. Nonces live 5 minutes and are
	// good at every route of every instance sharing Caddy's storage (their
	// key is kept there). Default: false.
	DPoPNonce bool `json:"dpop_nonce,omitempty"`

	// RefreshInterval is how often a remote issuer's JWK set is refetched.
	// A token naming an unknown kid also causes a refetch: at once when the
	// last such refetch is more than 1s old, so a key the issuer rotates in
	// is seen within about a second; each refetch that finds no new key
	// doubles that wait, up to 30s (or the refresh interval, if shorter), so
	// a flood of random kids costs a handful of fetches. Default: 5m.
	RefreshInterval caddy.Duration `json:"refresh_interval,omitempty"`

	audience []string // resolved
	iss      string   // the trusted issuer's iss
	verifier *accesstoken.Verifier
	src      accesstoken.KeySource // the verifier's keys, for the token cache
	remote   *remotekeys.Fetcher
	poolKey  *remoteKey
	now      func() time.Time
	noCache  bool // benchmarks measure the cold path with it

	dpop   *dpop.Checker
	nonces *dpop.Nonces // with DPoPNonce: shared through Caddy's storage (noncekey.go)

	byIss map[string]*Handler // with Issuers: one per issuer, by iss (issuers.go)
	intro *introspector       // with Introspection (introspect.go)

	challenge      string // no token
	scopeChallenge string // insufficient_scope, without error_description
	dpopChallenge  string // the DPoP scheme's challenge, without error
	logger         *zap.Logger
}

// CaddyModule returns the Caddy module information.
func (Handler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.bearer_auth",
		New: func() caddy.Module { return new(Handler) },
	}
}

// Provision resolves the trusted issuer and its keys.
func (h *Handler) Provision(ctx caddy.Context) error {
	h.logger = ctx.Logger()
	metrics.Register(ctx.GetMetricsRegistry())
	if h.DPoPNonce {
		h.nonces = sharedNonces(ctx, ctx.Storage(), h.logger)
	}
	if err := h.provisionCommon(); err != nil {
		return err
	}
	if len(h.Issuers) > 0 {
		return h.provisionIssuers(ctx) // issuers.go
	}
	if err := h.provisionIssuer(ctx); err != nil {
		return err
	}
	return h.provisionIntrospection() // introspect.go
}

// provisionIssuer resolves the route's one trusted issuer and its keys.
func (h *Handler) provisionIssuer(ctx caddy.Context) error {
	repl := caddy.NewReplacer()
	name, err := repl.ReplaceOrErr(h.Issuer, true, true)
	if err != nil && h.Issuer != "" {
		return fmt.Errorf("issuer: %v", err)
	}
	if name == "" {
		name = localissuer.DefaultName
	}
	jwksURL, err := repl.ReplaceOrErr(h.JWKSURL, true, true)
	if err != nil && h.JWKSURL != "" {
		return fmt.Errorf("jwks_url: %v", err)
	}
	h.audience = make([]string, 0, len(h.Audience))
	for _, a := range h.Audience {
		ra, err := repl.ReplaceOrErr(a, true, true)
		if err != nil {
			return fmt.Errorf("audience: %v", err)
		}
		h.audience = append(h.audience, ra)
	}
	if isURL(name) {
		// An issuer of this very instance, named by its URL, is local: its
		// keys are read in process (a fetch from ourselves would fail at
		// start, before the server listens).
		if li, ok := localissuer.LookupURL(ctx, name); ok && jwksURL == "" {
			return h.provisionLocal(li)
		}
		return h.provisionRemote(name, jwksURL)
	}
	if jwksURL != "" {
		return fmt.Errorf("jwks_url: not allowed with the local issuer %q (its keys are read in process)", name)
	}
	li, err := localissuer.Lookup(ctx, name)
	if err != nil {
		return fmt.Errorf("issuer: %v", err)
	}
	return h.provisionLocal(li)
}

// isURL tells an issuer URL from an issuer name.
func isURL(s string) bool { return strings.Contains(s, "://") }

// provisionLocal trusts an issuer of this instance: its tokens always need
// typ at+jwt, and its revocations are refused.
func (h *Handler) provisionLocal(li localissuer.Issuer) error {
	if time.Duration(h.Leeway) > revocation.MaxLeeway {
		// A token is accepted until exp + leeway, and its revocation kept
		// until exp + MaxLeeway: a longer leeway brings revoked tokens back.
		return fmt.Errorf("leeway: %v is longer than %v, how long a local issuer keeps a revocation past the token's expiry (a revoked token would be accepted again)",
			time.Duration(h.Leeway), revocation.MaxLeeway)
	}
	if len(h.audience) == 0 {
		h.audience = li.Verifier.Audience
	}
	h.warnUnreachable(li)
	h.useVerifier(li.Verifier)
	return nil
}

// useVerifier verifies tokens as cfg says, with the route's audience and
// leeway.
func (h *Handler) useVerifier(cfg accesstoken.VerifierConfig) {
	if h.now == nil {
		h.now = cfg.Now
	}
	cfg.Audience, cfg.Leeway, cfg.Now = h.audience, time.Duration(h.Leeway), h.now
	h.iss = cfg.Issuer
	h.src = cfg.Keys
	h.verifier = accesstoken.NewVerifier(cfg)
}

// provisionRemote trusts a remote issuer, sharing its key fetcher with the
// other routes that trust it.
func (h *Handler) provisionRemote(iss, jwksURL string) error {
	if err := remotekeys.CheckHTTPURL(iss); err != nil {
		return fmt.Errorf("issuer: %v", err)
	}
	if jwksURL != "" {
		if err := remotekeys.CheckJWKSURL(iss, jwksURL); err != nil {
			return fmt.Errorf("jwks_url: %v", err)
		}
	}
	if u, err := url.Parse(iss); err == nil && u.Scheme == "http" && !localissuer.IsLoopbackHost(u.Hostname()) {
		h.logger.Warn("remote issuer URL is plain http: its keys can be swapped on the way, and forged tokens accepted",
			zap.String("issuer", iss))
	}
	if len(h.audience) == 0 {
		return fmt.Errorf("audience: required with the remote issuer %q (the token's aud must name this API)", iss)
	}
	refresh := time.Duration(h.RefreshInterval)
	if refresh <= 0 {
		refresh = DefaultRefreshInterval
	}
	key := remoteKey{issuer: iss, jwksURL: jwksURL, refresh: refresh}
	logger := h.logger.With(zap.String("issuer", iss))
	v, _, err := remotePool.LoadOrNew(key, func() (caddy.Destructor, error) {
		f := remotekeys.New(remotekeys.Config{Issuer: iss, JWKSURL: jwksURL, Refresh: refresh, Logger: logger})
		f.Start(remotekeys.ProvisionTimeout)
		return f, nil
	})
	if err != nil {
		return fmt.Errorf("issuer %q: %v", iss, err)
	}
	h.poolKey = &key
	h.useRemote(iss, v.(*remotekeys.Fetcher))
	return nil
}

// useRemote verifies tokens of the remote issuer iss with the keys f fetches.
func (h *Handler) useRemote(iss string, f *remotekeys.Fetcher) {
	h.remote = f
	h.useVerifier(accesstoken.VerifierConfig{Keys: f, Issuer: iss, RequireTyp: h.RequireTyp, Now: time.Now})
}

// provisionCommon fills defaults, checks the options and prepares the
// challenges. It runs before the key source is set up, so a bad option
// costs no fetch.
func (h *Handler) provisionCommon() error {
	if h.logger == nil {
		h.logger = zap.NewNop()
	}
	if h.Leeway == 0 {
		h.Leeway = caddy.Duration(DefaultLeeway)
	}
	if h.Realm == "" {
		h.Realm = DefaultRealm
	}
	if err := h.validate(); err != nil {
		return err
	}
	h.challenge = fmt.Sprintf(`Bearer realm="%s"`, h.Realm)
	h.scopeChallenge = `error="insufficient_scope"`
	if len(h.Scopes) > 0 {
		h.scopeChallenge += fmt.Sprintf(`, scope="%s"`, strings.Join(h.Scopes, " "))
	}
	return h.provisionSender()
}

// validate checks the options. Provision runs it before any key fetch;
// it is not caddy.Validator's Validate, which Caddy would run a second time.
func (h *Handler) validate() error {
	if h.Leeway < 0 {
		return errors.New("leeway: must not be negative")
	}
	if h.RefreshInterval < 0 {
		return errors.New("refresh_interval: must not be negative")
	}
	if err := h.validateIssuers(); err != nil {
		return err
	}
	if err := h.validateForwardAuth(); err != nil {
		return err
	}
	if err := h.validateIntrospection(); err != nil {
		return err
	}
	if !validQuoted(h.Realm) {
		return fmt.Errorf("realm: %q must not contain quotes, backslashes or control characters", h.Realm)
	}
	for _, a := range h.Audience {
		if a == "" {
			return errors.New("audience: empty value")
		}
	}
	switch h.Require {
	case "", RequireDPoP, RequireMTLS, RequireAny:
	default:
		return fmt.Errorf("require: unsupported value %q (dpop, mtls, any)", h.Require)
	}
	for _, s := range h.Scopes {
		if !accesstoken.ValidScopeToken(s) {
			return fmt.Errorf("scopes: invalid scope %q", s)
		}
	}
	for name, vals := range h.Claims {
		if name == "" {
			return errors.New("claim: empty claim name")
		}
		if len(vals) == 0 {
			return fmt.Errorf("claim %q: at least one value is required", name)
		}
	}
	return nil
}

// validQuoted reports whether s can go into a quoted-string unescaped.
func validQuoted(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == 0x7f || c == '"' || c == '\\' {
			return false
		}
	}
	return true
}

// Cleanup releases the remote issuers' key fetchers.
func (h *Handler) Cleanup() error {
	for _, ti := range h.byIss {
		if err := ti.Cleanup(); err != nil {
			return err
		}
	}
	if h.poolKey != nil {
		if _, err := remotePool.Delete(*h.poolKey); err != nil {
			return fmt.Errorf("releasing the key fetcher of %q: %v", h.poolKey.issuer, err)
		}
		h.poolKey = nil
	}
	return nil
}

// ServeHTTP checks the bearer token and passes the request on when it is
// good; otherwise it answers the refusal as a handler error.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	repl, _ := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
	if h.AllowPreflight && isPreflight(r) {
		// Answered here, never passed on: a legacy upstream that ignores
		// the method would run an unauthenticated request, body and all.
		// CORS headers come from handlers before this one (`header`).
		if repl != nil {
			repl.Map(noIdentity)
		}
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
	start := time.Now()
	c, err := h.check(r)
	validatorDuration.Observe(time.Since(start).Seconds())
	countValidation(err)
	if err != nil {
		if repl != nil {
			repl.Map(noIdentity)
		}
		return h.deny(w, r, err)
	}
	if repl != nil {
		repl.Map(placeholders(c))
	}
	if h.ForwardAuth {
		return h.answerForward(w, c) // forwardauth.go
	}
	if h.StripAuthorization {
		r.Header.Del("Authorization")
	}
	return next.ServeHTTP(w, r)
}

// noIdentity gives the identity placeholders empty values when no token
// was accepted, so error routes and logs show nothing rather than the
// placeholders' literal text.
func noIdentity(key string) (any, bool) {
	if strings.HasPrefix(key, placeholderPrefix) {
		return "", true
	}
	return nil, false
}

// isPreflight reports whether r is a CORS preflight request.
func isPreflight(r *http.Request) bool {
	return r.Method == http.MethodOptions && r.Header.Get("Origin") != "" &&
		r.Header.Get("Access-Control-Request-Method") != ""
}

// refusal is a refused request: its status, the error code of the
// challenge, and the reason.
type refusal struct {
	status int
	code   string // RFC 6750 error code; empty when no token was sent
	reason error
}

func (e *refusal) Error() string {
	if e.code == "" {
		return e.reason.Error()
	}
	return e.code + ": " + e.reason.Error()
}

func (e *refusal) Unwrap() error { return e.reason }

// classify maps a reason to its answer.
func classify(reason error) *refusal {
	switch reason {
	case errNoToken:
		return &refusal{status: http.StatusUnauthorized, reason: reason}
	case errDuplicateAuth:
		return &refusal{status: http.StatusBadRequest, code: "invalid_request", reason: reason}
	case errInsufficient, errClaimMismatch:
		return &refusal{status: http.StatusForbidden, code: "insufficient_scope", reason: reason}
	}
	var de *dpop.Error
	if errors.As(reason, &de) {
		return &refusal{status: http.StatusUnauthorized, code: de.Code, reason: reason}
	}
	return &refusal{status: http.StatusUnauthorized, code: "invalid_token", reason: reason}
}

// deny sets the challenge and returns the refusal as a handler error. The
// challenge's scheme is DPoP (with the accepted algs) when the route
// requires bound tokens or the request or the reason is about DPoP, Bearer
// otherwise.
func (h *Handler) deny(w http.ResponseWriter, r *http.Request, reason error) error {
	rf := classify(reason)
	challenge := h.challenge
	if h.usesDPoP(r, reason) {
		challenge = h.dpopChallenge
	}
	switch rf.code {
	case "":
	case "insufficient_scope":
		challenge += `, ` + h.scopeChallenge + `, error_description="` + reason.Error() + `"`
	default:
		challenge += `, error="` + rf.code + `", error_description="` + reason.Error() + `"`
	}
	w.Header().Set("WWW-Authenticate", challenge)
	if reason == dpop.ErrUseNonce {
		w.Header().Set("DPoP-Nonce", h.dpop.Nonces().Issue(h.now()))
	}
	if ce := h.logger.Check(zap.DebugLevel, "bearer token refused"); ce != nil {
		ce.Write(zap.String("remote_ip", r.RemoteAddr), zap.Int("status", rf.status), zap.String("reason", reason.Error()))
	}
	return caddyhttp.Error(rf.status, rf)
}

// Interface guards
var (
	_ caddy.Provisioner           = (*Handler)(nil)
	_ caddy.CleanerUpper          = (*Handler)(nil)
	_ caddyhttp.MiddlewareHandler = (*Handler)(nil)
)

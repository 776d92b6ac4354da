package tokenhandler

import (
	"crypto/sha256"
	"errors"
	"math"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/tokengate/tokengate/internal/accesstoken"
	"github.com/tokengate/tokengate/internal/clients"
	"github.com/tokengate/tokengate/internal/issuer"
	"github.com/tokengate/tokengate/internal/metrics"
	"github.com/tokengate/tokengate/internal/refresh"
	"github.com/tokengate/tokengate/internal/throttle"
)

// tokenResponse is the successful answer of RFC 6749 §5.1, members in the
// order of the RFC's example.
type tokenResponse struct {
	AccessToken  string `json:"access_token"`
	TokenType    string `json:"token_type"`
	ExpiresIn    int64  `json:"expires_in"`
	RefreshToken string `json:"refresh_token,omitempty"`
	Scope        string `json:"scope,omitempty"`
}

// serveToken answers POST /oauth/token, recording the outcome in the
// metrics.
func (h *Handler) serveToken(w http.ResponseWriter, r *http.Request) error {
	start := time.Now()
	rec := &outcome{ResponseWriter: w}
	err := h.token(rec, r)
	result := rec.code
	switch {
	case err == nil && rec.status == http.StatusServiceUnavailable:
		result = "busy"
	case err != nil || rec.status >= 500:
		result = "error"
	case rec.status == http.StatusOK:
		result = "issued"
	case rec.status == http.StatusTooManyRequests:
		result = "throttled"
	}
	grant := rec.grant
	if grant != clients.GrantClientCredentials && grant != clients.GrantRefreshToken {
		grant = "other" // keep the label's values bounded
	}
	metrics.TokenRequests.WithLabelValues(grant, result).Inc()
	metrics.Duration.WithLabelValues("issuer").Observe(time.Since(start).Seconds())
	return err
}

// outcome remembers what the token endpoint answered, for the metrics.
type outcome struct {
	http.ResponseWriter
	status int
	code   string // the RFC 6749 error code of a refusal
	grant  string
}

func (o *outcome) WriteHeader(status int) {
	o.status = status
	o.ResponseWriter.WriteHeader(status)
}

func (h *Handler) token(w *outcome, r *http.Request) error {
	noStore(w.Header())
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		return h.writeError(w, &oauthError{status: http.StatusMethodNotAllowed, Code: "invalid_request", Description: "the token endpoint accepts only POST"})
	}
	tr, oe := parseTokenRequest(w, r)
	if oe != nil {
		return h.refuse(w, "", oe)
	}
	w.grant = tr.grantType
	switch tr.grantType {
	case "":
		return h.refuse(w, "", errInvalidRequest("grant_type is required"))
	case clients.GrantClientCredentials, clients.GrantRefreshToken:
	default:
		return h.refuse(w, "", errUnsupportedGrant("supported grant types: client_credentials, refresh_token"))
	}
	client, done, err := h.authenticate(w, r, tr.credentials)
	if done || err != nil {
		return err
	}
	if !client.Allows(tr.grantType) {
		return h.refuse(w, client.ClientID, errUnauthorizedClient("the client may not use the "+tr.grantType+" grant"))
	}
	cnf, oe := h.binding(r, client, tr.mtls)
	if oe != nil {
		return h.refuse(w, client.ClientID, oe)
	}
	if tr.grantType == clients.GrantRefreshToken {
		return h.refreshGrant(w, r, client, tr, cnf)
	}
	scopes, oe := narrowScopes(tr, client.Scopes)
	if oe != nil {
		return h.refuse(w, client.ClientID, oe)
	}
	aud, oe := narrowAudience(tr, h.iss.Audience(client))
	if oe != nil {
		return h.refuse(w, client.ClientID, oe)
	}
	// A client that gets a refresh token starts a family, whose id the
	// access token carries in sid: revoking the family revokes it.
	family := ""
	if client.Allows(clients.GrantRefreshToken) {
		var err error
		if family, err = refresh.NewFamily(); err != nil {
			return h.fail(w, err)
		}
	}
	at, err := h.iss.IssueInSession(client, scopes, aud, cnf, family)
	if err != nil {
		return h.fail(w, err)
	}
	refreshToken := ""
	if family != "" {
		// The refresh grant keeps the client's full scope and audience, so a
		// narrowed access token does not narrow what can be refreshed
		// (RFC 6749 §6).
		g := refresh.Grant{ClientID: client.ClientID, Scopes: client.Scopes, Audience: h.iss.Audience(client), Family: family}
		if refreshToken, err = h.iss.Refresh.Issue(r.Context(), g, h.refreshTTL(), accessRef(at)); err != nil {
			return h.fail(w, err)
		}
	}
	return h.answer(w, client, tr, scopes, at, refreshToken)
}

func accessRef(at *issuer.AccessToken) refresh.AccessRef {
	return refresh.AccessRef{JTI: at.Claims.JTI, Expires: time.Unix(at.Claims.Expiry, 0), InSession: at.Claims.SessionID != ""}
}

// refreshGrant redeems a refresh token (RFC 6749 §6), rotating it.
func (h *Handler) refreshGrant(w http.ResponseWriter, r *http.Request, client *clients.Config, tr *tokenRequest, cnf *accesstoken.Confirmation) error {
	if tr.refreshToken == "" {
		return h.refuse(w, client.ClientID, errInvalidRequest("refresh_token is required"))
	}
	if h.iss.Clients.HasCutOff(client.ClientID) {
		// The client's tokens were revoked (or it was disabled and enabled
		// again): a refresh token issued before that is dead. Anything else
		// Lookup refuses, Redeem refuses as well, reuse detection included.
		info, err := h.iss.Refresh.Lookup(r.Context(), tr.refreshToken)
		if err == nil && h.iss.Clients.CutOff(client.ClientID, info.Issued.Unix()) {
			return h.refuse(w, client.ClientID, errInvalidGrant(refresh.ErrInvalid.Error()))
		}
	}
	var scopes []string
	var at *issuer.AccessToken
	// mint runs under the family's lock, before the refresh token rotates.
	mint := func(g refresh.Grant) (refresh.AccessRef, error) {
		// What the client may have now bounds what an old grant gives.
		var oe *oauthError
		if scopes, oe = narrowScopes(tr, intersect(g.Scopes, client.Scopes)); oe != nil {
			return refresh.AccessRef{}, oe
		}
		aud, oe := narrowAudience(tr, intersect(g.Audience, h.iss.Audience(client)))
		if oe != nil {
			return refresh.AccessRef{}, oe
		}
		if len(aud) == 0 {
			return refresh.AccessRef{}, errInvalidGrant("the refresh token's audience is no longer allowed")
		}
		var err error
		if at, err = h.iss.IssueInSession(client, scopes, aud, cnf, g.Family); err != nil {
			return refresh.AccessRef{}, err
		}
		return accessRef(at), nil
	}
	_, next, err := h.iss.Refresh.Redeem(r.Context(), tr.refreshToken, client.ClientID, h.refreshTTL(), mint)
	var oe *oauthError
	switch {
	case errors.As(err, &oe):
		return h.refuse(w, client.ClientID, oe)
	case errors.Is(err, refresh.ErrReused):
		// A replayed refresh token revokes its whole family.
		metrics.Revocations.WithLabelValues("refresh_token").Inc()
		return h.refuse(w, client.ClientID, errInvalidGrant(err.Error()))
	case errors.Is(err, refresh.ErrInvalid):
		return h.refuse(w, client.ClientID, errInvalidGrant(err.Error()))
	case err != nil:
		return h.fail(w, err)
	}
	return h.answer(w, client, tr, scopes, at, next)
}

// answer writes a successful token answer.
func (h *Handler) answer(w http.ResponseWriter, client *clients.Config, tr *tokenRequest, scopes []string, at *issuer.AccessToken, refreshToken string) error {
	resp := tokenResponse{
		AccessToken:  at.Token,
		TokenType:    tokenType(&at.Claims),
		ExpiresIn:    int64(at.TTL.Seconds()),
		RefreshToken: refreshToken,
	}
	if tr.hasScope && !slices.Equal(scopes, client.Scopes) {
		// RFC 6749 §5.1: the scope is returned when it is not what the
		// client would get by default.
		resp.Scope = at.Claims.Scope
	}
	metrics.TokensIssued.WithLabelValues(client.ClientID).Inc()
	h.logger.Debug("access token issued",
		zap.String("client_id", client.ClientID),
		zap.String("grant_type", tr.grantType),
		zap.String("jti", at.Claims.JTI),
		zap.String("scope", at.Claims.Scope))
	return writeJSON(w, http.StatusOK, resp)
}

// authenticate checks a client's credentials. When they fail it writes the
// refusal and reports done.
//
// The throttle works in two steps. A source address, or a client id from
// that address, with too many recent attempts is refused with 429 before
// anything else: the password hash is the cost a guesser wants to cause,
// and a remembered success must not let a blocked guesser test secrets
// against the cache. Then each attempt is counted just before its secret is
// compared (the registry's admit callback), and given back when it
// succeeds, so requests arriving together cannot all pass a check made
// before any of them failed.
func (h *Handler) authenticate(w http.ResponseWriter, r *http.Request, cr credentials) (*clients.Config, bool, error) {
	if cr.noCredentials {
		return nil, true, h.refuse(w, "", errInvalidClient(true))
	}
	if cr.assertion != "" || cr.mtls {
		return h.authenticateAsymmetric(w, r, cr)
	}
	if len(cr.clientID) > clients.MaxIDLength {
		// No client has such an id. Refused before any throttle or hash
		// work, so a request-sized id is never held, hashed or logged.
		return nil, true, h.refuse(w, "", errInvalidClient(cr.basic))
	}
	addr := sourceAddress(r)
	pair := pairKey(cr.clientID, addr)
	limits := []struct {
		lim *throttle.Limiter
		key string
	}{{h.iss.AddressFailures, addr}, {h.iss.ClientFailures, pair}}
	for _, l := range limits {
		if wait, blocked := l.lim.Blocked(l.key); blocked {
			return nil, true, h.throttled(w, cr, addr, wait)
		}
	}
	counted := false
	admit := func() error {
		for i, l := range limits {
			if wait, ok := l.lim.Take(l.key); !ok {
				for _, taken := range limits[:i] {
					taken.lim.GiveBack(taken.key)
				}
				return throttledFor(wait)
			}
		}
		counted = true
		return nil
	}
	client, err := h.iss.Clients.Authenticate(cr.clientID, cr.clientSecret, admit)
	var wait throttledFor
	switch {
	case err == nil:
	case errors.As(err, &wait):
		return nil, true, h.throttled(w, cr, addr, time.Duration(wait))
	case errors.Is(err, clients.ErrInvalidClient):
		return nil, true, h.refuse(w, cr.clientID, errInvalidClient(cr.basic))
	case errors.Is(err, clients.ErrBusy):
		// No secret was compared: the attempt is not a failure.
		if counted {
			h.iss.AddressFailures.GiveBack(addr)
			h.iss.ClientFailures.GiveBack(pair)
		}
		h.logger.Warn("client secret check refused: every password hash slot stayed busy",
			zap.String("client_id", logID(cr.clientID)), zap.String("address", addr))
		return nil, true, h.writeError(w, errBusy())
	default:
		return nil, true, caddyhttp.Error(http.StatusInternalServerError, err)
	}
	if counted {
		h.iss.AddressFailures.GiveBack(addr)
	}
	h.iss.ClientFailures.Reset(pair)
	method := clients.AuthSecretPost
	if cr.basic {
		method = clients.AuthSecretBasic
	}
	if !client.MayAuthenticate(method) {
		// The secret was right: nothing to count against a guesser.
		return nil, true, h.refuse(w, cr.clientID, errInvalidClient(cr.basic))
	}
	return client, false, nil
}

// throttledFor is admit's refusal: how long until the throttle's window
// ends.
type throttledFor time.Duration

func (throttledFor) Error() string { return "throttled" }

func (h *Handler) throttled(w http.ResponseWriter, cr credentials, addr string, wait time.Duration) error {
	h.logger.Info("client authentication throttled",
		zap.String("client_id", logID(cr.clientID)), zap.String("address", addr), zap.Duration("retry_after", wait))
	return h.writeError(w, &oauthError{
		status:      http.StatusTooManyRequests,
		Code:        "temporarily_unavailable",
		Description: "too many failed client authentications; retry later",
		retryAfter:  int(math.Ceil(wait.Seconds())),
	})
}

// pairKey is the throttle key of a client id from an address. The id is
// hashed: the key has a fixed size whatever the id, and an unknown id gets
// a key of its own like a known one, so the throttle's answers never tell
// a configured client id from an unknown one. An address can make at most
// per_address of these keys per window, since each needs an attempt the
// address throttle let through.
func pairKey(clientID, addr string) string {
	sum := sha256.Sum256([]byte(clientID))
	return addr + "\x00" + string(sum[:16])
}

// logID bounds a client id taken from a request for a log line.
func logID(id string) string {
	const maxLogID = 64
	if len(id) > maxLogID {
		return id[:maxLogID] + "..."
	}
	return id
}

// sourceAddress is the client's IP as Caddy determined it (honouring the
// server's trusted_proxies, never a client-sent X-Forwarded-For on its own),
// with IPv6 addresses reduced to their /64, which one party usually holds
// whole.
func sourceAddress(r *http.Request) string {
	ip, _ := caddyhttp.GetVar(r.Context(), caddyhttp.ClientIPVarKey).(string)
	if ip == "" {
		ip = r.RemoteAddr
		if host, _, err := net.SplitHostPort(ip); err == nil {
			ip = host
		}
	}
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return ip
	}
	a = a.Unmap()
	if a.Is6() {
		if p, err := a.Prefix(64); err == nil {
			return p.String()
		}
	}
	return a.String()
}

func (h *Handler) refuse(w http.ResponseWriter, clientID string, oe *oauthError) error {
	h.logger.Debug("token request refused",
		zap.String("client_id", logID(clientID)),
		zap.String("error", oe.Code),
		zap.String("reason", oe.Description))
	return h.writeError(w, oe)
}

// narrowScopes returns the scopes to grant: all allowed ones when the
// request names none, else the requested ones, each of which must be allowed.
func narrowScopes(tr *tokenRequest, allowed []string) ([]string, *oauthError) {
	requested := strings.Fields(tr.scope)
	if len(requested) == 0 {
		return allowed, nil
	}
	var out []string
	for _, s := range requested {
		if !accesstoken.ValidScopeToken(s) || !slices.Contains(allowed, s) {
			return nil, errInvalidScope("scope " + quoteSafe(s) + " is not allowed for this client")
		}
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out, nil
}

// narrowAudience applies RFC 8707 resource parameters: each must be one of
// the allowed audiences, and together they become the token's aud.
func narrowAudience(tr *tokenRequest, allowed []string) ([]string, *oauthError) {
	if len(tr.resources) == 0 {
		return allowed, nil
	}
	var out []string
	for _, res := range tr.resources {
		if !slices.Contains(allowed, res) {
			return nil, errInvalidTarget("resource " + quoteSafe(res) + " is not an audience of this client")
		}
		if !slices.Contains(out, res) {
			out = append(out, res)
		}
	}
	return out, nil
}

func intersect(a, b []string) []string {
	var out []string
	for _, v := range a {
		if slices.Contains(b, v) {
			out = append(out, v)
		}
	}
	return out
}

// quoteSafe bounds and sanitizes a client-supplied value for an error
// description (RFC 6749 limits it to printable ASCII without " and \).
func quoteSafe(s string) string {
	const maxLen = 64
	if len(s) > maxLen {
		s = s[:maxLen] + "..."
	}
	var b strings.Builder
	b.WriteByte('\'')
	for _, c := range []byte(s) {
		if c < 0x20 || c > 0x7e || c == '"' || c == '\\' {
			c = '?'
		}
		b.WriteByte(c)
	}
	b.WriteByte('\'')
	return b.String()
}

func (h *Handler) refreshTTL() time.Duration { return time.Duration(h.iss.Config.RefreshTTL) }

package tokenhandler

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/tokengate/tokengate/internal/clients"
	"github.com/tokengate/tokengate/internal/issuer"
	"github.com/tokengate/tokengate/internal/metrics"
	"github.com/tokengate/tokengate/internal/refresh"
)

// lifecycleRequest is a revocation (RFC 7009) or introspection (RFC 7662)
// request: a token, and the credentials of the client asking.
type lifecycleRequest struct {
	token string
	credentials
}

// parseLifecycleRequest reads the form body of a revocation or
// introspection request. The token is accepted only in the body.
func parseLifecycleRequest(w http.ResponseWriter, r *http.Request) (*lifecycleRequest, *oauthError) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		return nil, &oauthError{status: http.StatusMethodNotAllowed, Code: "invalid_request", Description: "only POST is allowed"}
	}
	_, body, oe := readParams(w, r, append([]string{"token"}, bodyOnly...), "")
	if oe != nil {
		return nil, oe
	}
	lr := &lifecycleRequest{token: body.Get("token")}
	if lr.credentials, oe = clientCredentials(r, body); oe != nil {
		return nil, oe
	}
	if lr.token == "" {
		return nil, errInvalidRequest("token is required")
	}
	// token_type_hint is not needed: access tokens are JWTs (with dots),
	// refresh tokens never contain one.
	return lr, nil
}

// lifecycleClient reads a revocation or introspection request and
// authenticates its client; when either fails it writes the refusal and
// reports done.
func (h *Handler) lifecycleClient(w http.ResponseWriter, r *http.Request) (*lifecycleRequest, *clients.Config, bool, error) {
	noStore(w.Header())
	lr, oe := parseLifecycleRequest(w, r)
	if oe != nil {
		return nil, nil, true, h.refuse(w, "", oe)
	}
	client, done, err := h.authenticate(w, r, lr.credentials)
	return lr, client, done, err
}

// isJWT tells an access token from a refresh token by shape.
func isJWT(token string) bool { return strings.Contains(token, ".") }

// serveRevoke answers POST /oauth/revoke (RFC 7009). A client may revoke
// only its own tokens; an unknown, invalid, expired or already revoked
// token is answered 200, as the RFC says. Revoking an access token denies
// its jti until it expires, on every instance; revoking a refresh token
// revokes its whole family and the access tokens issued with it.
func (h *Handler) serveRevoke(w http.ResponseWriter, r *http.Request) error {
	lr, client, done, err := h.lifecycleClient(w, r)
	if done || err != nil {
		return err
	}
	foreign := errUnauthorizedClient("the token was not issued to this client")
	if isJWT(lr.token) {
		claims, err := h.verifier.VerifyToken(r.Context(), lr.token)
		if err != nil {
			return revoked(w) // nothing valid to revoke
		}
		if claims.ClientID != client.ClientID {
			return h.refuse(w, client.ClientID, foreign)
		}
		if err := h.iss.Revocations.Revoke(r.Context(), claims.JTI, time.Unix(claims.Expiry, 0)); err != nil {
			return caddyhttp.Error(http.StatusInternalServerError, err)
		}
		metrics.Revocations.WithLabelValues("access_token").Inc()
		h.logger.Info("access token revoked", zap.String("client_id", client.ClientID), zap.String("jti", claims.JTI))
		return revoked(w)
	}
	switch err := h.iss.Refresh.RevokeFamily(r.Context(), lr.token, client.ClientID); {
	case errors.Is(err, refresh.ErrForeign):
		return h.refuse(w, client.ClientID, foreign)
	case err == nil:
		metrics.Revocations.WithLabelValues("refresh_token").Inc()
		return revoked(w)
	case errors.Is(err, refresh.ErrInvalid):
		return revoked(w)
	default:
		return caddyhttp.Error(http.StatusInternalServerError, err)
	}
}

func revoked(w http.ResponseWriter) error {
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(http.StatusOK)
	return nil
}

// introspection is an RFC 7662 answer.
type introspection struct {
	Active    bool            `json:"active"`
	ClientID  string          `json:"client_id,omitempty"`
	Subject   string          `json:"sub,omitempty"`
	Scope     string          `json:"scope,omitempty"`
	Audience  issuer.Audience `json:"aud,omitempty"`
	Issuer    string          `json:"iss,omitempty"`
	Expiry    int64           `json:"exp,omitempty"`
	IssuedAt  int64           `json:"iat,omitempty"`
	NotBefore int64           `json:"nbf,omitempty"`
	JTI       string          `json:"jti,omitempty"`
	TokenType string          `json:"token_type,omitempty"`
}

// serveIntrospect answers POST /oauth/introspect (RFC 7662). A client may
// introspect its own tokens; a client with `introspect_any` (a resource
// server) may introspect any. Everything else — expired, revoked,
// malformed, foreign, or another client's token — is `{"active": false}`.
func (h *Handler) serveIntrospect(w http.ResponseWriter, r *http.Request) error {
	lr, client, done, err := h.lifecycleClient(w, r)
	if done || err != nil {
		return err
	}
	ans, err := h.introspect(r.Context(), client, lr.token)
	if err != nil {
		return caddyhttp.Error(http.StatusInternalServerError, err)
	}
	return writeJSON(w, http.StatusOK, ans)
}

func (h *Handler) introspect(ctx context.Context, client *clients.Config, token string) (introspection, error) {
	inactive := introspection{}
	mayRead := func(owner string) bool { return owner == client.ClientID || client.IntrospectAny }
	if isJWT(token) {
		c, err := h.verifier.VerifyToken(ctx, token)
		if err != nil || !mayRead(c.ClientID) {
			return inactive, nil
		}
		return introspection{
			Active: true, ClientID: c.ClientID, Subject: c.Subject, Scope: c.Scope,
			Audience: c.Audience, Issuer: c.Issuer, Expiry: c.Expiry, IssuedAt: c.IssuedAt,
			NotBefore: c.NotBefore, JTI: c.JTI, TokenType: "Bearer",
		}, nil
	}
	info, err := h.iss.Refresh.Lookup(ctx, token)
	if errors.Is(err, refresh.ErrInvalid) {
		return inactive, nil
	}
	if err != nil {
		return inactive, err
	}
	if !mayRead(info.ClientID) {
		return inactive, nil
	}
	return introspection{
		Active: true, ClientID: info.ClientID, Subject: info.ClientID,
		Scope: strings.Join(info.Scopes, " "), Audience: info.Audience, Issuer: h.iss.Config.Issuer,
		Expiry: info.Expires.Unix(), IssuedAt: info.Issued.Unix(), TokenType: "refresh_token",
	}, nil
}

package tokenhandler

import (
	"context"
	"errors"
	"net/http"
	"strings"

	"github.com/tokengate/tokengate/internal/accesstoken"
	"github.com/tokengate/tokengate/internal/clients"
	"github.com/tokengate/tokengate/internal/refresh"
)

// introspection is an RFC 7662 answer: active, the token's claims (by
// their JWT names, as RFC 7662 §2.2 has them) and its type.
type introspection struct {
	Active bool `json:"active"`
	*accesstoken.Claims
	TokenType string `json:"token_type,omitempty"`
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
		return h.fail(w, err)
	}
	return writeJSON(w, http.StatusOK, ans)
}

func (h *Handler) introspect(ctx context.Context, client *clients.Config, token string) (introspection, error) {
	inactive := introspection{}
	mayRead := func(owner string) bool { return owner == client.ClientID || client.IntrospectAny }
	if isJWT(token) {
		c, err := h.verifier.Verify(ctx, token)
		if err != nil || !mayRead(c.ClientID) {
			return inactive, nil
		}
		return introspection{Active: true, Claims: c, TokenType: tokenType(c)}, nil
	}
	info, err := h.iss.Refresh.Lookup(ctx, token)
	if errors.Is(err, refresh.ErrInvalid) {
		return inactive, nil
	}
	if err != nil {
		return inactive, err
	}
	if !mayRead(info.ClientID) || h.iss.Clients.CutOff(info.ClientID, info.Issued.Unix()) {
		return inactive, nil
	}
	return introspection{Active: true, TokenType: "refresh_token", Claims: &accesstoken.Claims{
		ClientID: info.ClientID, Subject: info.ClientID, Scope: strings.Join(info.Scopes, " "),
		Audience: info.Audience, Issuer: h.iss.Config.Issuer, Expiry: info.Expires.Unix(), IssuedAt: info.Issued.Unix(),
	}}, nil
}

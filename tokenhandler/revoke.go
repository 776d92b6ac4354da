package tokenhandler

import (
	"errors"
	"net/http"
	"time"

	"go.uber.org/zap"

	"github.com/tokengate/tokengate/internal/metrics"
	"github.com/tokengate/tokengate/internal/refresh"
)

// serveRevoke answers POST /oauth/revoke (RFC 7009). A client may revoke
// only its own tokens; an unknown, invalid, expired or already revoked
// token is answered 200, as the RFC says. Revoking an access token denies
// its jti until it expires, on every instance; revoking a refresh token
// revokes its whole family and the access tokens issued with it.
//
// Another client's token is answered 200 too, and left alone. RFC 7009
// §2.1 lets the server refuse it (unauthorized_client), but that answer
// tells the caller the token is real and whose it is not, which an invalid
// token's 200 does not; a 200 tells nothing, and the token's owner, the
// only one who can revoke it, loses nothing.
func (h *Handler) serveRevoke(w http.ResponseWriter, r *http.Request) error {
	lr, client, done, err := h.lifecycleClient(w, r)
	if done || err != nil {
		return err
	}
	if isJWT(lr.token) {
		claims, err := h.verifier.Verify(r.Context(), lr.token)
		if err != nil {
			return revoked(w) // nothing valid to revoke
		}
		if claims.ClientID != client.ClientID {
			h.logger.Debug("revocation of another client's token ignored", zap.String("client_id", client.ClientID))
			return revoked(w)
		}
		if err := h.iss.Revocations.Revoke(r.Context(), claims.JTI, time.Unix(claims.Expiry, 0)); err != nil {
			return h.fail(w, err)
		}
		metrics.Revocations.WithLabelValues("access_token").Inc()
		h.logger.Info("access token revoked", zap.String("client_id", client.ClientID), zap.String("jti", claims.JTI))
		return revoked(w)
	}
	switch err := h.iss.Refresh.RevokeFamily(r.Context(), lr.token, client.ClientID); {
	case errors.Is(err, refresh.ErrForeign):
		h.logger.Debug("revocation of another client's token ignored", zap.String("client_id", client.ClientID))
		return revoked(w)
	case err == nil:
		metrics.Revocations.WithLabelValues("refresh_token").Inc()
		return revoked(w)
	case errors.Is(err, refresh.ErrInvalid):
		return revoked(w)
	default:
		return h.fail(w, err)
	}
}

func revoked(w http.ResponseWriter) error {
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(http.StatusOK)
	return nil
}

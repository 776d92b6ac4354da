package tokenhandler

import (
	"errors"
	"net/http"

	"go.uber.org/zap"

	"github.com/tokengate/tokengate/internal/clientauth"
	"github.com/tokengate/tokengate/internal/clients"
)

// authenticateAsymmetric authenticates a client by private_key_jwt
// (RFC 7523 §2.2) or by its TLS client certificate (RFC 8705 §2), both in
// internal/clientauth. With an assertion the client is the one it names
// (sub), and a client_id parameter, when sent, must agree. Failures count
// against the source address like wrong secrets; neither method costs a
// password hash, so there is no per-client count to keep.
func (h *Handler) authenticateAsymmetric(w http.ResponseWriter, r *http.Request, cr credentials) (*clients.Config, bool, error) {
	addr := sourceAddress(r)
	if wait, blocked := h.iss.AddressFailures.Blocked(addr); blocked {
		return nil, true, h.throttled(w, cr, addr, wait)
	}
	fail := func(reason string) (*clients.Config, bool, error) {
		h.iss.AddressFailures.Take(addr)
		h.logger.Debug("client assertion refused", zap.String("client_id", logID(cr.clientID)), zap.String("reason", reason))
		return nil, true, h.refuse(w, cr.clientID, errInvalidClient(false))
	}
	if cr.mtls {
		client, ok := h.iss.Clients.Get(cr.clientID)
		if !ok {
			return fail("unknown client")
		}
		method, err := h.iss.Assertions.VerifyTLS(cr.clientID, r.TLS)
		if err != nil {
			return fail(err.Error())
		}
		if !client.MayAuthenticate(method) {
			return fail("the client may not use " + method)
		}
		return client, false, nil
	}
	id, ok := clientauth.ClientID(cr.assertion)
	if !ok {
		return fail("malformed assertion")
	}
	if cr.clientID != "" && cr.clientID != id {
		return fail("client_id differs from the assertion's sub")
	}
	cr.clientID = id
	client, ok := h.iss.Clients.Get(id)
	if !ok {
		return fail("unknown client")
	}
	if !client.MayAuthenticate(clients.AuthPrivateKeyJWT) {
		return fail("the client may not use private_key_jwt")
	}
	switch err := h.iss.Assertions.Verify(r.Context(), id, cr.assertion); {
	case errors.Is(err, clientauth.ErrKeysUnavailable):
		// The client's jwks_uri was never fetched: the server cannot check
		// the assertion, and the client may be right. 503, not counted.
		return nil, true, h.refuse(w, id, errKeysUnavailable())
	case errors.Is(err, clientauth.ErrInvalid):
		return fail(err.Error())
	case err != nil:
		// The replay set could not be reached: 503 with Retry-After (the
		// assertion was not accepted, so the client may send it again).
		return nil, true, h.fail(w, err)
	}
	return client, false, nil
}

package tokenhandler

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/tokengate/tokengate/internal/state"
)

// oauthError is an RFC 6749 §5.2 error answer.
type oauthError struct {
	status      int
	Code        string `json:"error"`
	Description string `json:"error_description,omitempty"`
	// basic asks the client for Basic credentials (WWW-Authenticate), as
	// RFC 6749 §5.2 requires when the client tried the Authorization header.
	basic bool
	// retryAfter, in seconds, is sent with 429 and 503 answers.
	retryAfter int
	// dpopNonce is sent as DPoP-Nonce with use_dpop_nonce answers.
	dpopNonce string
}

func (e *oauthError) Error() string { return e.Code + ": " + e.Description }

func errInvalidRequest(desc string) *oauthError {
	return &oauthError{status: http.StatusBadRequest, Code: "invalid_request", Description: desc}
}

func errInvalidClient(basic bool) *oauthError {
	return &oauthError{status: http.StatusUnauthorized, Code: "invalid_client", Description: "client authentication failed", basic: basic}
}

// errBusy answers a request whose secret check found no free password hash
// slot in time: 503 (the server is short of capacity, the client did
// nothing wrong) with Retry-After.
func errBusy() *oauthError {
	return &oauthError{status: http.StatusServiceUnavailable, Code: "temporarily_unavailable", Description: "the server is busy; retry later", retryAfter: 1}
}

// errKeysUnavailable answers an assertion of a client whose jwks_uri was
// never fetched: 503 (the server cannot check it; the client may be right)
// with Retry-After, rather than an invalid_client that would send the
// client's operator looking for a fault in its keys.
func errKeysUnavailable() *oauthError {
	return &oauthError{status: http.StatusServiceUnavailable, Code: "temporarily_unavailable", Description: "the client's keys could not be fetched from its jwks_uri; retry later", retryAfter: 5}
}

// fail answers a request that failed for a reason of the server's: 503
// temporarily_unavailable with Retry-After when the issuer's state store
// (Redis) cannot be reached, so the client retries and nothing is reported
// as done; otherwise a 500 for the site's handle_errors.
func (h *Handler) fail(w http.ResponseWriter, err error) error {
	if errors.Is(err, state.ErrUnavailable) {
		h.logger.Warn("issuer state unavailable; answered 503", zap.Error(err))
		return h.writeError(w, &oauthError{status: http.StatusServiceUnavailable, Code: "temporarily_unavailable",
			Description: "the issuer's state store cannot be reached; retry later", retryAfter: 2})
	}
	return caddyhttp.Error(http.StatusInternalServerError, err)
}

func errInvalidGrant(desc string) *oauthError {
	return &oauthError{status: http.StatusBadRequest, Code: "invalid_grant", Description: desc}
}

func errUnauthorizedClient(desc string) *oauthError {
	return &oauthError{status: http.StatusBadRequest, Code: "unauthorized_client", Description: desc}
}

func errUnsupportedGrant(desc string) *oauthError {
	return &oauthError{status: http.StatusBadRequest, Code: "unsupported_grant_type", Description: desc}
}

func errInvalidScope(desc string) *oauthError {
	return &oauthError{status: http.StatusBadRequest, Code: "invalid_scope", Description: desc}
}

func errInvalidTarget(desc string) *oauthError {
	return &oauthError{status: http.StatusBadRequest, Code: "invalid_target", Description: desc}
}

// noStore marks an answer as not to be cached: token answers carry
// credentials, and error answers must not be replayed either.
func noStore(h http.Header) {
	h.Set("Cache-Control", "no-store")
	h.Set("Pragma", "no-cache")
}

// writeJSON writes v as the JSON body of an answer with the given status.
func writeJSON(w http.ResponseWriter, status int, v any) error {
	body, err := json.Marshal(v)
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, err = w.Write(body)
	return err
}

func (h *Handler) writeError(w http.ResponseWriter, e *oauthError) error {
	if o, ok := w.(*outcome); ok {
		o.code = e.Code
	}
	hdr := w.Header()
	noStore(hdr)
	if e.basic {
		hdr.Set("WWW-Authenticate", `Basic realm="`+h.realm+`", charset="UTF-8"`)
	}
	if e.retryAfter > 0 {
		hdr.Set("Retry-After", strconv.Itoa(e.retryAfter))
	}
	if e.dpopNonce != "" {
		hdr.Set("DPoP-Nonce", e.dpopNonce)
	}
	return writeJSON(w, e.status, e)
}

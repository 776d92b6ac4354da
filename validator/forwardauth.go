package validator

import (
	"errors"
	"net/http"

	"github.com/tokengate/tokengate/internal/accesstoken"
)

// forwardHeaders are the identity headers of a forward-auth answer and
// the placeholders that fill them.
var forwardHeaders = []struct{ header, placeholder string }{
	{"X-Auth-Subject", "id"},
	{"X-Auth-Client-Id", "client_id"},
	{"X-Auth-Scope", "scope"},
	{"X-Auth-Issuer", "iss"},
	{"X-Auth-Audience", "aud"},
	{"X-Auth-Expires", "exp"},
}

// answerForward answers an accepted request of a forward-auth endpoint:
// 200 with the identity headers and no body. nginx auth_request, Traefik
// forwardAuth and Envoy's HTTP ext_authz all read a 2xx (Envoy: 200) as
// "allow" and copy the headers they are told to onto the request they
// pass upstream. Refusals take deny's path: 401 or 403 with the RFC 6750
// challenge in WWW-Authenticate, which those proxies can return as is.
func (h *Handler) answerForward(w http.ResponseWriter, c *accesstoken.Claims) error {
	hd := w.Header()
	for _, f := range forwardHeaders {
		v, _ := placeholder(c, placeholderPrefix+f.placeholder)
		if s, _ := v.(string); s != "" {
			hd.Set(f.header, s)
		}
	}
	// A decision about one token: no cache in between may reuse it for
	// another.
	hd.Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	return nil
}

// validateForwardAuth checks the options that cannot work through a
// forward-auth endpoint; validate calls it.
func (h *Handler) validateForwardAuth() error {
	if h.ForwardAuth && h.Require != "" {
		// A DPoP proof names the method and URL of the request it goes
		// with, which the proxy's subrequest to this endpoint does not
		// carry (it has its own).
		return errors.New("forward_auth: cannot be combined with require (DPoP proofs name the original request, not the forward-auth subrequest)")
	}
	return nil
}

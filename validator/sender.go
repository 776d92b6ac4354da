package validator

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/tokengate/tokengate/internal/accesstoken"
	"github.com/tokengate/tokengate/internal/dpop"
)

// What a route may require of its tokens' sender constraint (`require`).
const (
	// RequireDPoP accepts only DPoP-bound tokens with a valid proof.
	RequireDPoP = "dpop"
	// RequireMTLS accepts only tokens bound to the TLS client certificate
	// of the request.
	RequireMTLS = "mtls"
	// RequireAny accepts only sender-constrained tokens, of any kind
	// tokengate checks.
	RequireAny = "any"
)

// Reasons of the sender-constraint step.
var (
	errBoundAsBearer    = errors.New("sender-constrained token presented as a bearer token")
	errUnbound          = errors.New("this resource requires a sender-constrained token")
	errNotDPoPBound     = errors.New("the DPoP scheme needs a DPoP-bound token")
	errUnknownBinding   = errors.New("token bound by an unsupported confirmation method")
	errOtherCertificate = errors.New("certificate-bound token presented without its TLS client certificate")
	errNoProof          = dpop.Invalid("one DPoP proof header is required with the DPoP scheme")
	errOtherKey         = dpop.Invalid("DPoP proof signed by another key than the token's")
)

// dpopNonceLifetime is how long a DPoP nonce of bearer_auth is accepted.
const dpopNonceLifetime = 5 * time.Minute

// routeNonces are the DPoP nonces of every bearer_auth route of the
// process when the key shared through Caddy's storage cannot be read
// (noncekey.go), so a nonce one route handed out is good at the others.
var routeNonces = sync.OnceValue(func() *dpop.Nonces { return dpop.NewNonces(dpopNonceLifetime) })

// provisionSender sets up the DPoP checker and the DPoP challenge.
func (h *Handler) provisionSender() error {
	cfg := dpop.Config{Now: func() time.Time { return h.now() }}
	if h.DPoPNonce {
		cfg.Nonces = h.nonces
		if cfg.Nonces == nil {
			cfg.Nonces = routeNonces()
		}
	}
	var err error
	if h.dpop, err = dpop.New(cfg); err != nil {
		return err
	}
	h.dpopChallenge = fmt.Sprintf(`DPoP realm="%s", algs="%s"`, h.Realm, strings.Join(h.dpop.Algs(), " "))
	return nil
}

// checkSender is the sender-constraint step of check: a token bound to a
// TLS client certificate (cnf.x5t#S256, RFC 8705 §3) must arrive over TLS
// with that certificate; a token bound to a DPoP key (cnf.jkt) must come
// with the DPoP scheme and a valid proof by its key (RFC 9449 §7); a token
// bound by any other method is refused; and a route that requires bound
// tokens refuses the others.
func (h *Handler) checkSender(r *http.Request, tok string, dpopScheme bool, c *accesstoken.Claims) error {
	cf := c.Confirmation
	if cf == nil {
		switch {
		case h.Require != "":
			return errUnbound
		case dpopScheme:
			return errNotDPoPBound
		}
		return nil
	}
	if cf.Other || (cf.JKT == "" && cf.X5T == "") {
		// A binding this gate cannot check must not make the token a
		// bearer token.
		return errUnknownBinding
	}
	switch h.Require {
	case RequireDPoP:
		if cf.JKT == "" {
			return errUnbound
		}
	case RequireMTLS:
		if cf.X5T == "" {
			return errUnbound
		}
	}
	if cf.X5T != "" {
		if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 || accesstoken.X5T(r.TLS.PeerCertificates[0]) != cf.X5T {
			return errOtherCertificate
		}
	}
	if cf.JKT == "" {
		if dpopScheme {
			return errNotDPoPBound
		}
		return nil
	}
	if !dpopScheme {
		return errBoundAsBearer
	}
	proofs := r.Header.Values("DPoP")
	if len(proofs) != 1 {
		return errNoProof
	}
	p, err := h.dpop.Check(proofs[0], dpop.Request{Method: r.Method, URL: requestURL(r), AccessToken: tok})
	if err != nil {
		return err
	}
	if p.JKT != cf.JKT {
		return errOtherKey
	}
	return nil
}

// requestURL is the URL the client sent the request to, as a DPoP proof's
// htu names it: the scheme of the connection Caddy received (https when it
// terminated TLS), the Host header, and the path before any rewrite by
// earlier handlers (uri strip_prefix, handle_path).
func requestURL(r *http.Request) string {
	orig := r
	if or, ok := r.Context().Value(caddyhttp.OriginalRequestCtxKey).(http.Request); ok {
		orig = &or
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host + orig.URL.EscapedPath()
}

// usesDPoP reports whether a refusal's challenge is the DPoP one: the
// route requires DPoP, the request used the DPoP scheme, or the reason is
// about DPoP.
func (h *Handler) usesDPoP(r *http.Request, reason error) bool {
	if h.Require == RequireDPoP || h.Require == RequireAny {
		return true
	}
	var de *dpop.Error
	if errors.As(reason, &de) || reason == errBoundAsBearer {
		return true
	}
	auth := r.Header.Get("Authorization")
	return len(auth) >= 5 && strings.EqualFold(auth[:5], "dpop ")
}

package tokenhandler

import (
	"errors"
	"net/http"

	"github.com/tokengate/tokengate/internal/accesstoken"
	"github.com/tokengate/tokengate/internal/clientauth"
	"github.com/tokengate/tokengate/internal/clients"
	"github.com/tokengate/tokengate/internal/dpop"
)

// binding returns what a token request's tokens are bound to: the key of
// its DPoP proof (RFC 9449 §5), the client certificate it authenticated
// with (mtls, RFC 8705 §3), both, or neither (nil: a bearer token). A proof
// must be made for POST to the token endpoint's URL as the metadata names
// it. A client whose tokens must be bound is refused without the binding
// it requires.
func (h *Handler) binding(r *http.Request, client *clients.Config, mtls bool) (*accesstoken.Confirmation, *oauthError) {
	cnf := &accesstoken.Confirmation{}
	if mtls {
		cnf.X5T = accesstoken.X5T(clientauth.PeerCertificate(r.TLS))
	}
	proofs := r.Header.Values("DPoP")
	switch rb := client.RequireBinding; {
	case len(proofs) == 0 && (rb == clients.BindingDPoP || rb == clients.BindingAny && !mtls):
		return nil, errInvalidDPoPProof("this client's tokens must be DPoP-bound: send a DPoP proof")
	case rb == clients.BindingMTLS && !mtls:
		return nil, errInvalidRequest("this client's tokens must be certificate-bound: authenticate with its TLS client certificate")
	case len(proofs) > 1:
		return nil, errInvalidDPoPProof("more than one DPoP header")
	case len(proofs) == 0 && mtls:
		return cnf, nil
	case len(proofs) == 0:
		return nil, nil
	}
	p, err := h.dpop.Check(proofs[0], dpop.Request{Method: r.Method, URL: h.tokenURL})
	if err != nil {
		var de *dpop.Error
		if !errors.As(err, &de) {
			return nil, errInvalidDPoPProof("invalid DPoP proof")
		}
		oe := &oauthError{status: http.StatusBadRequest, Code: de.Code, Description: de.Error()}
		if err == dpop.ErrUseNonce {
			oe.dpopNonce = h.dpop.Nonces().Issue(h.iss.Now())
		}
		return nil, oe
	}
	cnf.JKT = p.JKT
	return cnf, nil
}

// tokenType is the token_type of an access token (RFC 9449 §5.1): DPoP for
// a token bound to a DPoP key, Bearer otherwise.
func tokenType(c *accesstoken.Claims) string {
	if c.Confirmation != nil && c.Confirmation.JKT != "" {
		return "DPoP"
	}
	return "Bearer"
}

func errInvalidDPoPProof(desc string) *oauthError {
	return &oauthError{status: http.StatusBadRequest, Code: "invalid_dpop_proof", Description: desc}
}

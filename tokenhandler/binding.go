package tokenhandler

import (
	"errors"
	"net/http"

	"github.com/tokengate/tokengate/internal/accesstoken"
	"github.com/tokengate/tokengate/internal/clients"
	"github.com/tokengate/tokengate/internal/dpop"
)

// binding returns what a token request's tokens are bound to: the key of
// its DPoP proof (RFC 9449 §5), or nil for a bearer token. A proof must be
// made for POST to the token endpoint's URL as the metadata names it; a
// client whose tokens must be bound is refused without one.
func (h *Handler) binding(r *http.Request, client *clients.Config) (*accesstoken.Confirmation, *oauthError) {
	proofs := r.Header.Values("DPoP")
	switch len(proofs) {
	case 0:
		if client.RequireBinding != "" {
			return nil, errInvalidDPoPProof("this client's tokens must be DPoP-bound: send a DPoP proof")
		}
		return nil, nil
	case 1:
	default:
		return nil, errInvalidDPoPProof("more than one DPoP header")
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
	return &accesstoken.Confirmation{JKT: p.JKT}, nil
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

package tokenhandler

import (
	"encoding/json"
	"net/http"
	"strconv"
)

// serveJWKS answers the public key set. It never holds private parts: it is
// built from the keys' public halves only.
func (h *Handler) serveJWKS(w http.ResponseWriter, r *http.Request) error {
	return h.servePublic(w, r, h.iss.Keys.JWKS())
}

// serveMetadata answers the RFC 8414 authorization server metadata.
func (h *Handler) serveMetadata(w http.ResponseWriter, r *http.Request) error {
	body, err := json.Marshal(h.iss.Metadata())
	if err != nil {
		return err
	}
	return h.servePublic(w, r, body)
}

func (h *Handler) servePublic(w http.ResponseWriter, r *http.Request, body []byte) error {
	hdr := w.Header()
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		hdr.Set("Allow", "GET, HEAD")
		return h.writeError(w, &oauthError{status: http.StatusMethodNotAllowed, Code: "invalid_request", Description: "only GET and HEAD are allowed"})
	}
	hdr.Set("Content-Type", "application/json")
	hdr.Set("Content-Length", strconv.Itoa(len(body)))
	hdr.Set("Cache-Control", "public, max-age="+strconv.Itoa(int(publicMaxAge.Seconds())))
	hdr.Set("Access-Control-Allow-Origin", "*")
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodHead {
		return nil
	}
	_, err := w.Write(body)
	return err
}

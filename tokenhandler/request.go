package tokenhandler

import (
	"errors"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"

	"github.com/tokengate/tokengate/internal/clientauth"
	"github.com/tokengate/tokengate/internal/clients"
)

// maxBodyBytes caps a token request body; real requests are a few hundred
// bytes.
const maxBodyBytes = 64 << 10

// tokenRequest is a token request's parameters and client credentials.
type tokenRequest struct {
	grantType    string
	scope        string
	hasScope     bool
	resources    []string
	refreshToken string

	credentials
}

// credentials are what a client presented to authenticate itself.
type credentials struct {
	clientID     string
	clientSecret string
	// basic is true when the client tried the Authorization header.
	basic bool
	// noCredentials is true when the client sent no credentials at all.
	noCredentials bool
	// assertion is a private_key_jwt client assertion (RFC 7523 §2.2).
	assertion string
	// mtls is true when the client sent only its client_id over a TLS
	// connection with a client certificate (RFC 8705 §2).
	mtls bool
}

// Parameters that carry credentials must not appear in the URL, where
// access logs and proxies keep them.
var bodyOnly = []string{"client_id", "client_secret", "refresh_token", "client_assertion"}

// parseTokenRequest reads a token request. grant_type, scope and resource
// may come from the query string (as the README's curl example sends
// grant_type) or from the form body (RFC 6749); a parameter given twice, or in both places
// with different values, is refused (RFC 6749 §3.2). resource (RFC 8707) may
// repeat.
func parseTokenRequest(w http.ResponseWriter, r *http.Request) (*tokenRequest, *oauthError) {
	query, body, oe := readParams(w, r, bodyOnly, "resource")
	if oe != nil {
		return nil, oe
	}
	tr := new(tokenRequest)
	if tr.grantType, oe = param(query, body, "grant_type"); oe != nil {
		return nil, oe
	}
	if tr.grantType == "client_credential" {
		// A common misspelling, accepted (the README says so).
		tr.grantType = "client_credentials"
	}
	if tr.scope, oe = param(query, body, "scope"); oe != nil {
		return nil, oe
	}
	tr.hasScope = query.Has("scope") || body.Has("scope")
	if query.Has("resource") && body.Has("resource") {
		return nil, errInvalidRequest("resource given in both the URL and the body")
	}
	tr.resources = append(query["resource"], body["resource"]...)
	tr.refreshToken = body.Get("refresh_token")
	if tr.credentials, oe = clientCredentials(r, body); oe != nil {
		return nil, oe
	}
	return tr, nil
}

// readParams reads a request's query string and form body. A parameter
// named in bodyOnly is refused in the URL, and any parameter but repeatable
// is refused when given twice in the same place (RFC 6749 §3.2).
func readParams(w http.ResponseWriter, r *http.Request, bodyOnly []string, repeatable string) (query, body url.Values, oe *oauthError) {
	query, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return nil, nil, errInvalidRequest("malformed query string")
	}
	for _, name := range bodyOnly {
		if query.Has(name) {
			return nil, nil, errInvalidRequest(name + " must be sent in the request body, not the URL")
		}
	}
	if body, oe = readForm(w, r); oe != nil {
		return nil, nil, oe
	}
	for _, vals := range []url.Values{query, body} {
		for name, v := range vals {
			if len(v) > 1 && name != repeatable {
				return nil, nil, errInvalidRequest("parameter " + name + " is repeated")
			}
		}
	}
	return query, body, nil
}

// readForm reads an application/x-www-form-urlencoded body, capped at
// maxBodyBytes. An empty body (the README's curl example sends none) is
// fine.
func readForm(w http.ResponseWriter, r *http.Request) (url.Values, *oauthError) {
	if r.Body == nil || r.Body == http.NoBody {
		return url.Values{}, nil
	}
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return nil, &oauthError{status: http.StatusRequestEntityTooLarge, Code: "invalid_request", Description: "request body too large"}
		}
		return nil, errInvalidRequest("reading request body failed")
	}
	if len(data) == 0 {
		return url.Values{}, nil
	}
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/x-www-form-urlencoded" {
		return nil, errInvalidRequest("the body must be application/x-www-form-urlencoded")
	}
	vals, err := url.ParseQuery(string(data))
	if err != nil {
		return nil, errInvalidRequest("malformed form body")
	}
	return vals, nil
}

// param returns a single-valued parameter from the query or the body.
func param(query, body url.Values, name string) (string, *oauthError) {
	q, b := query.Get(name), body.Get(name)
	if query.Has(name) && body.Has(name) && q != b {
		return "", errInvalidRequest(name + " differs between the URL and the body")
	}
	if q != "" {
		return q, nil
	}
	return b, nil
}

// clientCredentials reads client_secret_basic or client_secret_post
// credentials; a request may use only one method.
func clientCredentials(r *http.Request, body url.Values) (credentials, *oauthError) {
	authz := r.Header.Get("Authorization")
	if body.Has("client_assertion") || body.Has("client_assertion_type") {
		if authz != "" || body.Has("client_secret") {
			return credentials{}, errInvalidRequest("use one client authentication method: a client assertion, Basic or client_secret, not several")
		}
		if body.Get("client_assertion_type") != clientauth.AssertionType {
			return credentials{}, errInvalidRequest("client_assertion_type must be " + clientauth.AssertionType)
		}
		if body.Get("client_assertion") == "" {
			return credentials{}, errInvalidRequest("client_assertion is required with client_assertion_type")
		}
		return credentials{clientID: body.Get("client_id"), assertion: body.Get("client_assertion")}, nil
	}
	if authz == "" {
		if body.Has("client_secret") {
			return credentials{clientID: body.Get("client_id"), clientSecret: body.Get("client_secret")}, nil
		}
		if body.Get("client_id") != "" && clientauth.PeerCertificate(r.TLS) != nil {
			return credentials{clientID: body.Get("client_id"), mtls: true}, nil
		}
		return credentials{noCredentials: true}, nil
	}
	id, secret, ok := parseBasic(authz)
	if !ok {
		return credentials{}, errInvalidClient(true)
	}
	if body.Has("client_secret") {
		return credentials{}, errInvalidRequest("use one client authentication method: Basic or client_secret in the body, not both")
	}
	if body.Has("client_id") && body.Get("client_id") != id {
		return credentials{}, errInvalidRequest("client_id in the body differs from the Basic credentials")
	}
	return credentials{clientID: id, clientSecret: secret, basic: true}, nil
}

// parseBasic decodes client_secret_basic credentials. RFC 6749 §2.3.1 has
// clients form-urlencode id and secret before Basic encoding (as
// golang.org/x/oauth2 does); a hand-made `echo -n id:secret | base64`
// does not. Decoding both ways agrees for ids and secrets made of unreserved
// characters; a value that is not valid form-encoding is taken as is.
func parseBasic(header string) (id, secret string, ok bool) {
	r := http.Request{Header: http.Header{"Authorization": {header}}}
	rawID, rawSecret, ok := r.BasicAuth()
	if !ok || rawID == "" {
		return "", "", false
	}
	return formDecode(rawID), formDecode(rawSecret), true
}

func formDecode(s string) string {
	if !strings.ContainsAny(s, "%+") {
		return s
	}
	if d, err := url.QueryUnescape(s); err == nil {
		return d
	}
	return s
}

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

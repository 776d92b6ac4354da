// Package tokenhandler serves an issuer's HTTP endpoints: the token
// endpoint (token.go), revocation (revoke.go), introspection
// (introspect.go), the JWKS and the RFC 8414 metadata (wellknown.go).
package tokenhandler

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/tokengate/tokengate/internal/accesstoken"
	"github.com/tokengate/tokengate/internal/dpop"
	"github.com/tokengate/tokengate/internal/issuer"
	"github.com/tokengate/tokengate/internal/metrics"
)

func init() {
	caddy.RegisterModule(Handler{})
}

// Handler serves the endpoints of one issuer of the tokengate app, below
// the path of its issuer URL (for `issuer https://auth.example.com` at the
// root):
//
//   - POST /oauth/token: the token endpoint (client_credentials and
//     refresh_token grants, RFC 6749), answering JSON with
//     `Cache-Control: no-store`
//   - GET /.well-known/jwks.json: the public signing keys (RFC 7517)
//   - GET /.well-known/oauth-authorization-server: the metadata (RFC 8414)
//   - POST /oauth/revoke: token revocation (RFC 7009)
//   - POST /oauth/introspect: token introspection (RFC 7662)
//
// Other requests pass to the next handler, so the directive can sit in a
// site beside other routes.
type Handler struct {
	// Issuer is the name of the `oauth_issuer` whose endpoints are served.
	// Default: "default".
	Issuer string `json:"issuer,omitempty"`

	iss      *issuer.Issuer
	verifier *accesstoken.Verifier // the issuer's own tokens, any audience
	dpop     *dpop.Checker         // DPoP proofs at the token endpoint
	logger   *zap.Logger
	realm    string

	tokenURL                                        string // the token endpoint's URL, a DPoP proof's htu
	tokenPath, jwksPath, revokePath, introspectPath string
	metadataPaths                                   []string
}

// CaddyModule returns the Caddy module information.
func (Handler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.oauth_token",
		New: func() caddy.Module { return new(Handler) },
	}
}

// Provision finds the issuer in the tokengate app.
func (h *Handler) Provision(ctx caddy.Context) error {
	h.logger = ctx.Logger()
	metrics.Register(ctx.GetMetricsRegistry())
	var err error
	if h.iss, err = issuer.Lookup(ctx, h.Issuer); err != nil {
		return err
	}
	u, err := url.Parse(h.iss.Config.BaseURL())
	if err != nil {
		return fmt.Errorf("issuer URL: %v", err)
	}
	base := u.Path
	h.tokenPath = base + issuer.TokenPath
	h.jwksPath = base + issuer.JWKSPath
	h.revokePath = base + issuer.RevokePath
	h.introspectPath = base + issuer.IntrospectPath
	// Revocation and introspection take the issuer's tokens for any
	// resource, with the default leeway, so that "active" means what every
	// bearer_auth route of this issuer accepts.
	vc := h.iss.VerifierConfig()
	vc.AnyAudience = true
	h.verifier = accesstoken.NewVerifier(vc)
	// RFC 8414 §3.1 puts the well-known segment before the issuer's path;
	// the path below the issuer is served too, as many clients look there.
	h.metadataPaths = []string{issuer.MetadataPath + base, base + issuer.MetadataPath}
	h.realm = strings.NewReplacer(`"`, "", `\`, "").Replace(h.iss.Config.Issuer)
	h.tokenURL = h.iss.Config.BaseURL() + issuer.TokenPath
	if h.dpop, err = dpop.New(dpop.Config{Now: func() time.Time { return h.iss.Now() }}); err != nil {
		return err
	}
	return nil
}

// ServeHTTP answers the issuer's endpoints and passes anything else on.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	switch p := r.URL.Path; {
	case p == h.tokenPath:
		return h.serveToken(w, r)
	case p == h.jwksPath:
		return h.serveJWKS(w, r)
	case p == h.revokePath:
		return h.serveRevoke(w, r)
	case p == h.introspectPath:
		return h.serveIntrospect(w, r)
	case p == h.metadataPaths[0] || p == h.metadataPaths[1]:
		return h.serveMetadata(w, r)
	}
	return next.ServeHTTP(w, r)
}

// publicMaxAge is how long clients may cache the JWKS and the metadata. It
// is shorter than the lead with which a new signing key is published.
const publicMaxAge = 5 * time.Minute

// Interface guards
var (
	_ caddy.Provisioner           = (*Handler)(nil)
	_ caddyhttp.MiddlewareHandler = (*Handler)(nil)
)

package validator

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/tokengate/tokengate/internal/accesstoken"
)

// TrustedIssuer is one of the issuers a route with several accepts
// (Handler.Issuers).
type TrustedIssuer struct {
	// Issuer is the issuer: a local issuer's name or URL, or a remote
	// issuer's URL, as Handler.Issuer. Required.
	Issuer string `json:"issuer"`
	// JWKSURL is the remote issuer's JWK set when it offers no discovery,
	// as Handler.JWKSURL. Default: found by discovery.
	JWKSURL string `json:"jwks_url,omitempty"`
	// Audience lists the audiences accepted in this issuer's tokens.
	// Default: the route's audience (required for a remote issuer when
	// the route has none).
	Audience []string `json:"audience,omitempty"`
}

// validateIssuers checks the Issuers option; validate calls it.
func (h *Handler) validateIssuers() error {
	if len(h.Issuers) == 0 {
		return nil
	}
	if h.Issuer != "" || h.JWKSURL != "" {
		return errors.New("issuer: one issuer line and issuer blocks cannot be mixed; give each issuer a block")
	}
	seen := map[string]bool{}
	for _, ti := range h.Issuers {
		if ti.Issuer == "" {
			return errors.New("issuer: empty issuer")
		}
		if seen[ti.Issuer] {
			return fmt.Errorf("issuer %q: listed twice", ti.Issuer)
		}
		seen[ti.Issuer] = true
		for _, a := range ti.Audience {
			if a == "" {
				return fmt.Errorf("issuer %q: audience: empty value", ti.Issuer)
			}
		}
	}
	return nil
}

// provisionIssuers sets up one verifier per issuer, each with the route's
// options and its own audience. A token is verified only with the keys of
// the issuer its iss names (issuerOf), so a token of one issuer is never
// checked against another's keys, nor accepted for another's audience.
func (h *Handler) provisionIssuers(ctx caddy.Context) error {
	h.byIss = make(map[string]*Handler, len(h.Issuers))
	for _, ti := range h.Issuers {
		one := &Handler{
			Issuer:          ti.Issuer,
			JWKSURL:         ti.JWKSURL,
			Audience:        ti.Audience,
			Leeway:          h.Leeway,
			RequireTyp:      h.RequireTyp,
			RefreshInterval: h.RefreshInterval,
			logger:          h.logger,
			now:             h.now,
			noCache:         h.noCache,
		}
		if len(one.Audience) == 0 {
			one.Audience = h.Audience
		}
		if err := one.provisionCommon(); err != nil {
			return err
		}
		if err := one.provisionIssuer(ctx); err != nil {
			_ = h.Cleanup()
			return fmt.Errorf("issuer %q: %v", ti.Issuer, err)
		}
		if _, dup := h.byIss[one.iss]; dup {
			_ = one.Cleanup()
			_ = h.Cleanup()
			return fmt.Errorf("issuer %q: the issuer %q is listed twice", ti.Issuer, one.iss)
		}
		h.byIss[one.iss] = one
	}
	if h.now == nil {
		for _, one := range h.byIss {
			h.now = one.now
			break
		}
	}
	return nil
}

// issuerOf returns the route's handler for the token's issuer: the route
// itself when it trusts one issuer, else the one its iss names.
//
// The iss is read before the signature is checked, only to choose which
// keys to check it with: the chosen issuer's verifier then requires the
// verified claims to name exactly that issuer, so a payload that names one
// issuer to this peek and another to the strict parser (a duplicate or
// case-varied member) is refused, never verified with the wrong keys.
func (h *Handler) issuerOf(tok string) (*Handler, error) {
	if h.byIss == nil {
		return h, nil
	}
	if len(tok) > accesstoken.MaxTokenSize {
		return nil, accesstoken.ErrTooLarge
	}
	parts := strings.SplitN(tok, ".", 4)
	if len(parts) != 3 {
		return nil, accesstoken.ErrMalformed
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return nil, accesstoken.ErrMalformed
	}
	var peek struct {
		Iss string `json:"iss"`
	}
	if json.Unmarshal(payload, &peek) != nil {
		return nil, accesstoken.ErrBadClaims
	}
	one, ok := h.byIss[peek.Iss]
	if !ok {
		return nil, accesstoken.ErrIssuer
	}
	return one, nil
}

// unmarshalIssuer reads an `issuer` line: `issuer <name|url>` alone, or
// `issuer <name|url> { audience …; jwks_url … }`, one block per issuer of
// a route that trusts several.
func (h *Handler) unmarshalIssuer(d *caddyfile.Dispenser, seen map[string]bool) error {
	if !d.NextArg() {
		return d.ArgErr()
	}
	ti := TrustedIssuer{Issuer: d.Val()}
	block := false
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		block = true
		switch opt := d.Val(); opt {
		case "audience":
			vals := d.RemainingArgs()
			if len(vals) == 0 {
				return d.ArgErr()
			}
			ti.Audience = append(ti.Audience, vals...)
		case "jwks_url":
			if ti.JWKSURL != "" {
				return d.Errf("jwks_url: specified more than once")
			}
			if !d.AllArgs(&ti.JWKSURL) {
				return d.ArgErr()
			}
		default:
			return d.Errf("unrecognized option %q in an issuer block (audience, jwks_url)", opt)
		}
	}
	if !block {
		if d.NextArg() {
			return d.ArgErr()
		}
		if seen["issuer"] {
			return d.Errf("issuer: specified more than once (several issuers: give each a block)")
		}
		seen["issuer"] = true
		h.Issuer = ti.Issuer
		return nil
	}
	h.Issuers = append(h.Issuers, ti)
	return nil
}

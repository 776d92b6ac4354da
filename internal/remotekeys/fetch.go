package remotekeys

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/tokengate/tokengate/internal/localissuer"
)

// discoveryURLs are where an issuer's metadata may be: RFC 8414 (the
// well-known segment goes between host and path) and OpenID Connect
// Discovery (appended to the issuer URL).
func discoveryURLs(issuer string) []string {
	u, err := url.Parse(issuer)
	if err != nil {
		return nil
	}
	path := strings.TrimSuffix(u.Path, "/")
	oauth := *u
	oauth.Path = "/.well-known/oauth-authorization-server" + path
	oauth.RawPath = ""
	oidc := *u
	oidc.Path = path + "/.well-known/openid-configuration"
	oidc.RawPath = ""
	return []string{oauth.String(), oidc.String()}
}

// discover finds the issuer's jwks_uri in its metadata, which must name
// the configured issuer exactly.
func (f *Fetcher) discover(ctx context.Context) (string, error) {
	var errs []error
	for _, mu := range discoveryURLs(f.issuer) {
		body, err := f.get(ctx, mu)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %v", mu, err))
			continue
		}
		var md struct {
			Issuer  string `json:"issuer"`
			JWKSURI string `json:"jwks_uri"`
		}
		if err := json.Unmarshal(body, &md); err != nil {
			errs = append(errs, fmt.Errorf("%s: decoding metadata: %v", mu, err))
			continue
		}
		if md.Issuer != f.issuer {
			errs = append(errs, fmt.Errorf("%s: metadata names issuer %q, not %q", mu, md.Issuer, f.issuer))
			continue
		}
		if err := CheckJWKSURL(f.issuer, md.JWKSURI); err != nil {
			errs = append(errs, fmt.Errorf("%s: jwks_uri: %v", mu, err))
			continue
		}
		return md.JWKSURI, nil
	}
	return "", fmt.Errorf("discovering the issuer's metadata: %w", errors.Join(errs...))
}

// NoRedirects keeps the fetcher on the URLs it was given. Following a
// redirect would let whoever controls the issuer's path (or a compromised
// page under it) point the key set at a host of their choosing, and the
// review had tokens signed by such a host accepted; the 3xx answer is
// returned as is and refused by get.
func NoRedirects(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

// CheckJWKSURL checks a key set URL, configured or discovered: absolute
// http(s), and https when the issuer is, since keys fetched in the clear
// can be swapped by anyone on the path and would undo the issuer's TLS.
func CheckJWKSURL(issuer, jwksURL string) error {
	if err := CheckHTTPURL(jwksURL); err != nil {
		return err
	}
	if strings.HasPrefix(issuer, "https://") && !strings.HasPrefix(jwksURL, "https://") {
		return fmt.Errorf("%q is not https, and the issuer is", jwksURL)
	}
	return nil
}

// get fetches a document of at most MaxFetchSize bytes.
func (f *Fetcher) get(ctx context.Context, u string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := f.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
		if resp.StatusCode >= 300 && resp.StatusCode < 400 {
			return nil, fmt.Errorf("status %d: redirects are not followed", resp.StatusCode)
		}
		return nil, fmt.Errorf("status %d", resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, MaxFetchSize+1))
	if err != nil {
		return nil, err
	}
	if len(body) > MaxFetchSize {
		return nil, fmt.Errorf("document larger than %d bytes", MaxFetchSize)
	}
	return body, nil
}

// CheckHTTPURL checks that s is an absolute http(s) URL without fragment.
func CheckHTTPURL(s string) error {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.Fragment != "" {
		return fmt.Errorf("%q is not an absolute http(s) URL", s)
	}
	return nil
}

// CheckClientJWKSURL checks the jwks_uri a client registers: an absolute
// https URL, or plain http to this machine (localhost, a loopback
// address). The keys it serves authenticate the client, so keys fetched in
// the clear over a network could be swapped by anyone on the path, who
// would then get the client's tokens. The rule is bearer_auth's for an
// https issuer's keys, with loopback allowed as bearer_auth allows (with no
// warning) a plain http issuer on loopback.
func CheckClientJWKSURL(s string) error {
	if err := CheckHTTPURL(s); err != nil {
		return err
	}
	u, _ := url.Parse(s)
	if u.User != nil {
		return fmt.Errorf("%q must not hold user info", s)
	}
	if u.Scheme == "http" && !localissuer.IsLoopbackHost(u.Hostname()) {
		return fmt.Errorf("%q is plain http: https is required unless the host is this machine (localhost, 127.0.0.1, ::1)", s)
	}
	return nil
}

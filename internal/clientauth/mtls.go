package clientauth

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"slices"

	"github.com/tokengate/tokengate/internal/accesstoken"
	"github.com/tokengate/tokengate/internal/clients"
)

// Mutual-TLS client authentication (RFC 8705 §2) uses the client
// certificate of the connection, as Caddy's TLS `client_auth` received it:
//
//   - tls_client_auth: Caddy verified the certificate's chain to a CA of
//     its trust pool (mode verify_if_given or require_and_verify), and its
//     subject DN or a DNS SAN is the one the client registered;
//   - self_signed_tls_client_auth: the certificate is one the client
//     registered (tls_certificate), compared by SHA-256 thumbprint. Caddy
//     must let it through: mode request, or the certificate in the trust
//     pool.
//
// Tokens issued over such a connection carry the certificate's thumbprint
// (cnf.x5t#S256, RFC 8705 §3), and bearer_auth accepts them only over TLS
// with the same certificate.

// Mutual-TLS client authentication methods (RFC 8705 §2.1.1, §2.2.1).
const (
	MethodTLS           = clients.AuthTLS
	MethodSelfSignedTLS = clients.AuthSelfSignedTLS
)

// ErrNoCertificate is returned for a connection without a client
// certificate.
var ErrNoCertificate = errors.New("no TLS client certificate")

// PeerCertificate is the client certificate of a TLS connection, or nil.
func PeerCertificate(state *tls.ConnectionState) *x509.Certificate {
	if state == nil || len(state.PeerCertificates) == 0 {
		return nil
	}
	return state.PeerCertificates[0]
}

// tlsClient is what a client registered for mutual-TLS authentication.
type tlsClient struct {
	subjectDN, sanDNS string
	thumbprints       []string // self-signed certificates
}

// loadTLS reads a client's mutual-TLS registration; nil when it has none.
func loadTLS(c *clients.Config) (*tlsClient, error) {
	if c.TLSClientAuthSubjectDN == "" && c.TLSClientAuthSANDNS == "" && c.TLSCertificate == "" {
		return nil, nil
	}
	t := &tlsClient{subjectDN: c.TLSClientAuthSubjectDN, sanDNS: c.TLSClientAuthSANDNS}
	if c.TLSCertificate != "" {
		err := eachPEM(c.TLSCertificate, func(b *pem.Block) error {
			if b.Type != "CERTIFICATE" {
				return fmt.Errorf("a %s block (only CERTIFICATE blocks)", b.Type)
			}
			cert, err := x509.ParseCertificate(b.Bytes)
			if err != nil {
				return err
			}
			t.thumbprints = append(t.thumbprints, accesstoken.X5T(cert))
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("tls_certificate %q: %v", c.TLSCertificate, err)
		}
		if len(t.thumbprints) == 0 {
			return nil, fmt.Errorf("tls_certificate %q: no certificate", c.TLSCertificate)
		}
	}
	return t, nil
}

// VerifyTLS authenticates client id by the client certificate of the
// connection and returns the method that matched (MethodTLS or
// MethodSelfSignedTLS). It returns ErrInvalid (wrapped) when the client
// registered no mutual-TLS method or the certificate does not match.
func (v *Verifier) VerifyTLS(id string, state *tls.ConnectionState) (string, error) {
	t, ok := v.tls[id]
	if !ok {
		return "", fmt.Errorf("%w: the client registered no TLS client authentication", ErrInvalid)
	}
	cert := PeerCertificate(state)
	if cert == nil {
		return "", fmt.Errorf("%w: %v", ErrInvalid, ErrNoCertificate)
	}
	if slices.Contains(t.thumbprints, accesstoken.X5T(cert)) {
		return MethodSelfSignedTLS, nil
	}
	if len(state.VerifiedChains) == 0 {
		return "", fmt.Errorf("%w: the certificate's chain was not verified by Caddy's TLS client_auth", ErrInvalid)
	}
	if (t.subjectDN != "" && cert.Subject.String() == t.subjectDN) || (t.sanDNS != "" && slices.Contains(cert.DNSNames, t.sanDNS)) {
		return MethodTLS, nil
	}
	return "", fmt.Errorf("%w: the certificate's subject does not match", ErrInvalid)
}

// Methods lists the mutual-TLS methods some client registered, for the
// metadata.
func (v *Verifier) Methods() []string {
	var tlsAuth, selfSigned bool
	for _, t := range v.tls {
		tlsAuth = tlsAuth || t.subjectDN != "" || t.sanDNS != ""
		selfSigned = selfSigned || len(t.thumbprints) > 0
	}
	var out []string
	if tlsAuth {
		out = append(out, MethodTLS)
	}
	if selfSigned {
		out = append(out, MethodSelfSignedTLS)
	}
	return out
}

// Package testidp runs a real OpenID provider that nobody here wrote for
// tests: github.com/zitadel/oidc/v3's op package, as its example server
// sets it up (exampleop.SetupServer over the example's in-memory storage),
// on an httptest server. Its own storage wraps the example's to add what
// the tests need: a client_credentials client whose access tokens are JWTs
// carrying Keycloak-style nested roles, and a signing key that rotates.
//
// It is a test dependency only: nothing outside tests imports it.
package testidp

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/go-jose/go-jose/v4"
	"github.com/zitadel/oidc/v3/example/server/exampleop"
	exstorage "github.com/zitadel/oidc/v3/example/server/storage"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
)

// The client_credentials client whose access tokens are JWTs, and what
// they carry.
const (
	ClientID     = "reports-svc"
	ClientSecret = "reports-secret"
	// Audience is the aud of the JWT access tokens.
	Audience = "reports-api"
	// Role is in the tokens' realm_access.roles, as Keycloak puts it.
	Role = "reports-admin"

	// OpaqueClientID and OpaqueSecret are the example's service user,
	// whose access tokens are opaque.
	OpaqueClientID = "sid1"
	OpaqueSecret   = "verysecret"
	OpaqueSubject  = "id1"
	// GateSecret authenticates the gate, as client Audience, to the
	// introspection endpoint.
	GateSecret = "gate-secret"
)

// Provider is a running zitadel OpenID provider.
type Provider struct {
	// URL is the issuer: the provider's base URL.
	URL string
	// JWKSHits counts the requests for its key set.
	JWKSHits atomic.Int64
	// OnIntrospect, when set before requests are made, is called for each
	// request to the introspection endpoint.
	OnIntrospect func()

	st *storage
}

// Start runs the provider until the test ends.
func Start(t testing.TB) *Provider {
	t.Helper()
	p := &Provider{}
	srv := httptest.NewUnstartedServer(nil)
	p.URL = "http://" + srv.Listener.Addr().String()
	p.st = &storage{Storage: exstorage.NewStorage(exstorage.NewUserStore(p.URL)), issuer: p.URL}
	p.st.rotate()
	quiet := slog.New(slog.NewTextHandler(discard{}, nil))
	router := exampleop.SetupServer(p.URL, p.st, quiet, false)
	srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/keys":
			p.JWKSHits.Add(1)
		case "/oauth/introspect":
			if p.OnIntrospect != nil {
				p.OnIntrospect()
			}
		}
		router.ServeHTTP(w, r)
	})
	srv.Start()
	t.Cleanup(srv.Close)
	return p
}

// Rotate makes a new signing key current; the old one stays published.
// It returns the new key's kid.
func (p *Provider) Rotate() string { return p.st.rotate() }

// storage is the example's storage with a rotating signing key and a JWT
// client_credentials client.
type storage struct {
	*exstorage.Storage
	issuer string

	mu   sync.Mutex
	keys []*signingKey // the last one signs
}

func (s *storage) rotate() string {
	priv, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	k := &signingKey{id: rand.Text()[:16], priv: priv}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.keys = append(s.keys, k)
	return k.id
}

// SigningKey is the current key.
func (s *storage) SigningKey(context.Context) (op.SigningKey, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.keys[len(s.keys)-1], nil
}

// KeySet publishes every key made so far.
func (s *storage) KeySet(context.Context) ([]op.Key, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]op.Key, len(s.keys))
	for i, k := range s.keys {
		out[i] = publicKey{k}
	}
	return out, nil
}

// ClientCredentials authenticates the JWT client; other clients go to the
// example's storage (its service user sid1 gets opaque tokens).
func (s *storage) ClientCredentials(ctx context.Context, clientID, clientSecret string) (op.Client, error) {
	if clientID != ClientID {
		return s.Storage.ClientCredentials(ctx, clientID, clientSecret)
	}
	if clientSecret != ClientSecret {
		return nil, errors.New("wrong client or secret")
	}
	sid, err := s.Storage.ClientCredentials(ctx, "sid1", "verysecret")
	if err != nil {
		return nil, err
	}
	return jwtClient{sid}, nil
}

// ClientCredentialsTokenRequest gives the JWT client's tokens their
// audience.
func (s *storage) ClientCredentialsTokenRequest(ctx context.Context, clientID string, scopes []string) (op.TokenRequest, error) {
	if clientID == OpaqueClientID {
		// The example's request, with the API as a second audience and
		// the example's user id1 as subject: the example storage answers
		// introspection only for tokens whose subject is one of its users
		// (it fails with "user not found" for sid1 itself).
		return &oidc.JWTTokenRequest{Subject: OpaqueSubject, Audience: []string{clientID, Audience}, Scopes: scopes}, nil
	}
	if clientID != ClientID {
		return s.Storage.ClientCredentialsTokenRequest(ctx, clientID, scopes)
	}
	return &oidc.JWTTokenRequest{Subject: ClientID, Audience: []string{Audience}, Scopes: scopes}, nil
}

// AuthorizeClientIDSecret also knows the gate, which introspects tokens as
// the client named like the API (the audience of the tokens it may ask
// about, as the example storage requires).
func (s *storage) AuthorizeClientIDSecret(ctx context.Context, clientID, clientSecret string) error {
	if clientID == Audience {
		if clientSecret != GateSecret {
			return errors.New("wrong client or secret")
		}
		return nil
	}
	return s.Storage.AuthorizeClientIDSecret(ctx, clientID, clientSecret)
}

// SetIntrospectionFromToken is the example's answer plus iss and aud,
// which it leaves out and RFC 7662 lists: a gate checks both.
func (s *storage) SetIntrospectionFromToken(ctx context.Context, resp *oidc.IntrospectionResponse, tokenID, subject, clientID string) error {
	if err := s.Storage.SetIntrospectionFromToken(ctx, resp, tokenID, subject, clientID); err != nil {
		return err
	}
	resp.Issuer = s.issuer
	resp.Audience = []string{OpaqueClientID, Audience}
	return nil
}

// GetPrivateClaimsFromScopes adds Keycloak-style nested roles to the
// access tokens.
func (s *storage) GetPrivateClaimsFromScopes(ctx context.Context, userID, clientID string, scopes []string) (map[string]any, error) {
	claims, err := s.Storage.GetPrivateClaimsFromScopes(ctx, userID, clientID, scopes)
	if err != nil {
		return nil, err
	}
	if claims == nil {
		claims = map[string]any{}
	}
	claims["realm_access"] = map[string]any{"roles": []string{"offline_access", Role}}
	return claims, nil
}

// jwtClient is the example's service user with JWT access tokens.
type jwtClient struct{ op.Client }

func (jwtClient) GetID() string                       { return ClientID }
func (jwtClient) AccessTokenType() op.AccessTokenType { return op.AccessTokenTypeJWT }

type signingKey struct {
	id   string
	priv *rsa.PrivateKey
}

func (k *signingKey) SignatureAlgorithm() jose.SignatureAlgorithm { return jose.RS256 }
func (k *signingKey) Key() any                                    { return k.priv }
func (k *signingKey) ID() string                                  { return k.id }

type publicKey struct{ k *signingKey }

func (p publicKey) ID() string                         { return p.k.id }
func (p publicKey) Algorithm() jose.SignatureAlgorithm { return jose.RS256 }
func (p publicKey) Use() string                        { return "sig" }
func (p publicKey) Key() any                           { return &p.k.priv.PublicKey }

type discard struct{}

func (discard) Write(b []byte) (int, error) { return len(b), nil }

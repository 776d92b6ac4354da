package tokenhandler

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/caddyserver/certmagic"
	"go.uber.org/zap"
	"golang.org/x/crypto/bcrypt"

	"github.com/tokengate/tokengate/internal/clients"
	"github.com/tokengate/tokengate/internal/issuer"
	"github.com/tokengate/tokengate/internal/keys"
)

// BenchmarkTokenEndpoint is a client_credentials request through the token
// endpoint handler (parsing, client authentication, issuance, the JSON
// answer), without the HTTP server around it, for each signing algorithm.
// The client's secret_hash is bcrypt; its first check is done before the
// timer starts, so this is a client that keeps asking (the check is then a
// cache hit, whatever the cost of the hash).
func BenchmarkTokenEndpoint(b *testing.B) {
	hash, err := bcrypt.GenerateFromPassword([]byte("bench-secret"), bcrypt.MinCost)
	if err != nil {
		b.Fatal(err)
	}
	for _, alg := range []string{keys.ES256, keys.EdDSA, keys.RS256, keys.PS256} {
		b.Run(alg, func(b *testing.B) {
			h := benchHandler(b, alg, string(hash))
			benchRequests(b, func() *http.Request { return benchPost(h, "bench-client", "grant_type=client_credentials") }, h, nil)
		})
	}
}

// BenchmarkTokenEndpointRefresh compares, on ES256, a client_credentials
// answer without a refresh token, one with (a client allowed the refresh
// grant: issuing it is a MAC, no storage), and a redemption (rotation on
// Caddy's file storage: a storage lock and one write).
func BenchmarkTokenEndpointRefresh(b *testing.B) {
	hash, err := bcrypt.GenerateFromPassword([]byte("bench-secret"), bcrypt.MinCost)
	if err != nil {
		b.Fatal(err)
	}
	h := benchHandler(b, keys.ES256, string(hash))
	b.Run("without", func(b *testing.B) {
		benchRequests(b, func() *http.Request { return benchPost(h, "bench-client", "grant_type=client_credentials") }, h, nil)
	})
	b.Run("with", func(b *testing.B) {
		benchRequests(b, func() *http.Request { return benchPost(h, "bench-refresh", "grant_type=client_credentials") }, h, nil)
	})
	b.Run("redeem", func(b *testing.B) {
		rt := ""
		seen := func(w *httptest.ResponseRecorder) {
			var ans struct {
				RefreshToken string `json:"refresh_token"`
			}
			if json.Unmarshal(w.Body.Bytes(), &ans) != nil || ans.RefreshToken == "" {
				b.Fatalf("no refresh token: %s", w.Body)
			}
			rt = ans.RefreshToken
		}
		w := httptest.NewRecorder()
		if err := h.ServeHTTP(w, benchPost(h, "bench-refresh", "grant_type=client_credentials"), nil); err != nil {
			b.Fatal(err)
		}
		seen(w)
		benchRequests(b, func() *http.Request {
			return benchPost(h, "bench-refresh", "grant_type=refresh_token&refresh_token="+rt)
		}, h, seen)
	})
}

// benchHandler is a token endpoint with two bcrypt clients: bench-client,
// and bench-refresh, allowed the refresh grant.
func benchHandler(b *testing.B, alg, hash string) *Handler {
	cfg := &issuer.Config{Issuer: "http://127.0.0.1:9302", SigningAlg: alg, Clients: []*clients.Config{
		{ClientID: "bench-client", SecretHash: hash, Scopes: []string{"bench:read", "bench:write"}},
		{ClientID: "bench-refresh", SecretHash: hash, Scopes: []string{"bench:read", "bench:write"},
			GrantTypes: []string{clients.GrantClientCredentials, clients.GrantRefreshToken}},
	}}
	iss, err := issuer.New(context.Background(), issuer.DefaultName, cfg, &certmagic.FileStorage{Path: b.TempDir()}, zap.NewNop())
	if err != nil {
		b.Fatal(err)
	}
	return &Handler{iss: iss, logger: zap.NewNop(), tokenPath: "/oauth/token"}
}

func benchPost(h *Handler, clientID, body string) *http.Request {
	r := httptest.NewRequest(http.MethodPost, h.tokenPath, strings.NewReader(body))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	r.SetBasicAuth(clientID, "bench-secret")
	return r
}

// benchRequests serves next() once untimed (the client's first bcrypt
// check), then in the loop; seen, when set, sees each answer.
func benchRequests(b *testing.B, next func() *http.Request, h *Handler, seen func(*httptest.ResponseRecorder)) {
	serve := func() {
		w := httptest.NewRecorder()
		if err := h.ServeHTTP(w, next(), nil); err != nil {
			b.Fatal(err)
		}
		if w.Code != http.StatusOK {
			b.Fatalf("status %d: %s", w.Code, w.Body)
		}
		if seen != nil {
			seen(w)
		}
	}
	serve()
	b.ReportAllocs()
	for b.Loop() {
		serve()
	}
}

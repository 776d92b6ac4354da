package tokenhandler

import (
	"context"
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
			cfg := &issuer.Config{Issuer: "http://127.0.0.1:9302", SigningAlg: alg, Clients: []*clients.Config{
				{ClientID: "bench-client", SecretHash: string(hash), Scopes: []string{"bench:read", "bench:write"}},
			}}
			iss, err := issuer.New(context.Background(), issuer.DefaultName, cfg, &certmagic.FileStorage{Path: b.TempDir()}, zap.NewNop())
			if err != nil {
				b.Fatal(err)
			}
			h := &Handler{iss: iss, logger: zap.NewNop(), tokenPath: "/oauth/token"}
			next := func() *httptest.ResponseRecorder {
				r := httptest.NewRequest(http.MethodPost, "/oauth/token", strings.NewReader("grant_type=client_credentials"))
				r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				r.SetBasicAuth("bench-client", "bench-secret")
				w := httptest.NewRecorder()
				if err := h.ServeHTTP(w, r, nil); err != nil {
					b.Fatal(err)
				}
				return w
			}
			if w := next(); w.Code != http.StatusOK {
				b.Fatalf("status %d: %s", w.Code, w.Body)
			}
			b.ReportAllocs()
			for b.Loop() {
				if w := next(); w.Code != http.StatusOK {
					b.Fatalf("status %d: %s", w.Code, w.Body)
				}
			}
		})
	}
}

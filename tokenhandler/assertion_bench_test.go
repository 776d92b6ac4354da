package tokenhandler

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/certmagic"
	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jwt"
	"go.uber.org/zap"

	"github.com/tokengate/tokengate/internal/clientauth"
	"github.com/tokengate/tokengate/internal/clients"
	"github.com/tokengate/tokengate/internal/issuer"
)

// BenchmarkTokenEndpointAssertion is a client_credentials request
// authenticated by private_key_jwt (ES256), each with a new assertion
// signed before the timer starts, through the token endpoint handler on
// Caddy's file storage: the assertion's signature, its jti claimed in the
// storage (state.SeenOnce), an ES256 access token.
func BenchmarkTokenEndpointAssertion(b *testing.B) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	pub, _ := jwk.Import(key.Public())
	set := jwk.NewSet()
	_ = set.AddKey(pub)
	jwks, _ := json.Marshal(set)
	cfg := &issuer.Config{Issuer: "http://127.0.0.1:9302", Clients: []*clients.Config{
		{ClientID: "bench-pkj", JWKS: jwks, Scopes: []string{"bench:read"}},
	}}
	iss, err := issuer.New(context.Background(), issuer.DefaultName, cfg, &certmagic.FileStorage{Path: b.TempDir()}, zap.NewNop())
	if err != nil {
		b.Fatal(err)
	}
	h := &Handler{iss: iss, logger: zap.NewNop(), tokenPath: "/oauth/token"}
	assertions := make([]string, b.N)
	now := time.Now()
	for i := range assertions {
		tok, _ := jwt.NewBuilder().Issuer("bench-pkj").Subject("bench-pkj").Audience([]string{"http://127.0.0.1:9302/oauth/token"}).
			IssuedAt(now).Expiration(now.Add(time.Minute)).JwtID("bench-" + strconv.Itoa(i)).Build()
		signed, err := jwt.Sign(tok, jwt.WithKey(jwa.ES256(), key))
		if err != nil {
			b.Fatal(err)
		}
		assertions[i] = string(signed)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		form := url.Values{"grant_type": {"client_credentials"}, "client_assertion_type": {clientauth.AssertionType}, "client_assertion": {assertions[i]}}
		r := httptest.NewRequest(http.MethodPost, h.tokenPath, strings.NewReader(form.Encode()))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		w := httptest.NewRecorder()
		if err := h.ServeHTTP(w, r, nil); err != nil {
			b.Fatal(err)
		}
		if w.Code != http.StatusOK {
			b.Fatalf("status %d: %s", w.Code, w.Body)
		}
	}
}

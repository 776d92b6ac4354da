package validator

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// benchRequest runs one request through h, reusing the request and
// response recorder so that only the handler's own cost is measured.
func benchServe(b *testing.B, h *Handler, tok string) {
	r := httptest.NewRequest(http.MethodGet, "/reports/q1", nil)
	r.Header.Set("Authorization", "Bearer "+tok)
	w := httptest.NewRecorder()
	next := caddyhttp.HandlerFunc(func(http.ResponseWriter, *http.Request) error { return nil })
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		repl := caddy.NewReplacer()
		req := r.WithContext(context.WithValue(ctx, caddy.ReplacerCtxKey, repl))
		if err := h.ServeHTTP(w, req, next); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkVerifyCold: every request checks the signature (cache off).
func BenchmarkVerifyCold(b *testing.B) {
	iss, _ := newIssuer(b, "ES256")
	h := newLocal(b, iss, func(h *Handler) { h.Scopes = []string{"reports:read"} })
	h.noCache = true
	benchServe(b, h, mint(b, iss, defaultAudClient, "reports:read"))
}

// BenchmarkVerifyWarm: the same token again, served from the cache.
func BenchmarkVerifyWarm(b *testing.B) {
	iss, _ := newIssuer(b, "ES256")
	h := newLocal(b, iss, func(h *Handler) { h.Scopes = []string{"reports:read"} })
	benchServe(b, h, mint(b, iss, defaultAudClient, "reports:read"))
}

// BenchmarkReplacerBaseline is the cost of the request setup alone, to
// read the two above against.
func BenchmarkReplacerBaseline(b *testing.B) {
	ctx := context.Background()
	r := httptest.NewRequest(http.MethodGet, "/reports/q1", nil)
	b.ReportAllocs()
	for b.Loop() {
		repl := caddy.NewReplacer()
		_ = r.WithContext(context.WithValue(ctx, caddy.ReplacerCtxKey, repl))
	}
}

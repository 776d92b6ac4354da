package validator

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

// authRequest is a GET of http://example.com/ with one Authorization
// header, in the test's context.
func authRequest(t testing.TB, auth string) *http.Request {
	t.Helper()
	r := httptest.NewRequestWithContext(t.Context(), http.MethodGet, "http://example.com/", nil)
	r.Header.Set("Authorization", auth)
	return r
}

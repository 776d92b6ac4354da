package testcaddy

import (
	"io"
	"net/http"
	"strings"
	"testing"
)

// Send sends one request to a server under test: body, unless empty, as a
// form (application/x-www-form-urlencoded), and hdr as name, value pairs
// set after it. See Do for what it returns.
func Send(t testing.TB, method, url, body string, hdr ...string) (int, []byte, http.Header) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Error(err)
		return 0, nil, nil
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	return Do(t, req)
}

// Do sends req and returns the answer's status, body and header. A request
// that gets no answer is reported with t.Error, not t.Fatal (Do may run on
// a goroutine of the test's), and returns status 0.
func Do(t testing.TB, req *http.Request) (int, []byte, http.Header) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Error(err)
		return 0, nil, nil
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Errorf("reading the answer: %v", err)
	}
	return resp.StatusCode, body, resp.Header
}

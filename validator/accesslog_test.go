package validator_test

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tokengate/tokengate/internal/testcaddy"
)

// TestQueryStringTokenWrittenToAccessLog: bearer_auth refuses a token sent
// as ?access_token=, but the review found it already written to Caddy's
// access log by then. docs/security.md's `format filter` block (request>uri
// query) keeps it out; this test runs that block as docs/security.md shows it,
// next to a site without it, which shows the leak.
func TestQueryStringTokenWrittenToAccessLog(t *testing.T) {
	dir := t.TempDir()
	plainLog, filteredLog := filepath.Join(dir, "plain.log"), filepath.Join(dir, "filtered.log")
	testcaddy.Start(t, fmt.Sprintf(`{
	admin off
	%s
	oauth_issuer {
		issuer %s
		client reports-client {
			secret reports-secret
		}
	}
}

:9180 {
	log {
		output file %s
	}
	bearer_auth
	respond "ok"
}

:9181 {
	log {
		output file %s
		format filter {
			request>uri query {
				replace access_token REDACTED
				replace client_secret REDACTED
				replace refresh_token REDACTED
			}
		}
	}
	bearer_auth
	respond "ok"
}
`, testcaddy.Storage(filepath.Join(dir, "storage")), e2eBase, plainLog, filteredLog))

	const secret = "eyJhbGciOiJFUzI1NiJ9.leaked-token-text.sig"
	for _, port := range []string{"9180", "9181"} {
		resp, err := http.Get("http://localhost:" + port + "/reports?access_token=" + secret + "&client_secret=s3cret-in-url")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 401 {
			t.Errorf(":%s: a query-string token got %d, want 401", port, resp.StatusCode)
		}
	}
	read := func(path string) string {
		deadline := time.Now().Add(5 * time.Second)
		for {
			b, _ := os.ReadFile(path)
			if strings.Contains(string(b), "/reports") || time.Now().After(deadline) {
				return string(b)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	if plain := read(plainLog); !strings.Contains(plain, secret) {
		t.Errorf("without the filter the token is not in the access log (the test no longer shows the leak): %q", plain)
	}
	filtered := read(filteredLog)
	if !strings.Contains(filtered, "/reports") {
		t.Fatalf("the filtered access log has no line for the request: %q", filtered)
	}
	for _, leaked := range []string{secret, "s3cret-in-url"} {
		if strings.Contains(filtered, leaked) {
			t.Errorf("the filtered access log holds %q: %q", leaked, filtered)
		}
	}
	if !strings.Contains(filtered, "access_token=REDACTED") {
		t.Errorf("the filtered access log does not show the redaction: %q", filtered)
	}
}

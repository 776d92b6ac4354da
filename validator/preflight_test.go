package validator_test

import (
	"fmt"
	"io"
	"net/http"
	"sync/atomic"
	"testing"

	"github.com/tokengate/tokengate/internal/testcaddy"
)

// TestPreflightRunsUpstreamUnauthenticated: the review sent an OPTIONS
// request with CORS preflight headers and a body through an
// allow_preflight route; it reached the upstream, body included, with
// `{http.auth.user.id}` as literal text in header_up, and a legacy handler
// that ignores the method ran it. A preflight is now answered by bearer_auth
// itself (204, with the headers earlier handlers set), and the identity
// placeholders are empty whenever no token was accepted.
func TestPreflightRunsUpstreamUnauthenticated(t *testing.T) {
	var hits atomic.Int64
	var lastBody, lastID atomic.Value
	up := newUpstreamFunc(t, func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		b, _ := io.ReadAll(r.Body)
		lastBody.Store(string(b))
		lastID.Store(r.Header.Get("X-Client-Id"))
		fmt.Fprint(w, "legacy ran the request")
	})
	testcaddy.Start(t, fmt.Sprintf(`{
	admin off
	%s
	http_port 9180
	oauth_issuer {
		issuer %s
		client reports-client {
			secret reports-secret
			audience legacy-api
		}
	}
}

:9180 {
	oauth_token
	route /reports/* {
		header Access-Control-Allow-Origin https://app.example.com
		bearer_auth {
			audience legacy-api
			allow_preflight
		}
		reverse_proxy %s {
			header_up X-Client-Id {http.auth.user.id}
		}
	}
	handle_errors {
		respond "refused {err.status_code} id=[{http.auth.user.id}] scope=[{http.auth.user.scope}]"
	}
}
`, testcaddy.Storage(t.TempDir()), e2eBase, up))

	status, body, hdr := testcaddy.Send(t, http.MethodOptions, e2eBase+"/reports/delete-all", "confirm=yes",
		"Origin", "https://app.example.com", "Access-Control-Request-Method", "POST")
	if hits.Load() != 0 {
		t.Errorf("the preflight reached the upstream (body %q, X-Client-Id %q)", lastBody.Load(), lastID.Load())
	}
	if status != http.StatusNoContent || len(body) != 0 {
		t.Errorf("preflight answered %d %q, want 204 without a body", status, body)
	}
	if got := hdr.Get("Access-Control-Allow-Origin"); got != "https://app.example.com" {
		t.Errorf("preflight answer lost the CORS header set before bearer_auth: %q", got)
	}

	// A refused request: the error route sees empty identity placeholders,
	// not their literal text.
	status, text, _ := get(t, "/reports/q1", "")
	if status != 401 || text != "refused 401 id=[] scope=[]" {
		t.Errorf("refused request: %d %q, want the identity placeholders empty", status, text)
	}
	// An OPTIONS that is not a preflight still needs a token.
	status, _, _ = testcaddy.Send(t, http.MethodOptions, e2eBase+"/reports/q1", "", "Origin", "https://app.example.com")
	if status != 401 || hits.Load() != 0 {
		t.Errorf("OPTIONS without Access-Control-Request-Method: %d, upstream hits %d", status, hits.Load())
	}
}

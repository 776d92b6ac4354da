package tokenhandler

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/caddyserver/certmagic"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/tokengate/tokengate/internal/clients"
	"github.com/tokengate/tokengate/internal/issuer"
)

// TestThrottleLogsAttackerSizedClientIDs: the review found each 429 logged
// the request's client_id in full at info. Ids taken from a request are
// cut to 64 characters in log lines, and ids over MaxIDLength never get
// that far.
func TestThrottleLogsAttackerSizedClientIDs(t *testing.T) {
	cfg := &issuer.Config{Issuer: "http://127.0.0.1:9303", Throttle: &issuer.ThrottleConfig{PerClient: 1},
		Clients: []*clients.Config{{ClientID: "c", Secret: "s3cret"}}}
	iss, err := issuer.New(context.Background(), issuer.DefaultName, cfg, &certmagic.FileStorage{Path: t.TempDir()}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	core, logs := observer.New(zap.DebugLevel)
	h := &Handler{iss: iss, logger: zap.New(core), tokenPath: "/oauth/token"}
	send := func(id string) int {
		r := httptest.NewRequest(http.MethodPost, "/oauth/token?grant_type=client_credentials", nil)
		r.SetBasicAuth(id, "guess")
		w := httptest.NewRecorder()
		if err := h.ServeHTTP(w, r, nil); err != nil {
			t.Fatal(err)
		}
		return w.Code
	}
	long := strings.Repeat("x", clients.MaxIDLength)
	if s := send(long); s != 401 {
		t.Fatalf("first guess: %d", s)
	}
	if s := send(long); s != 429 {
		t.Fatalf("second guess: %d, want 429", s)
	}
	if s := send(long + "y"); s != 401 {
		t.Fatalf("an id over MaxIDLength: %d, want 401", s)
	}
	if logs.FilterMessage("client authentication throttled").Len() != 1 {
		t.Fatalf("throttling not logged: %v", logs.All())
	}
	for _, e := range logs.All() {
		if id, ok := e.ContextMap()["client_id"].(string); ok && len(id) > 64+len("...") {
			t.Errorf("%q logged a client_id of %d bytes", e.Message, len(id))
		}
	}
}

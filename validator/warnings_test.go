package validator

import (
	"strings"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/tokengate/tokengate/internal/keys"
)

// TestUnreachableRouteWarnings: a local route that no configured client can
// pass is named in a warning at load. The test issuer has reports-client
// (reports:read reports:write, for https://api.example.com) and
// plain-client (reports:read, for the issuer URL).
func TestUnreachableRouteWarnings(t *testing.T) {
	iss, _ := newIssuer(t, keys.ES256)
	cases := []struct {
		name     string
		aud      []string
		scopes   []string
		want     string // "" means no warning
		wantCode string
	}{
		{"reachable", []string{"https://api.example.com"}, []string{"reports:write"}, "", ""},
		{"default audience", nil, []string{"reports:read"}, "", ""},
		{"no options", nil, nil, "", ""},
		{"one of two audiences", []string{"other-api", "https://api.example.com"}, nil, "", ""},
		{"scope no client may get", []string{"https://api.example.com"}, []string{"reports:read", "reports:delete"}, "may get all the scopes", "403"},
		{"typo in scope", nil, []string{"report:read"}, "may get all the scopes", "403"},
		{"audience no client gets", []string{"legacy-api"}, []string{"reports:read"}, "gets tokens for this route's audience", "401"},
		{"scopes and audience on different clients", nil, []string{"reports:write"}, "get tokens for another audience", "refused"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			core, logs := observer.New(zap.WarnLevel)
			h := &Handler{Audience: tc.aud, Scopes: tc.scopes, logger: zap.New(core)}
			h.audience = append([]string(nil), h.Audience...)
			if err := h.provisionCommon(); err != nil {
				t.Fatal(err)
			}
			if err := h.provisionLocal(iss.Local()); err != nil {
				t.Fatal(err)
			}
			all := logs.All()
			if tc.want == "" {
				if len(all) != 0 {
					t.Fatalf("unexpected warning: %s", all[0].Message)
				}
				return
			}
			if len(all) != 1 || !strings.Contains(all[0].Message, tc.want) || !strings.Contains(all[0].Message, tc.wantCode) {
				t.Fatalf("warnings %v, want one containing %q", all, tc.want)
			}
			fields := all[0].ContextMap()
			if fields["issuer"] != "default" || len(fields["scopes"].([]any)) != len(tc.scopes) || len(fields["audience"].([]any)) == 0 {
				t.Errorf("warning fields %v do not name the issuer, scopes and audience", fields)
			}
		})
	}
}

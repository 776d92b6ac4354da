package validator

import (
	"net/http"

	"github.com/caddyserver/caddy/v2"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/certmagic"
	"go.uber.org/zap"

	"github.com/tokengate/tokengate/internal/accesstoken"
	"github.com/tokengate/tokengate/internal/issuer"
	"github.com/tokengate/tokengate/internal/testclock"
)

func TestAcceptsGoodTokenAndSetsPlaceholders(t *testing.T) {
	iss, _ := newIssuer(t, "ES256")
	h := newLocal(t, iss, func(h *Handler) {
		h.Audience = []string{"https://api.example.com"}
		h.Scopes = []string{"reports:read"}
	})
	tok := mint(t, iss, testClient, "reports:read", "reports:write")
	res := do(h, "Bearer "+tok)
	if !res.reached || res.err != nil {
		t.Fatalf("good token refused: %v (WWW-Authenticate %q)", res.err, res.www)
	}
	want := map[string]string{
		"http.auth.user.id":               "reports-client",
		"http.auth.user.client_id":        "reports-client",
		"http.auth.user.scope":            "reports:read reports:write",
		"http.auth.user.iss":              testIssuerURL,
		"http.auth.user.aud":              "https://api.example.com",
		"http.auth.user.exp":              "1800003600",
		"http.auth.user.claims.sub":       "reports-client",
		"http.auth.user.claims.exp":       "1800003600",
		"http.auth.user.claims.aud":       "https://api.example.com",
		"http.auth.user.claims.scope":     "reports:read reports:write",
		"http.auth.user.claims.client_id": "reports-client",
	}
	for k, v := range want {
		if got, ok := res.repl.GetString(k); !ok || got != v {
			t.Errorf("{%s} = %q (known %v), want %q", k, got, ok, v)
		}
	}
	if jti, _ := res.repl.GetString("http.auth.user.jti"); len(jti) < 16 {
		t.Errorf("{http.auth.user.jti} = %q, want the token's jti", jti)
	}
	if got := res.repl.ReplaceAll("{http.auth.user.id}/{http.auth.user.client_id}", ""); got != "reports-client/reports-client" {
		t.Errorf("ReplaceAll = %q", got)
	}
	if res.req.Header.Get("Authorization") == "" {
		t.Error("Authorization header dropped although strip_authorization is off")
	}
}

func TestStripAuthorization(t *testing.T) {
	iss, _ := newIssuer(t, "ES256")
	h := newLocal(t, iss, func(h *Handler) { h.StripAuthorization = true })
	res := do(h, "Bearer "+mint(t, iss, defaultAudClient))
	if !res.reached {
		t.Fatalf("refused: %v", res.err)
	}
	if v := res.req.Header.Get("Authorization"); v != "" {
		t.Errorf("Authorization reached the next handler: %q", v)
	}
}

func TestDefaultAudienceOfLocalIssuer(t *testing.T) {
	iss, _ := newIssuer(t, "ES256")
	h := newLocal(t, iss, nil)
	if res := do(h, "Bearer "+mint(t, iss, defaultAudClient)); !res.reached {
		t.Errorf("token for the issuer URL refused by a route with the default audience: %v", res.err)
	}
	res := do(h, "Bearer "+mint(t, iss, testClient))
	if res.reached || res.status != 401 || !strings.Contains(res.www, `error="invalid_token"`) {
		t.Errorf("token for another audience: reached=%v status=%d www=%q", res.reached, res.status, res.www)
	}
}

func TestNoToken(t *testing.T) {
	iss, _ := newIssuer(t, "ES256")
	h := newLocal(t, iss, func(h *Handler) { h.Realm = "reports" })
	tok := mint(t, iss, defaultAudClient)
	tests := []struct {
		name string
		req  func() *http.Request
	}{
		{"no header", func() *http.Request { return httptest.NewRequest("GET", "/reports/q1", nil) }},
		{"basic scheme", func() *http.Request {
			r := httptest.NewRequest("GET", "/reports/q1", nil)
			r.SetBasicAuth("reports-client", "s3cret")
			return r
		}},
		{"token in query string", func() *http.Request { return httptest.NewRequest("GET", "/reports/q1?access_token="+tok, nil) }},
		{"token in form body", func() *http.Request {
			r := httptest.NewRequest("POST", "/reports/q1", strings.NewReader("access_token="+tok))
			r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			return r
		}},
		{"scheme glued to token", func() *http.Request {
			r := httptest.NewRequest("GET", "/reports/q1", nil)
			r.Header.Set("Authorization", "Bearer"+tok)
			return r
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := doReq(h, tt.req())
			if res.reached || res.status != 401 {
				t.Fatalf("reached=%v status=%d, want 401", res.reached, res.status)
			}
			if res.www != `Bearer realm="reports"` {
				t.Errorf("WWW-Authenticate = %q, want a bare challenge", res.www)
			}
		})
	}
}

func TestSchemeCaseAndSpacing(t *testing.T) {
	iss, _ := newIssuer(t, "ES256")
	h := newLocal(t, iss, nil)
	tok := mint(t, iss, defaultAudClient)
	for _, hdr := range []string{"Bearer " + tok, "bearer " + tok, "BEARER " + tok, "bEaReR  " + tok, "Bearer\t" + tok + " "} {
		if res := do(h, hdr); !res.reached {
			t.Errorf("%.12q…: refused: %v", hdr, res.err)
		}
	}
}

func TestDuplicateAuthorizationHeaders(t *testing.T) {
	iss, _ := newIssuer(t, "ES256")
	h := newLocal(t, iss, nil)
	tok := mint(t, iss, defaultAudClient)
	res := do(h, "Bearer "+tok, "Bearer "+tok)
	if res.reached || res.status != 400 || !strings.Contains(res.www, `error="invalid_request"`) {
		t.Errorf("reached=%v status=%d www=%q, want 400 invalid_request", res.reached, res.status, res.www)
	}
}

func TestTimeChecks(t *testing.T) {
	iss, clk := newIssuer(t, "ES256")
	kid, signer := currentKey(t, iss)
	start := clk.Now()
	now := start.Unix()
	tests := []struct {
		name    string
		claims  func(map[string]any)
		advance time.Duration
		leeway  time.Duration
		want    error
	}{
		{"fresh", nil, 0, 0, nil},
		{"expired beyond leeway", nil, 600*time.Second + 31*time.Second, 0, accesstoken.ErrExpired},
		{"expired within leeway", nil, 600*time.Second + 29*time.Second, 0, nil},
		{"expired exactly at exp+leeway", nil, 630 * time.Second, 0, accesstoken.ErrExpired},
		{"short leeway", nil, 600*time.Second + 2*time.Second, time.Second, accesstoken.ErrExpired},
		{"no exp", func(c map[string]any) { delete(c, "exp") }, 0, 0, accesstoken.ErrNoExpiry},
		{"exp not a number", func(c map[string]any) { c["exp"] = "tomorrow" }, 0, 0, accesstoken.ErrBadClaims},
		{"fractional exp", func(c map[string]any) { c["exp"] = float64(now) + 10.5 }, 0, 0, nil},
		{"nbf in the future beyond leeway", func(c map[string]any) { c["nbf"] = now + 31 }, 0, 0, accesstoken.ErrNotYetValid},
		{"nbf in the future within leeway", func(c map[string]any) { c["nbf"] = now + 29 }, 0, 0, nil},
		{"iat in the future beyond leeway", func(c map[string]any) { c["iat"] = now + 31 }, 0, 0, accesstoken.ErrFutureIssued},
		{"iat in the future within leeway", func(c map[string]any) { c["iat"] = now + 29 }, 0, 0, nil},
		{"huge exp", func(c map[string]any) { c["exp"] = 1e300 }, 0, 0, accesstoken.ErrBadClaims},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := claimsFor(iss, testIssuerURL)
			if tt.claims != nil {
				tt.claims(c)
			}
			tok := signRaw(t, signer, "ES256", `{"alg":"ES256","typ":"at+jwt","kid":"`+kid+`"}`, mustJSON(t, c))
			local := testclock.New(start.Add(tt.advance))
			h := newLocal(t, iss, func(h *Handler) {
				h.Leeway = caddy.Duration(tt.leeway)
				h.now = local.Now
			})
			_, err := h.check(authRequest(t, "Bearer "+tok))
			if err != tt.want {
				t.Errorf("got %v, want %v", err, tt.want)
			}
		})
	}
}

// TestCachedTokenStillChecked makes sure a cache hit is checked again for
// expiry, revocation and the route's own audience and scopes.
func TestCachedTokenStillChecked(t *testing.T) {
	iss, clk := newIssuer(t, "ES256")
	revoked := fakeRevocation{}
	read := newLocal(t, iss, func(h *Handler) {
		h.Audience = []string{"https://api.example.com"}
		h.Scopes = []string{"reports:read"}
	})
	read.useVerifier(revokedBy(iss, revoked))
	admin := newLocal(t, iss, func(h *Handler) {
		h.Audience = []string{"https://api.example.com"}
		h.Scopes = []string{"reports:admin"}
	})
	other := newLocal(t, iss, func(h *Handler) { h.Audience = []string{"https://other.example.com"} })
	at, err := iss.Issue(testClient, []string{"reports:read"}, iss.Audience(testClient))
	if err != nil {
		t.Fatal(err)
	}
	hdr := "Bearer " + at.Token
	if res := do(read, hdr); !res.reached {
		t.Fatalf("first use refused: %v", res.err)
	}
	if signed, sig := splitSigned(at.Token); lookupCached(cacheKey(signed), sig, read.src) == nil {
		t.Fatal("verified token not cached")
	}
	if res := do(read, hdr); !res.reached {
		t.Fatalf("cached use refused: %v", res.err)
	}
	if res := do(admin, hdr); res.reached || res.status != 403 {
		t.Errorf("cached token on a route needing another scope: reached=%v status=%d", res.reached, res.status)
	}
	if res := do(other, hdr); res.reached || res.status != 401 {
		t.Errorf("cached token on a route of another audience: reached=%v status=%d", res.reached, res.status)
	}
	revoked[at.Claims.JTI] = true
	if res := do(read, hdr); res.reached || !strings.Contains(res.www, "token revoked") {
		t.Errorf("cached revoked token: reached=%v www=%q", res.reached, res.www)
	}
	delete(revoked, at.Claims.JTI)
	clk.Advance(at.TTL + 31*time.Second)
	if res := do(read, hdr); res.reached || !strings.Contains(res.www, "token expired") {
		t.Errorf("cached expired token: reached=%v www=%q", res.reached, res.www)
	}
}

// TestCacheIsPerKeySource: a token verified for one issuer is not taken
// from the cache by a route trusting another issuer with the same URL.
func TestCacheIsPerKeySource(t *testing.T) {
	issA, _ := newIssuer(t, "ES256")
	issB, _ := newIssuer(t, "ES256")
	hA, hB := newLocal(t, issA, nil), newLocal(t, issB, nil)
	tok := mint(t, issA, defaultAudClient)
	if res := do(hA, "Bearer "+tok); !res.reached {
		t.Fatalf("refused by its own issuer: %v", res.err)
	}
	if res := do(hB, "Bearer "+tok); res.reached || res.status != 401 {
		t.Errorf("accepted by another issuer's route via the cache: status=%d", res.status)
	}
}

func TestAudienceIssuerAndTyp(t *testing.T) {
	iss, _ := newIssuer(t, "ES256")
	kid, signer := currentKey(t, iss)
	hdr := func(typ string) string {
		if typ == "" {
			return `{"alg":"ES256","kid":"` + kid + `"}`
		}
		return `{"alg":"ES256","typ":"` + typ + `","kid":"` + kid + `"}`
	}
	tests := []struct {
		name   string
		header string
		claims func(map[string]any)
		want   error
	}{
		{"good", hdr("at+jwt"), nil, nil},
		{"typ application/at+jwt", hdr("application/at+jwt"), nil, nil},
		{"typ upper case", hdr("AT+JWT"), nil, nil},
		{"typ missing", hdr(""), nil, accesstoken.ErrTyp},
		{"typ JWT (an ID token?)", hdr("JWT"), nil, accesstoken.ErrTyp},
		{"typ not a string", `{"alg":"ES256","typ":1,"kid":"` + kid + `"}`, nil, accesstoken.ErrMalformed},
		{"aud array with ours", hdr("at+jwt"), func(c map[string]any) { c["aud"] = []string{"x", "https://api.example.com"} }, nil},
		{"wrong aud", hdr("at+jwt"), func(c map[string]any) { c["aud"] = "https://evil.example.com" }, accesstoken.ErrAudience},
		{"no aud", hdr("at+jwt"), func(c map[string]any) { delete(c, "aud") }, accesstoken.ErrAudience},
		{"aud of wrong type", hdr("at+jwt"), func(c map[string]any) { c["aud"] = 42 }, accesstoken.ErrBadClaims},
		{"wrong iss", hdr("at+jwt"), func(c map[string]any) { c["iss"] = "http://localhost:9081" }, accesstoken.ErrIssuer},
		{"iss with trailing slash", hdr("at+jwt"), func(c map[string]any) { c["iss"] = testIssuerURL + "/" }, accesstoken.ErrIssuer},
		{"no iss", hdr("at+jwt"), func(c map[string]any) { delete(c, "iss") }, accesstoken.ErrIssuer},
	}
	h := newLocal(t, iss, func(h *Handler) { h.Audience = []string{"https://api.example.com"} })
	for _, payload := range []string{`["not","an","object"]`, `null`, `{"exp":1,"exp":2`, `"text"`} {
		tok := signRaw(t, signer, "ES256", hdr("at+jwt"), payload)
		if _, err := h.check(authRequest(t, "Bearer "+tok)); err != accesstoken.ErrBadClaims {
			t.Errorf("payload %s: got %v, want %v", payload, err, accesstoken.ErrBadClaims)
		}
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := claimsFor(iss, "https://api.example.com")
			if tt.claims != nil {
				tt.claims(c)
			}
			tok := signRaw(t, signer, "ES256", tt.header, mustJSON(t, c))
			if _, err := h.check(authRequest(t, "Bearer "+tok)); err != tt.want {
				t.Errorf("got %v, want %v", err, tt.want)
			}
		})
	}
}

func TestScopes(t *testing.T) {
	iss, _ := newIssuer(t, "ES256")
	kid, signer := currentKey(t, iss)
	tests := []struct {
		name   string
		route  []string
		claims func(map[string]any)
		status int // 0: accepted
	}{
		{"no scope required", nil, nil, 0},
		{"one of one", []string{"reports:read"}, nil, 0},
		{"all of two", []string{"reports:read", "reports:write"}, func(c map[string]any) { c["scope"] = "reports:write reports:read" }, 0},
		{"one missing", []string{"reports:read", "reports:write"}, nil, 403},
		{"prefix is not a scope", []string{"reports"}, nil, 403},
		{"no scope claim", []string{"reports:read"}, func(c map[string]any) { delete(c, "scope") }, 403},
		{"scp array", []string{"reports:read", "reports:write"}, func(c map[string]any) {
			delete(c, "scope")
			c["scp"] = []string{"reports:read", "reports:write"}
		}, 0},
		{"scp string", []string{"reports:write"}, func(c map[string]any) {
			delete(c, "scope")
			c["scp"] = "reports:read reports:write"
		}, 0},
		{"scp array lacking", []string{"reports:write"}, func(c map[string]any) {
			delete(c, "scope")
			c["scp"] = []string{"reports:read"}
		}, 403},
		{"scope not a string", []string{"reports:read"}, func(c map[string]any) { c["scope"] = []string{"reports:read"} }, 401},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newLocal(t, iss, func(h *Handler) { h.Scopes = tt.route })
			c := claimsFor(iss, testIssuerURL)
			if tt.claims != nil {
				tt.claims(c)
			}
			tok := signRaw(t, signer, "ES256", `{"alg":"ES256","typ":"at+jwt","kid":"`+kid+`"}`, mustJSON(t, c))
			res := do(h, "Bearer "+tok)
			if tt.status == 0 {
				if !res.reached {
					t.Fatalf("refused: %v", res.err)
				}
				return
			}
			if res.reached || res.status != tt.status {
				t.Fatalf("reached=%v status=%d, want %d", res.reached, res.status, tt.status)
			}
			if tt.status == 403 {
				want := `Bearer realm="restricted", error="insufficient_scope", scope="` + strings.Join(tt.route, " ") + `"`
				if !strings.HasPrefix(res.www, want) {
					t.Errorf("WWW-Authenticate = %q, want prefix %q", res.www, want)
				}
			}
		})
	}
}

func TestRequiredClaims(t *testing.T) {
	iss, _ := newIssuer(t, "ES256")
	kid, signer := currentKey(t, iss)
	tests := []struct {
		name   string
		req    map[string][]string
		claims map[string]any
		ok     bool
	}{
		{"string match", map[string][]string{"tenant": {"acme", "globex"}}, map[string]any{"tenant": "globex"}, true},
		{"string mismatch", map[string][]string{"tenant": {"acme"}}, map[string]any{"tenant": "globex"}, false},
		{"missing", map[string][]string{"tenant": {"acme"}}, nil, false},
		{"array element", map[string][]string{"groups": {"ops"}}, map[string]any{"groups": []string{"dev", "ops"}}, true},
		{"array without", map[string][]string{"groups": {"ops"}}, map[string]any{"groups": []string{"dev"}}, false},
		{"boolean", map[string][]string{"internal": {"true"}}, map[string]any{"internal": true}, true},
		{"number", map[string][]string{"level": {"3"}}, map[string]any{"level": 3}, true},
		{"object never matches", map[string][]string{"o": {`{"a":1}`}}, map[string]any{"o": map[string]int{"a": 1}}, false},
		{"all required", map[string][]string{"tenant": {"acme"}, "env": {"prod"}}, map[string]any{"tenant": "acme", "env": "dev"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newLocal(t, iss, func(h *Handler) { h.Claims = tt.req })
			c := claimsFor(iss, testIssuerURL)
			for k, v := range tt.claims {
				c[k] = v
			}
			tok := signRaw(t, signer, "ES256", `{"alg":"ES256","typ":"at+jwt","kid":"`+kid+`"}`, mustJSON(t, c))
			res := do(h, "Bearer "+tok)
			if res.reached != tt.ok {
				t.Fatalf("reached=%v, want %v (%v)", res.reached, tt.ok, res.err)
			}
			if !tt.ok && res.status != 403 {
				t.Errorf("status %d, want 403", res.status)
			}
			if tt.ok {
				if tt.name == "array element" {
					if v, _ := res.repl.GetString("http.auth.user.claims.groups"); v != `["dev","ops"]` {
						t.Errorf("{http.auth.user.claims.groups} = %q", v)
					}
				}
			}
		})
	}
}

func TestRevocationHook(t *testing.T) {
	iss, _ := newIssuer(t, "ES256")
	h := newLocal(t, iss, nil)
	revoked := fakeRevocation{}
	h.useVerifier(revokedBy(iss, revoked))
	a, err := iss.Issue(defaultAudClient, nil, iss.DefaultAudience())
	if err != nil {
		t.Fatal(err)
	}
	b, err := iss.Issue(defaultAudClient, nil, iss.DefaultAudience())
	if err != nil {
		t.Fatal(err)
	}
	revoked[a.Claims.JTI] = true
	res := do(h, "Bearer "+a.Token)
	if res.reached || res.status != 401 || res.www != `Bearer realm="restricted", error="invalid_token", error_description="token revoked"` {
		t.Errorf("revoked token: reached=%v status=%d www=%q", res.reached, res.status, res.www)
	}
	if res := do(h, "Bearer "+b.Token); !res.reached {
		t.Errorf("token not revoked refused: %v", res.err)
	}
}

func TestPreflight(t *testing.T) {
	iss, _ := newIssuer(t, "ES256")
	preflight := func() *http.Request {
		r := httptest.NewRequest(http.MethodOptions, "/reports/q1", nil)
		r.Header.Set("Origin", "https://app.example.com")
		r.Header.Set("Access-Control-Request-Method", "GET")
		return r
	}
	on := newLocal(t, iss, func(h *Handler) { h.AllowPreflight = true })
	off := newLocal(t, iss, nil)
	if res := doReq(on, preflight()); res.reached || res.err != nil {
		t.Errorf("preflight with allow_preflight: reached=%v err=%v, want answered by the handler", res.reached, res.err)
	}
	if res := doReq(off, preflight()); res.reached || res.status != 401 {
		t.Errorf("preflight without allow_preflight: reached=%v status=%d", res.reached, res.status)
	}
	plain := httptest.NewRequest(http.MethodOptions, "/reports/q1", nil)
	plain.Header.Set("Origin", "https://app.example.com")
	if res := doReq(on, plain); res.reached {
		t.Error("OPTIONS without Access-Control-Request-Method passed unauthenticated")
	}
}

// TestKeyRotationLocal: a key made by another instance on the same storage
// is used at once.
func TestKeyRotationLocal(t *testing.T) {
	iss, clk := newIssuer(t, "ES256")
	h := newLocal(t, iss, nil)
	old := mint(t, iss, defaultAudClient)
	if res := do(h, "Bearer "+old); !res.reached {
		t.Fatalf("refused: %v", res.err)
	}
	// A second instance on the same storage, with another algorithm, makes
	// a new key at once and signs with it.
	cfg := *iss.Config
	cfg.SigningAlg = "EdDSA"
	st, _ := storages.Load(iss)
	other, err := issuer.New(t.Context(), "default", &cfg, st.(certmagic.Storage), zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	other.Now = clk.Now
	clk.Advance(2 * time.Second) // past the storage reread rate limit
	fresh := mint(t, other, defaultAudClient)
	if res := do(h, "Bearer "+fresh); !res.reached {
		t.Errorf("token of the rotated-in key refused: %v", res.err)
	}
}

func TestEveryIssuerAlgorithm(t *testing.T) {
	for _, alg := range []string{"ES256", "EdDSA", "RS256", "PS256"} {
		t.Run(alg, func(t *testing.T) {
			iss, _ := newIssuer(t, alg)
			h := newLocal(t, iss, nil)
			tok := mint(t, iss, defaultAudClient, "reports:read")
			if res := do(h, "Bearer "+tok); !res.reached {
				t.Fatalf("%s token refused: %v", alg, res.err)
			}
			c, err := h.verifier.Verify(t.Context(), tok)
			if err != nil || c.ClientID != "plain-client" || c.Scope != "reports:read" {
				t.Errorf("Verify = %+v, %v", c, err)
			}
			if _, err := h.verifier.Verify(t.Context(), tamper(tok)); err == nil {
				t.Error("Verify accepted a tampered token")
			}
		})
	}
}

package tokengate

import (
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"

	"github.com/tokengate/tokengate/internal/localissuer"
)

func parseOption(t *testing.T, input string, existing any) (*App, error) {
	t.Helper()
	d := caddyfile.NewTestDispenser(input)
	v, err := parseIssuerOption(d, existing)
	if err != nil {
		return nil, err
	}
	app := new(App)
	if err := json.Unmarshal(v.(httpcaddyfile.App).Value, app); err != nil {
		t.Fatal(err)
	}
	return app, nil
}

func TestParseIssuerOption(t *testing.T) {
	app, err := parseOption(t, `oauth_issuer {
		issuer https://auth.example.com
		signing_alg EdDSA
		token_ttl 15m
		refresh_ttl 48h
		refresh_reuse_interval 2s
		key_rotation 168h
		client reports {
			secret {env.REPORTS_SECRET}
			scopes reports:read reports:write
			audience reports-api
			grant_types client_credentials refresh_token
			token_ttl 5m
		}
		client billing {
			secret_hash $2a$14$X3ulqf/iGxnf1k6oMZ.RZeJUoqI9PX2PM4rS5lkIKJXduLGXGPrt6
		}
	}`, nil)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := json.Marshal(app)
	want := `{"issuers":{"default":{"issuer":"https://auth.example.com","signing_alg":"EdDSA","token_ttl":900000000000,"refresh_ttl":172800000000000,"refresh_reuse_interval":2000000000,"key_rotation":604800000000000,` +
		`"clients":[{"client_id":"reports","secret":"{env.REPORTS_SECRET}","scopes":["reports:read","reports:write"],"audience":["reports-api"],"grant_types":["client_credentials","refresh_token"],"token_ttl":300000000000},` +
		`{"client_id":"billing","secret_hash":"$2a$14$X3ulqf/iGxnf1k6oMZ.RZeJUoqI9PX2PM4rS5lkIKJXduLGXGPrt6"}]}}}`
	if string(got) != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
}

func TestParseIssuerOptionNamedAndRepeated(t *testing.T) {
	first := `oauth_issuer {
		issuer https://a.example
		client x {
			secret y
		}
	}`
	d := caddyfile.NewTestDispenser(first)
	v, err := parseIssuerOption(d, nil)
	if err != nil {
		t.Fatal(err)
	}
	app, err := parseOption(t, `oauth_issuer partners {
		issuer https://b.example
		client p {
			secret q
		}
	}`, v)
	if err != nil {
		t.Fatal(err)
	}
	if len(app.Issuers) != 2 || app.Issuers["default"].Issuer != "https://a.example" || app.Issuers["partners"].Issuer != "https://b.example" {
		t.Errorf("issuers = %+v", app.Issuers)
	}
	if _, err := parseOption(t, first, v); err == nil || !strings.Contains(err.Error(), "more than once") {
		t.Errorf("same name twice: %v", err)
	}
}

// TestParseIssuerOptionErrors: mistakes are reported by the parser, with
// the file and line of the option at fault.
func TestParseIssuerOptionErrors(t *testing.T) {
	const client = "client c {\n secret s\n }\n"
	const hash = "$2a$04$rinJTBtXzRcboDKTL.tIle8eu5IYrh6f/5w1tknSIlIqvCvr2cPYO"
	cases := map[string]struct {
		input, want string
		line        int
	}{
		"missing issuer":      {"oauth_issuer {\n" + client + "}", "issuer: the issuer URL is required", 1},
		"unknown option":      {"oauth_issuer {\n issuer https://a\n colour blue\n" + client + "}", `unknown option "colour"`, 3},
		"unknown client opt":  {"oauth_issuer {\n issuer https://a\n client c {\n secret s\n pasword x\n }\n}", `unknown option "pasword"`, 5},
		"unknown signing_alg": {"oauth_issuer {\n issuer https://a\n signing_alg HS256\n" + client + "}", `signing_alg: unsupported algorithm "HS256"`, 3},
		"issuer not a URL":    {"oauth_issuer {\n token_ttl 5m\n issuer auth.example.com\n" + client + "}", `issuer: "auth.example.com" must be an absolute http(s) URL`, 3},
		"issuer with query":   {"oauth_issuer {\n issuer https://a/?x=1\n" + client + "}", "without query", 2},
		"issuer ftp":          {"oauth_issuer {\n issuer ftp://a\n" + client + "}", "absolute http(s) URL", 2},
		"unknown grant type":  {"oauth_issuer {\n issuer https://a\n client c {\n secret s\n grant_types client_credentials password\n }\n}", `client "c": grant_types: unsupported grant type "password"`, 5},
		"refresh only":        {"oauth_issuer {\n issuer https://a\n client c {\n secret s\n grant_types refresh_token\n }\n}", "refresh_token needs client_credentials", 5},
		"malformed hash":      {"oauth_issuer {\n issuer https://a\n client c {\n scopes a\n secret_hash $2a$10$short\n }\n}", `client "c": secret_hash: malformed bcrypt hash`, 5},
		"not a hash":          {"oauth_issuer {\n issuer https://a\n client c {\n secret_hash hunter2\n }\n}", "secret_hash: not a bcrypt or argon2id hash", 4},
		"bad scope":           {"oauth_issuer {\n issuer https://a\n client c {\n secret s\n scopes a \"b\\\\c\"\n }\n}", `client "c": scopes: invalid scope`, 5},
		"both secrets":        {"oauth_issuer {\n issuer https://a\n client c {\n secret s\n secret_hash " + hash + "\n }\n}", "mutually exclusive", 5},
		"no secret":           {"oauth_issuer {\n issuer https://a\n client c {\n scopes a\n }\n}", `client "c": one of secret, secret_hash, jwks, jwks_uri or public_key`, 3},
		"bad client id":       {"oauth_issuer {\n issuer https://a\n client a:b {\n secret s\n }\n}", "client_id: must not contain ':'", 3},
		"duplicate client":    {"oauth_issuer {\n issuer https://a\n" + client + client + "}", `client "c": defined more than once`, 6},
		"no client":           {"oauth_issuer {\n issuer https://a\n token_ttl 1h\n}", "client: at least one client is required", 1},
		"rotation too short":  {"oauth_issuer {\n issuer https://a\n key_rotation 10s\n" + client + "}", "key_rotation: must be at least 1m", 3},
		"client without id":   {"oauth_issuer {\n issuer https://a\n client {\n secret s\n }\n}", "client id is required", 3},
		"bad duration":        {"oauth_issuer {\n issuer https://a\n token_ttl soon\n" + client + "}", "token_ttl: invalid duration", 3},
		"negative duration":   {"oauth_issuer {\n issuer https://a\n key_rotation -1h\n" + client + "}", "key_rotation: duration must be positive", 3},
		"issuer twice":        {"oauth_issuer {\n issuer https://a\n issuer https://b\n" + client + "}", "issuer given more than once", 3},
		"secret twice":        {"oauth_issuer {\n issuer https://a\n client c {\n secret s\n secret t\n }\n}", "secret given more than once", 5},
		"issuer two args":     {"oauth_issuer {\n issuer https://a https://b\n" + client + "}", "wrong argument count", 2},
		"two names":           {"oauth_issuer a b {\n issuer https://a\n" + client + "}", "wrong argument count", 1},
		"bad reuse interval":  {"oauth_issuer {\n issuer https://a\n refresh_reuse_interval never\n" + client + "}", `refresh_reuse_interval: "never" is neither a positive duration nor off`, 3},
		"zero reuse interval": {"oauth_issuer {\n issuer https://a\n refresh_reuse_interval 0s\n" + client + "}", "neither a positive duration nor off", 3},
		"reserved claim":      {"oauth_issuer {\n issuer https://a\n client c {\n secret s\n claims {\n tier 1\n scope admin\n }\n }\n}", `client "c": claims.scope: "scope" is set by the issuer`, 7},
		"claim twice":         {"oauth_issuer {\n issuer https://a\n client c {\n secret s\n claims {\n tier 1\n tier 2\n }\n }\n}", `claim "tier" given more than once`, 7},
		"claim without value": {"oauth_issuer {\n issuer https://a\n client c {\n secret s\n claims {\n tier\n }\n }\n}", `claim "tier" needs a value`, 6},
		"jwks_uri plain http": {"oauth_issuer {\n issuer https://a\n client c {\n scopes a\n jwks_uri http://example.com/jwks.json\n }\n}", `client "c": jwks_uri: "http://example.com/jwks.json" is plain http`, 5},
		"jwks_uri relative":   {"oauth_issuer {\n issuer https://a\n client c {\n jwks_uri /jwks.json\n }\n}", `jwks_uri: "/jwks.json" is not an absolute http(s) URL`, 4},
		"jwks_uri and jwks":   {"oauth_issuer {\n issuer https://a\n client c {\n jwks `{\"keys\":[]}`\n jwks_uri https://c.example/jwks\n }\n}", "jwks_uri: not together with jwks or public_key", 5},
		"jwks_uri two args":   {"oauth_issuer {\n issuer https://a\n client c {\n jwks_uri https://c.example/a https://c.example/b\n }\n}", "wrong argument count", 4},
		"scopes without args": {"oauth_issuer {\n issuer https://a\n client c {\n secret s\n scopes\n }\n}", "wrong argument count", 5},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := parseOption(t, tc.input, nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
			if at := fmt.Sprintf("Testfile:%d", tc.line); !strings.HasSuffix(err.Error(), at) {
				t.Errorf("error %q is not reported at %s", err, at)
			}
			if strings.Contains(err.Error(), "$2a$10$short") || strings.Contains(err.Error(), "hunter2") {
				t.Errorf("error echoes secret material: %v", err)
			}
		})
	}
}

func TestParseClientJWKSURI(t *testing.T) {
	app, err := parseOption(t, "oauth_issuer {\n issuer https://a\n client c {\n jwks_uri https://c.example/jwks.json\n token_endpoint_auth_methods private_key_jwt\n }\n}", nil)
	if err != nil {
		t.Fatal(err)
	}
	c := app.Issuers["default"].Clients[0]
	if c.JWKSURI != "https://c.example/jwks.json" || len(c.AuthMethods) != 1 {
		t.Errorf("client %+v", c)
	}
	raw, _ := json.Marshal(c)
	if !strings.Contains(string(raw), `"jwks_uri":"https://c.example/jwks.json"`) {
		t.Errorf("JSON %s", raw)
	}
}

// TestParseIssuerOptionPlaceholders: values holding a runtime placeholder
// are checked at provision, once replaced, not by the parser.
func TestParseIssuerOptionPlaceholders(t *testing.T) {
	_, err := parseOption(t, `oauth_issuer {
		issuer {env.ISSUER_URL}
		client c {
			secret_hash {file./run/secrets/c.hash}
		}
		client d {
			secret_hash {env.D_HASH}
		}
	}`, nil)
	if err != nil {
		t.Fatal(err)
	}
}

// TestParseClientClaims: a claim's value is JSON when it reads as JSON,
// a string otherwise, and an array when there are several.
func TestParseClientClaims(t *testing.T) {
	app, err := parseOption(t, "oauth_issuer {\n issuer https://a\n client c {\n secret s\n claims {\n tenant acme\n tier 3\n beta false\n roles a 2\n obj `{\"k\": [1]}`\n code `\"007\"`\n }\n }\n}", nil)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := json.Marshal(app.Issuers["default"].Clients[0].Claims)
	if want := `{"beta":false,"code":"007","obj":{"k":[1]},"roles":["a",2],"tenant":"acme","tier":3}`; string(got) != want {
		t.Errorf("claims %s, want %s", got, want)
	}
}

func TestParseThrottle(t *testing.T) {
	app, err := parseOption(t, "oauth_issuer {\n issuer https://a\n throttle {\n per_client 4\n per_address 9\n window 2m\n }\n client c {\n secret s\n }\n}", nil)
	if err != nil {
		t.Fatal(err)
	}
	th := app.Issuers["default"].Throttle
	if th == nil || th.PerClient != 4 || th.PerAddress != 9 || time.Duration(th.Window) != 2*time.Minute || th.Disabled {
		t.Errorf("throttle = %+v", th)
	}
	app, err = parseOption(t, "oauth_issuer {\n issuer https://a\n throttle off\n client c {\n secret s\n }\n}", nil)
	if err != nil || !app.Issuers["default"].Throttle.Disabled {
		t.Errorf("throttle off: %+v %v", app, err)
	}
	for input, want := range map[string]string{
		"throttle on":                    "the only argument is off",
		"throttle {\n per_client 0\n }":  "per_client must be a positive number",
		"throttle {\n per_address x\n }": "per_address must be a positive number",
		"throttle {\n burst 3\n }":       `throttle: unknown option "burst"`,
	} {
		_, err := parseOption(t, "oauth_issuer {\n issuer https://a\n "+input+"\n client c {\n secret s\n }\n}", nil)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: error %v, want %q", input, err, want)
		}
	}
}

// FuzzIssuerOption: the oauth_issuer parser never panics, and what it
// accepts is valid JSON for the app with an issuer URL set.
func FuzzIssuerOption(f *testing.F) {
	f.Add("oauth_issuer {\n issuer https://a\n client c {\n secret s\n scopes a b\n }\n}")
	f.Add("oauth_issuer x {\n issuer https://a\n throttle off\n client c {\n secret_hash $2a$04$x\n introspect_any\n }\n}")
	f.Add("oauth_issuer {\n issuer\n client {\n }\n}")
	f.Add("oauth_issuer {\n throttle {\n per_client -1\n window 0\n }\n}")
	f.Add("oauth_issuer { issuer \"\" client c { secret {env.X} token_ttl 1y } }")
	f.Add("oauth_issuer {\n issuer https://a\n client c {\n jwks_uri http://[::1]:8/k\n }\n}")
	f.Fuzz(func(t *testing.T, input string) {
		v, err := parseIssuerOption(caddyfile.NewTestDispenser(input), nil)
		if err != nil {
			return
		}
		app := new(App)
		if err := json.Unmarshal(v.(httpcaddyfile.App).Value, app); err != nil {
			t.Fatalf("accepted input gave bad JSON: %v", err)
		}
		for name, cfg := range app.Issuers {
			if cfg.Issuer == "" {
				t.Fatalf("issuer %q accepted without an issuer URL", name)
			}
			for _, c := range cfg.Clients {
				if u, err := url.Parse(c.JWKSURI); c.JWKSURI != "" && (err != nil || (u.Scheme != "https" && !localissuer.IsLoopbackHost(u.Hostname()))) {
					t.Fatalf("client %q accepted with jwks_uri %q", c.ClientID, c.JWKSURI)
				}
			}
		}
	})
}

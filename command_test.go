package tokengate

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/caddyauth"
	"github.com/spf13/cobra"
	"golang.org/x/crypto/bcrypt"

	"github.com/tokengate/tokengate/internal/clients"
	"github.com/tokengate/tokengate/internal/localissuer"
)

// runCommand runs a registered caddy subcommand in-process, as caddycmd
// builds it, and returns what it wrote.
func runCommand(t *testing.T, stdin string, name string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	c, ok := caddycmd.Commands()[name]
	if !ok {
		t.Fatalf("command %q is not registered", name)
	}
	if c.Short == "" || c.Long == "" || c.Usage == "" {
		t.Errorf("command %q: missing help text", name)
	}
	cmd := &cobra.Command{Use: c.Name + " " + c.Usage, Short: c.Short, Long: c.Long, SilenceUsage: true}
	c.CobraFunc(cmd)
	var out, errOut bytes.Buffer
	cmd.SetArgs(args)
	cmd.SetIn(strings.NewReader(stdin))
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	err = cmd.Execute()
	return out.String(), errOut.String(), err
}

// newClientJSON runs oauth-client --json at the lowest bcrypt cost.
func newClientJSON(t *testing.T, args ...string) newClient {
	t.Helper()
	out, _, err := runCommand(t, "", "oauth-client", append([]string{"--json", "--bcrypt-cost", "4"}, args...)...)
	if err != nil {
		t.Fatal(err)
	}
	var c newClient
	if err := json.Unmarshal([]byte(out), &c); err != nil {
		t.Fatalf("output is not the JSON object: %v\n%s", err, out)
	}
	return c
}

// parseClientBlock reads a client block with the real oauth_issuer parser.
func parseClientBlock(t *testing.T, block string) *clients.Config {
	t.Helper()
	d := caddyfile.NewTestDispenser("oauth_issuer {\n\tissuer https://x\n" + block + "}\n")
	v, err := parseIssuerOption(d, nil)
	if err != nil {
		t.Fatalf("the printed block does not parse: %v\n%s", err, block)
	}
	app := new(App)
	if err := json.Unmarshal(v.(httpcaddyfile.App).Value, app); err != nil {
		t.Fatal(err)
	}
	cs := app.Issuers["default"].Clients
	if len(cs) != 1 {
		t.Fatalf("want 1 client, got %d", len(cs))
	}
	return cs[0]
}

func authenticates(t *testing.T, cfg *clients.Config, secret string) bool {
	t.Helper()
	reg, err := clients.NewRegistry([]*clients.Config{cfg})
	if err != nil {
		t.Fatalf("registry refuses the client: %v", err)
	}
	_, err = reg.Authenticate(cfg.ClientID, secret, nil)
	if err != nil && !errors.Is(err, clients.ErrInvalidClient) {
		t.Fatal(err)
	}
	return err == nil
}

var unreservedOnly = regexp.MustCompile(`^[A-Za-z0-9._~-]+$`)

func TestOAuthClientBlockParsesAndAuthenticates(t *testing.T) {
	c := newClientJSON(t, "--id", "reports.svc", "--scopes", "reports:read, reports:write admin,reports:read",
		"--audience", "legacy-api", "--audience", "https://api.example.com/v1", "--refresh")

	if c.ClientID != "reports.svc" {
		t.Errorf("client_id = %q", c.ClientID)
	}
	raw, err := base64.RawURLEncoding.DecodeString(c.ClientSecret)
	if err != nil || len(raw) < 32 {
		t.Errorf("secret %q is not ≥ 256 bits of base64url (%d bytes, %v)", c.ClientSecret, len(raw), err)
	}
	if !unreservedOnly.MatchString(c.ClientSecret) {
		t.Errorf("secret %q has characters that need escaping", c.ClientSecret)
	}
	if unescaped, _ := url.QueryUnescape(c.ClientSecret); unescaped != c.ClientSecret {
		t.Errorf("secret reads differently form-decoded: %q", unescaped)
	}
	if cost, err := bcrypt.Cost([]byte(c.SecretHash)); err != nil || cost != 4 {
		t.Errorf("secret_hash %q: cost %d, %v", c.SecretHash, cost, err)
	}

	want := "client reports.svc {\n\tsecret_hash " + c.SecretHash + "\n" +
		"\tscopes reports:read reports:write admin\n" +
		"\taudience legacy-api https://api.example.com/v1\n" +
		"\tgrant_types client_credentials refresh_token\n}\n"
	if c.Caddyfile != want {
		t.Errorf("caddyfile:\n%s\nwant:\n%s", c.Caddyfile, want)
	}

	cfg := parseClientBlock(t, c.Caddyfile)
	if cfg.ClientID != c.ClientID || cfg.SecretHash != c.SecretHash || cfg.Secret != "" {
		t.Errorf("parsed client %+v", cfg)
	}
	if !slices.Equal(cfg.Scopes, []string{"reports:read", "reports:write", "admin"}) {
		t.Errorf("scopes %q", cfg.Scopes)
	}
	if !slices.Equal(cfg.Audience, []string{"legacy-api", "https://api.example.com/v1"}) {
		t.Errorf("audience %q", cfg.Audience)
	}
	if !cfg.Allows(clients.GrantRefreshToken) || !cfg.Allows(clients.GrantClientCredentials) {
		t.Errorf("grant types %q", cfg.GrantTypes)
	}
	if !authenticates(t, cfg, c.ClientSecret) {
		t.Error("the printed secret does not authenticate against the printed hash")
	}
	if authenticates(t, cfg, c.ClientSecret[1:]) {
		t.Error("a wrong secret authenticates")
	}
}

// TestOAuthClientText checks the text output and the defaults; the hash is
// made at the lowest cost, as cost 14 takes seconds under -race.
func TestOAuthClientText(t *testing.T) {
	out, _, err := runCommand(t, "", "oauth-client", "--bcrypt-cost", "4")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?s)^client_id: +(\S+)\nclient_secret: +(\S+)\n.*?\n(client \S+ \{\n.*\}\n)$`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("unexpected output:\n%s", out)
	}
	id, secret, block := m[1], m[2], m[3]
	if !regexp.MustCompile(`^client-[0-9a-f]{16}$`).MatchString(id) {
		t.Errorf("random id %q", id)
	}
	cfg := parseClientBlock(t, block)
	if cfg.ClientID != id || len(cfg.Scopes) != 0 || len(cfg.Audience) != 0 || len(cfg.GrantTypes) != 0 {
		t.Errorf("want a minimal block, got %+v", cfg)
	}
	if !authenticates(t, cfg, secret) {
		t.Error("the printed secret does not authenticate against the printed hash")
	}

	// The default cost is caddy hash-password's, read from a hash it made.
	caddyCost, err := bcrypt.Cost(caddyauth.BcryptHash{}.FakeHash())
	if err != nil {
		t.Fatal(err)
	}
	cmd := &cobra.Command{}
	caddycmd.Commands()["oauth-client"].CobraFunc(cmd)
	if def := cmd.Flags().Lookup("bcrypt-cost").DefValue; def != fmt.Sprint(caddyCost) {
		t.Errorf("--bcrypt-cost defaults to %s, caddy hash-password to %d", def, caddyCost)
	}
	if def := cmd.Flags().Lookup("algorithm").DefValue; def != "bcrypt" {
		t.Errorf("--algorithm defaults to %s", def)
	}
}

func TestOAuthClientArgon2id(t *testing.T) {
	out, _, err := runCommand(t, "", "oauth-client", "--json", "--algorithm", "argon2id", "--id", "a")
	if err != nil {
		t.Fatal(err)
	}
	var c newClient
	if err := json.Unmarshal([]byte(out), &c); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(c.SecretHash, "$argon2id$v=19$m=47104,t=1,p=1$") {
		t.Errorf("hash %q: want caddy hash-password's default parameters", c.SecretHash)
	}
	cfg := parseClientBlock(t, c.Caddyfile)
	if !authenticates(t, cfg, c.ClientSecret) {
		t.Error("the printed secret does not authenticate against its argon2id hash")
	}
	if authenticates(t, cfg, strings.ToUpper(c.ClientSecret)) {
		t.Error("a wrong secret authenticates")
	}
}

func TestOAuthClientRandomEachRun(t *testing.T) {
	a, b := newClientJSON(t), newClientJSON(t)
	if a.ClientID == b.ClientID || a.ClientSecret == b.ClientSecret || a.SecretHash == b.SecretHash {
		t.Errorf("two runs share an id, secret or hash:\n%+v\n%+v", a, b)
	}
	c := newClientJSON(t, "--id", "fixed")
	d := newClientJSON(t, "--id", "fixed")
	if c.ClientSecret == d.ClientSecret {
		t.Error("a fixed id gets the same secret twice")
	}
}

// adaptClient reads a client block back from a whole Caddyfile through the
// caddyfile adapter users run (env substitution, comments and all).
func adaptClient(t testing.TB, block string) (*clients.Config, error) {
	caddyfileText := "{\n\toauth_issuer {\n\t\tissuer https://x\n\t\t" +
		strings.ReplaceAll(block, "\n", "\n\t\t") + "\n\t}\n}\n:9080 {\n\trespond ok\n}\n"
	cfgJSON, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(caddyfileText), nil)
	if err != nil {
		return nil, fmt.Errorf("adapting:\n%s\n%v", caddyfileText, err)
	}
	var cfg struct {
		Apps struct {
			Tokengate App `json:"tokengate"`
		} `json:"apps"`
	}
	if err := json.Unmarshal(cfgJSON, &cfg); err != nil {
		return nil, err
	}
	iss := cfg.Apps.Tokengate.Issuers["default"]
	if iss == nil || len(iss.Clients) != 1 {
		return nil, fmt.Errorf("no single client in %s", cfgJSON)
	}
	return iss.Clients[0], nil
}

// TestOAuthClientOddValuesRoundTrip: scopes and audiences the command
// accepts read back unchanged from a whole Caddyfile.
func TestOAuthClientOddValuesRoundTrip(t *testing.T) {
	scopes := []string{"a!b", "x:y/z", "'q'", "%41", "a#b", "(x)", "$HOME", "a$b", "~", "a<b", "*"}
	aud := []string{"https://api.example.com/v1?x=1&y=2", "urn:a:b", "x;y=z"}
	c := newClientJSON(t, "--id", "A-z_0.9~", "--scopes", strings.Join(scopes, " "), "--audience", strings.Join(aud, ","))
	got, err := adaptClient(t, c.Caddyfile)
	if err != nil {
		t.Fatal(err)
	}
	if got.ClientID != "A-z_0.9~" || got.SecretHash != c.SecretHash {
		t.Errorf("id %q hash %q", got.ClientID, got.SecretHash)
	}
	if !slices.Equal(got.Scopes, scopes) {
		t.Errorf("scopes %q, want %q", got.Scopes, scopes)
	}
	if !slices.Equal(got.Audience, aud) {
		t.Errorf("audience %q, want %q", got.Audience, aud)
	}
}

// FuzzClientBlock: whatever --scopes and --audience values the command
// accepts, the printed block reads back as exactly those values.
func FuzzClientBlock(f *testing.F) {
	f.Add("reports:read admin", "https://api.example.com")
	f.Add("a#b,x{y", "`q`")
	f.Add("{$HOME} <<EOF", "#x")
	f.Add("a\\b \"c\"", "\u00e9")
	const hash = "$2a$04$rinJTBtXzRcboDKTL.tIle8eu5IYrh6f/5w1tknSIlIqvCvr2cPYO"
	f.Fuzz(func(t *testing.T, scopeArg, audArg string) {
		scopes, err1 := caddyfileValues("scopes", []string{scopeArg})
		aud, err2 := caddyfileValues("audience", []string{audArg})
		if err1 != nil || err2 != nil {
			return
		}
		got, err := adaptClient(t, clientBlock("id", hash, scopes, aud, false))
		if err != nil {
			t.Fatal(err)
		}
		if got.SecretHash != hash || !slices.Equal(got.Scopes, scopes) || !slices.Equal(got.Audience, aud) {
			t.Errorf("read back %q %q %q, want %q %q", got.SecretHash, got.Scopes, got.Audience, scopes, aud)
		}
		if err := got.Validate(true); err != nil {
			t.Errorf("the registry refuses it: %v", err)
		}
	})
}

func TestOAuthClientBadFlags(t *testing.T) {
	for _, args := range [][]string{
		{"--id", "a:b"},
		{"--id", "a b"},
		{"--id", ""},
		{"--id", "é"},
		{"--id", "a+b"},
		{"--id", "a%20"},
		{"--id", "{env.X}"},
		{"--id", strings.Repeat("a", 256)},
		{"--scopes", `bad"scope`},
		{"--scopes", `back\slash`},
		{"--scopes", "{env.X}"},
		{"--scopes", "{$HOME}"},
		{"--scopes", "#comment"},
		{"--scopes", "<<EOF"},
		{"--scopes", "ünï"},
		{"--audience", "`x`"},
		{"--audience", "}"},
		{"--algorithm", "md5"},
		{"--bcrypt-cost", "3"},
		{"--bcrypt-cost", "32"},
		{"--algorithm", "argon2id", "--bcrypt-cost", "10"},
		{"--nope"},
		{"extra-argument"},
	} {
		// Each fails before hashing, so the default cost costs nothing here.
		out, _, err := runCommand(t, "", "oauth-client", args...)
		if err == nil {
			t.Errorf("%q: no error", args)
		}
		if out != "" {
			t.Errorf("%q: printed %q despite the error", args, out)
		}
	}
}

// tokenServer answers like the token endpoint and records what it got.
type tokenServer struct {
	*httptest.Server
	requests atomic.Int32
}

const tokenAnswer = `{"access_token":"eyJ.x.y","token_type":"Bearer","expires_in":3600}`

func newTokenServer(t *testing.T, wantPath, wantID, wantSecret, wantScope string, wantResources []string) *tokenServer {
	t.Helper()
	ts := &tokenServer{}
	ts.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ts.requests.Add(1)
		fail := func(format string, args ...any) {
			t.Errorf(format, args...)
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusBadRequest)
			fmt.Fprintf(w, `{"error":"invalid_request","error_description":%q}`, fmt.Sprintf(format, args...))
		}
		if r.Method != http.MethodPost || r.URL.Path != wantPath || r.URL.RawQuery != "" {
			fail("got %s %s", r.Method, r.URL)
			return
		}
		if ct := r.Header.Get("Content-Type"); ct != "application/x-www-form-urlencoded" {
			fail("content type %q", ct)
			return
		}
		if err := r.ParseForm(); err != nil {
			fail("form: %v", err)
			return
		}
		if g := r.PostForm["grant_type"]; !slices.Equal(g, []string{"client_credentials"}) {
			fail("grant_type %q", g)
			return
		}
		if s := r.PostForm.Get("scope"); s != wantScope {
			fail("scope %q, want %q", s, wantScope)
			return
		}
		if rs := r.PostForm["resource"]; !slices.Equal(rs, wantResources) {
			fail("resource %q, want %q", rs, wantResources)
			return
		}
		if _, ok := r.PostForm["client_secret"]; ok {
			fail("secret in the body")
			return
		}
		user, pass, ok := r.BasicAuth()
		if !ok {
			fail("no Basic credentials")
			return
		}
		// RFC 6749 §2.3.1: form-decoded after Basic decoding.
		id, err1 := url.QueryUnescape(user)
		secret, err2 := url.QueryUnescape(pass)
		if err1 != nil || err2 != nil || id != wantID || secret != wantSecret {
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("WWW-Authenticate", `Basic realm="oauth"`)
			w.WriteHeader(http.StatusUnauthorized)
			io.WriteString(w, `{"error":"invalid_client","error_description":"client authentication failed"}`)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, tokenAnswer)
	}))
	t.Cleanup(ts.Close)
	return ts
}

func TestOAuthToken(t *testing.T) {
	// '+', '%', ':' and space change meaning if not form-encoded.
	const id, secret = "svc.reports", "p+a%20ss:w rd"
	ts := newTokenServer(t, "/auth/oauth/token", id, secret, "reports:read reports:write", []string{"https://api.example/", "urn:x"})
	for _, u := range []string{ts.URL + "/auth", ts.URL + "/auth/", ts.URL + "/auth/oauth/token"} {
		out, errOut, err := runCommand(t, "", "oauth-token", "--url", u, "--id", id, "--secret", secret,
			"--scope", "reports:read,reports:write", "--resource", "https://api.example/", "--resource", "urn:x")
		if err != nil {
			t.Errorf("--url %s: %v (%s)", u, err, errOut)
			continue
		}
		if out != tokenAnswer+"\n" {
			t.Errorf("--url %s: stdout %q", u, out)
		}
		if errOut != "" {
			t.Errorf("--url %s: stderr %q", u, errOut)
		}
	}
	if n := ts.requests.Load(); n != 3 {
		t.Errorf("server saw %d requests, want 3", n)
	}
}

func TestOAuthTokenSecretSources(t *testing.T) {
	ts := newTokenServer(t, "/oauth/token", "c", "s3cret", "", nil)
	t.Setenv("TOKENGATE_TEST_SECRET", "s3cret")
	for name, run := range map[string]func() (string, string, error){
		"env": func() (string, string, error) {
			return runCommand(t, "", "oauth-token", "--url", ts.URL, "--id", "c", "--secret-env", "TOKENGATE_TEST_SECRET")
		},
		"stdin": func() (string, string, error) {
			return runCommand(t, "s3cret\n", "oauth-token", "--url", ts.URL, "--id", "c")
		},
		"stdin crlf": func() (string, string, error) {
			return runCommand(t, "s3cret\r\nmore", "oauth-token", "--url", ts.URL, "--id", "c")
		},
		"stdin eof": func() (string, string, error) {
			return runCommand(t, "s3cret", "oauth-token", "--url", ts.URL, "--id", "c")
		},
	} {
		out, errOut, err := run()
		if err != nil || out != tokenAnswer+"\n" {
			t.Errorf("%s: %v, stdout %q, stderr %q", name, err, out, errOut)
		}
	}
}

func TestOAuthTokenErrorAnswer(t *testing.T) {
	ts := newTokenServer(t, "/oauth/token", "c", "right", "", nil)
	out, errOut, err := runCommand(t, "", "oauth-token", "--url", ts.URL, "--id", "c", "--secret", "wrong")
	if err == nil || !strings.Contains(err.Error(), "401") {
		t.Errorf("want an error naming the 401, got %v", err)
	}
	if out != "" {
		t.Errorf("stdout %q", out)
	}
	var answer struct{ Error string }
	if json.Unmarshal([]byte(errOut), &answer) != nil || answer.Error != "invalid_client" {
		t.Errorf("stderr %q: want the error JSON", errOut)
	}
	if strings.Contains(err.Error(), "wrong") || strings.Contains(errOut, "wrong") {
		t.Error("the secret shows in the error")
	}

	// The exit status Main would use.
	c := caddycmd.Commands()["oauth-token"]
	cmd := &cobra.Command{Use: "oauth-token"}
	c.CobraFunc(cmd)
	if err := cmd.ParseFlags([]string{"--url", ts.URL, "--id", "c", "--secret", "wrong"}); err != nil {
		t.Fatal(err)
	}
	if status, err := cmdOAuthToken(caddycmd.Flags{FlagSet: cmd.Flags()}, strings.NewReader(""), io.Discard, io.Discard); status != 1 || err == nil {
		t.Errorf("status %d, %v; want 1 and an error", status, err)
	}
}

func TestOAuthTokenRefusesRedirectAndNonJSON(t *testing.T) {
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		if r.URL.Path == "/plain/oauth/token" {
			io.WriteString(w, "<html>hello</html>")
			return
		}
		http.Redirect(w, r, "https://elsewhere.example/oauth/token", http.StatusPermanentRedirect)
	}))
	defer srv.Close()
	out, _, err := runCommand(t, "", "oauth-token", "--url", srv.URL, "--id", "c", "--secret", "s")
	if err == nil || !strings.Contains(err.Error(), "elsewhere.example") || out != "" {
		t.Errorf("redirect: %v, stdout %q", err, out)
	}
	if n := hits.Load(); n != 1 {
		t.Errorf("%d requests: the redirect was followed", n)
	}
	out, errOut, err := runCommand(t, "", "oauth-token", "--url", srv.URL+"/plain", "--id", "c", "--secret", "s")
	if err == nil || out != "" || !strings.Contains(errOut, "hello") {
		t.Errorf("non-JSON 200: %v, stdout %q, stderr %q", err, out, errOut)
	}
}

func TestOAuthTokenBadFlags(t *testing.T) {
	ts := newTokenServer(t, "/oauth/token", "c", "s", "", nil)
	t.Setenv("TOKENGATE_TEST_EMPTY", "")
	for _, tc := range []struct {
		stdin string
		args  []string
	}{
		{"", []string{"--url", ts.URL, "--secret", "s"}},                                   // no id
		{"", []string{"--url", ts.URL, "--id", "c"}},                                       // no secret anywhere
		{"", []string{"--url", ts.URL, "--id", "c", "--secret", ""}},                       // empty secret
		{"", []string{"--url", ts.URL, "--id", "c", "--secret", "s", "--secret-env", "X"}}, // both
		{"s", []string{"--url", ts.URL, "--id", "c", "--secret-env", "TOKENGATE_TEST_EMPTY"}},
		{"s", []string{"--url", ts.URL, "--id", "c", "--secret-env", "TOKENGATE_TEST_UNSET_VARIABLE"}},
		{"s", []string{"--url", "ftp://x/", "--id", "c"}},
		{"s", []string{"--url", "localhost:8381", "--id", "c"}},
		{"s", []string{"--url", ts.URL + "?grant_type=client_credentials", "--id", "c"}},
		{"s", []string{"--url", strings.Replace(ts.URL, "http://", "http://c:s@", 1), "--id", "c"}},
		{"s", []string{"--url", ts.URL, "--id", "c", "--nope"}},
		{"s", []string{"--url", ts.URL, "--id", "c", "extra"}},
	} {
		out, _, err := runCommand(t, tc.stdin, "oauth-token", tc.args...)
		if err == nil || out != "" {
			t.Errorf("%q: %v, stdout %q", tc.args, err, out)
		}
	}
	if n := ts.requests.Load(); n != 0 {
		t.Errorf("%d requests sent despite bad flags", n)
	}
}

func TestTokenEndpoint(t *testing.T) {
	for in, want := range map[string]string{
		"http://localhost:8381":                "http://localhost:8381/oauth/token",
		"https://auth.example.com/":            "https://auth.example.com/oauth/token",
		"https://example.com/auth":             "https://example.com/auth/oauth/token",
		"https://example.com/auth/oauth/token": "https://example.com/auth/oauth/token",
		"https://example.com/a%2Fb":            "https://example.com/a%2Fb/oauth/token",
		"http://[::1]:8381/oauth/token":        "http://[::1]:8381/oauth/token",
	} {
		u, err := tokenEndpoint(in)
		if err != nil || u.String() != want {
			t.Errorf("%s: got %v, %v; want %s", in, u, err, want)
		}
	}
}

func TestPlainHTTPWarning(t *testing.T) {
	for host, loopback := range map[string]bool{"localhost": true, "127.0.0.1": true, "::1": true, "a.localhost": true, "example.com": false, "10.0.0.1": false} {
		if localissuer.IsLoopbackHost(host) != loopback {
			t.Errorf("IsLoopbackHost(%q) = %v", host, !loopback)
		}
	}
}

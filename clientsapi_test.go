package tokengate_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"

	"github.com/tokengate/tokengate/internal/testcaddy"
)

func apiClusterConfig(port, admin int, storage string) string {
	return clusterCaddyfile(port, fmt.Sprintf("localhost:%d", admin), storage,
		`respond "hello {http.auth.user.id} {http.auth.user.claims.tier}"`)
}

// apiInstance is an instance with its admin endpoint.
type apiInstance struct {
	instance
	admin string
}

func (in *apiInstance) api(t *testing.T, method, path, body string) (int, map[string]any) {
	t.Helper()
	var hdr []string
	if body != "" {
		hdr = []string{"Content-Type", "application/json"}
	}
	req, _ := http.NewRequest(method, in.admin+"/tokengate/issuers/default/clients"+path, strings.NewReader(body))
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

func (in *apiInstance) list(t *testing.T) string {
	t.Helper()
	status, body := httpDo(t, http.MethodGet, in.admin+"/tokengate/issuers/default/clients", "")
	if status != 200 {
		t.Fatalf("list: %d %s", status, body)
	}
	return string(body)
}

// tokenFor asks for a token with client credentials: the status and the
// answer's access and refresh tokens.
func (in *apiInstance) tokenFor(t *testing.T, id, secret string) (int, string, string) {
	t.Helper()
	basic := "Basic " + base64.StdEncoding.EncodeToString([]byte(id+":"+secret))
	status, body := httpDo(t, http.MethodPost, in.base+"/oauth/token?grant_type=client_credentials", "", "Authorization", basic)
	var ans struct {
		AccessToken  string `json:"access_token"`
		RefreshToken string `json:"refresh_token"`
	}
	_ = json.Unmarshal(body, &ans)
	return status, ans.AccessToken, ans.RefreshToken
}

func (in *apiInstance) refresh(t *testing.T, id, secret, rt string) int {
	t.Helper()
	basic := "Basic " + base64.StdEncoding.EncodeToString([]byte(id+":"+secret))
	status, _ := httpDo(t, http.MethodPost, in.base+"/oauth/token", "grant_type=refresh_token&refresh_token="+rt, "Authorization", basic)
	return status
}

// within polls cond until it holds or d has passed.
func within(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestClientsAPIAcrossInstances drives the admin API of one instance and
// watches the other: a client made at A gets tokens at B; a rotated
// secret keeps working until its grace ends; a disabled client's live
// tokens and refresh tokens are refused at both within revocation_sync;
// API clients survive a restart and a config reload; malformed requests
// change nothing.
func TestClientsAPIAcrossInstances(t *testing.T) {
	storage := t.TempDir()
	testcaddy.Binary(t)
	var ins []*apiInstance
	for i, p := range []int{9481, 9482} {
		admin := 2981 + i
		in := &apiInstance{instance: instance{base: fmt.Sprintf("http://localhost:%d", p), cfg: apiClusterConfig(p, admin, storage)},
			admin: fmt.Sprintf("http://localhost:%d", admin)}
		in.proc = testcaddy.SpawnProcess(t, in.cfg)
		ins = append(ins, in)
	}
	for _, in := range ins {
		in.proc.WaitReady(in.base + "/.well-known/jwks.json")
	}
	a, b := ins[0], ins[1]
	// 2 s is revocation_sync (1 s) with room for a busy machine.
	const syncWait = 3 * time.Second

	before := a.list(t)
	malformed := map[string]struct{ body, field string }{
		"unknown field":    {`{"client_id":"app1","scopes":["read"],"colour":"blue"}`, ""},
		"bad id":           {`{"client_id":"app 1"}`, "client_id"},
		"id with slash":    {`{"client_id":"a/b"}`, "client_id"},
		"scope with space": {`{"client_id":"app1","scopes":["read write"]}`, "scopes"},
		"reserved claim":   {`{"client_id":"app1","claims":{"scope":"admin"}}`, "claims.scope"},
		"secret given":     {`{"client_id":"app1","secret":"mine"}`, "secret"},
		"bad grant":        {`{"client_id":"app1","grant_types":["password"]}`, "grant_types"},
		"jwks_uri given":   {`{"client_id":"app1","jwks_uri":"https://app1.example/jwks.json"}`, "jwks_uri"},
		"two values":       {`{"client_id":"app1"}{"client_id":"app2"}`, ""},
		"not JSON":         {`client_id=app1`, ""},
		"huge body":        {`{"client_id":"app1","audience":["` + strings.Repeat("x", 70<<10) + `"]}`, ""},
	}
	for name, tc := range malformed {
		status, ans := a.api(t, http.MethodPost, "", tc.body)
		if status != 400 || ans["error"] == nil || (tc.field != "" && ans["field"] != tc.field) {
			t.Errorf("%s: %d %v, want 400 naming %q", name, status, ans, tc.field)
		}
	}
	if after := a.list(t); after != before {
		t.Fatalf("malformed requests changed the clients: %s -> %s", before, after)
	}

	// Create at A, use at B.
	status, ans := a.api(t, http.MethodPost, "", `{"client_id":"app1","scopes":["read","audit"],"audience":["api"],"grant_types":["client_credentials","refresh_token"],"claims":{"tier":"gold"}}`)
	secret1, _ := ans["client_secret"].(string)
	if status != 201 || len(secret1) != 43 || ans["source"] != "api" {
		t.Fatalf("create: %d %v", status, ans)
	}
	if strings.Contains(a.list(t), secret1) {
		t.Fatal("the list shows the secret")
	}
	if _, md := httpDo(t, http.MethodGet, a.base+"/.well-known/oauth-authorization-server", ""); !strings.Contains(string(md), `"scopes_supported":["read","audit"]`) {
		// The runtime client's scopes are advertised after the configured ones.
		t.Errorf("metadata: %s", md)
	}
	if status, _ := a.api(t, http.MethodPost, "", `{"client_id":"app1"}`); status != 409 {
		t.Errorf("create twice: %d, want 409", status)
	}
	for _, c := range []struct{ method, path, body string }{
		{http.MethodPut, "/svc", `{"scopes":["read"]}`}, {http.MethodDelete, "/svc", ""}, {http.MethodPost, "/svc/rotate-secret", ""},
		{http.MethodPost, "", `{"client_id":"svc"}`},
	} {
		if status, _ := a.api(t, c.method, c.path, c.body); status != 409 {
			t.Errorf("%s %s on a configured client: %d, want 409", c.method, c.path, status)
		}
	}
	for _, path := range []string{"/nobody", "/nobody/disable"} {
		method := http.MethodGet
		if strings.HasSuffix(path, "disable") {
			method = http.MethodPost
		}
		if status, _ := a.api(t, method, path, ""); status != 404 {
			t.Errorf("%s %s: %d, want 404", method, path, status)
		}
	}
	// B's admin API tells when B has read the change; polling B's token
	// endpoint instead would count failures against the throttle.
	if !within(syncWait, func() bool { s, _ := b.api(t, http.MethodGet, "/app1", ""); return s == 200 }) {
		t.Fatal("B never read the client made at A")
	}
	status, tok, _ := b.tokenFor(t, "app1", secret1)
	if status != 200 {
		t.Fatalf("token at B for the client made at A: %d", status)
	}
	if status, body := b.call(t, tok); status != 200 || body != "hello app1 gold" {
		t.Errorf("B's route with app1's token: %d %q", status, body)
	}

	// Rotation: both secrets until the grace ends, then only the new one.
	status, ans = a.api(t, http.MethodPost, "/app1/rotate-secret", `{"grace":"4s"}`)
	secret2, _ := ans["client_secret"].(string)
	if status != 200 || secret2 == "" || secret2 == secret1 {
		t.Fatalf("rotate: %d %v", status, ans)
	}
	if !within(syncWait, func() bool { _, v := b.api(t, http.MethodGet, "/app1", ""); return v["previous_secrets_expire"] != nil }) {
		t.Fatal("B never read the rotation")
	}
	if s, _, _ := b.tokenFor(t, "app1", secret2); s != 200 {
		t.Fatalf("new secret at B: %d", s)
	}
	for _, in := range ins {
		if s, _, _ := in.tokenFor(t, "app1", secret1); s != 200 {
			t.Errorf("%s: old secret refused during its grace: %d", in.base, s)
		}
	}
	time.Sleep(4 * time.Second)
	for _, in := range ins {
		if s, _, _ := in.tokenFor(t, "app1", secret1); s != 401 {
			t.Errorf("%s: old secret after its grace: %d, want 401", in.base, s)
		}
		if s, _, _ := in.tokenFor(t, "app1", secret2); s != 200 {
			t.Errorf("%s: new secret: %d", in.base, s)
		}
	}

	// The kill switch: disable at A; the live token is refused at A at
	// once and at B within revocation_sync, and so is its refresh token.
	_, access, rt := a.tokenFor(t, "app1", secret2)
	if status, _ := b.call(t, access); status != 200 {
		t.Fatalf("token before disable: %d", status)
	}
	if status, ans := a.api(t, http.MethodPost, "/app1/disable", ""); status != 200 || ans["disabled"] != true {
		t.Fatalf("disable: %d %v", status, ans)
	}
	if status, _ := a.call(t, access); status != 401 {
		t.Errorf("A accepted a disabled client's token: %d", status)
	}
	if !within(syncWait, func() bool { s, _ := b.call(t, access); return s == 401 }) {
		t.Error("B still accepts a disabled client's token")
	}
	for _, in := range ins {
		if s, _, _ := in.tokenFor(t, "app1", secret2); s != 401 {
			t.Errorf("%s: token endpoint for a disabled client: %d, want 401", in.base, s)
		}
	}
	if status, ans := a.api(t, http.MethodPost, "/app1/enable", ""); status != 200 || ans["disabled"] == true {
		t.Fatalf("enable: %d %v", status, ans)
	}
	time.Sleep(1100 * time.Millisecond) // a new second: tokens issued after the cut-off
	if !within(syncWait, func() bool { _, v := b.api(t, http.MethodGet, "/app1", ""); return v["disabled"] == nil }) {
		t.Fatal("B never read the enable")
	}
	if s, _, _ := b.tokenFor(t, "app1", secret2); s != 200 {
		t.Fatalf("B refuses an enabled client: %d", s)
	}
	if status, _ := b.call(t, access); status != 401 {
		t.Errorf("enabling brought a cut-off token back: %d", status)
	}
	for _, in := range ins {
		if s := in.refresh(t, "app1", secret2, rt); s != 400 {
			t.Errorf("%s: refresh token issued before the cut-off: %d, want 400", in.base, s)
		}
	}

	// A configured client can be disabled (not changed), and its tokens
	// revoked.
	_, svcTok, _ := b.tokenFor(t, "svc", "svc-secret")
	if status, _ := a.api(t, http.MethodPost, "/svc/revoke-tokens", ""); status != 200 {
		t.Fatalf("revoke-tokens of a configured client: %d", status)
	}
	if !within(syncWait, func() bool { s, _ := b.call(t, svcTok); return s == 401 }) {
		t.Error("B still accepts a configured client's revoked token")
	}
	basic := "Basic " + base64.StdEncoding.EncodeToString([]byte("svc:svc-secret"))
	for _, in := range ins {
		status, body := httpDo(t, http.MethodPost, in.base+"/oauth/introspect", "token="+svcTok, "Authorization", basic)
		if status != 200 || !strings.Contains(string(body), `"active":false`) {
			t.Errorf("%s: introspection of a revoked client's token: %d %s", in.base, status, body)
		}
	}

	// Survives a restart of B and a config reload of A.
	b.proc.Stop()
	b.proc = testcaddy.StartProcess(t, b.cfg, b.base+"/.well-known/jwks.json")
	if s, _, _ := b.tokenFor(t, "app1", secret2); s != 200 {
		t.Errorf("after a restart: %d", s)
	}
	status, body := httpDo(t, http.MethodPost, a.admin+"/load", a.cfg+"\n# reloaded\n", "Content-Type", "text/caddyfile")
	if status != 200 {
		t.Fatalf("reload: %d %s", status, body)
	}
	if s, _, _ := a.tokenFor(t, "app1", secret2); s != 200 {
		t.Errorf("after a reload: %d", s)
	}

	// Delete: the client is gone and its tokens refused everywhere.
	_, last, _ := a.tokenFor(t, "app1", secret2)
	if status, _ := a.api(t, http.MethodDelete, "/app1", ""); status != 204 {
		t.Fatalf("delete: %d", status)
	}
	if !within(syncWait, func() bool { s, _ := b.call(t, last); return s == 401 }) {
		t.Error("B accepts a deleted client's token")
	}
	if status, _ := a.api(t, http.MethodGet, "/app1", ""); status != 404 {
		t.Errorf("read after delete: %d", status)
	}
}

// runCLI runs `caddy oauth-client <args>` in process, as caddycmd builds it.
func runCLI(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	c := caddycmd.Commands()["oauth-client"]
	cmd := &cobra.Command{Use: c.Name + " " + c.Usage, SilenceUsage: true, SilenceErrors: true}
	c.CobraFunc(cmd)
	var out, errOut bytes.Buffer
	cmd.SetArgs(args)
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	err := cmd.Execute()
	return out.String(), errOut.String(), err
}

// TestOAuthClientSubcommands drives a running Caddy with the CLI: every
// subcommand, against its admin endpoint given by --address.
func TestOAuthClientSubcommands(t *testing.T) {
	testcaddy.Binary(t)
	in := &apiInstance{instance: instance{base: "http://localhost:9485", cfg: apiClusterConfig(9485, 2985, t.TempDir())}, admin: "http://localhost:2985"}
	in.proc = testcaddy.SpawnProcess(t, in.cfg)
	in.proc.WaitReady(in.base + "/.well-known/jwks.json")
	addr := []string{"--address", "localhost:2985"}
	cli := func(args ...string) map[string]any {
		t.Helper()
		out, _, err := runCLI(t, append(args, addr...)...)
		if err != nil {
			t.Fatalf("oauth-client %v: %v", args, err)
		}
		var v map[string]any
		if strings.TrimSpace(out) != "" {
			if err := json.Unmarshal([]byte(out), &v); err != nil {
				t.Fatalf("oauth-client %v printed %q", args, out)
			}
		}
		return v
	}
	out, stderr, err := runCLI(t, append([]string{"create", "--id", "cli1", "--scopes", "read", "--audience", "api", "--refresh", "--claim", "tier=3", "--claim", "team=ops"}, addr...)...)
	var created map[string]any
	if err != nil || json.Unmarshal([]byte(out), &created) != nil {
		t.Fatalf("create: %v %q %q", err, out, stderr)
	}
	secret, _ := created["client_secret"].(string)
	if len(secret) != 43 || !strings.Contains(stderr, "only this once") {
		t.Fatalf("create printed %q, %q", out, stderr)
	}
	if claims, _ := created["claims"].(map[string]any); claims["tier"] != float64(3) || claims["team"] != "ops" {
		t.Errorf("claims: %v", created["claims"])
	}
	if s, tok, _ := in.tokenFor(t, "cli1", secret); s != 200 {
		t.Fatalf("token for the client made by the CLI: %d", s)
	} else if status, body := in.call(t, tok); status != 200 || body != "hello cli1 3" {
		t.Errorf("route: %d %q", status, body)
	}
	listOut, _, err := runCLI(t, append([]string{"list"}, addr...)...)
	if err != nil || !strings.Contains(listOut, `"cli1"`) || !strings.Contains(listOut, `"svc"`) || strings.Contains(listOut, secret) {
		t.Errorf("list: %v %s", err, listOut)
	}
	if v := cli("show", "cli1"); v["client_id"] != "cli1" || v["source"] != "api" {
		t.Errorf("show: %v", v)
	}
	rotated := cli("rotate-secret", "cli1", "--grace", "0s")
	if s2, _ := rotated["client_secret"].(string); s2 == "" || s2 == secret {
		t.Fatalf("rotate-secret: %v", rotated)
	} else if s, _, _ := in.tokenFor(t, "cli1", s2); s != 200 {
		t.Errorf("new secret: %d", s)
	}
	if s, _, _ := in.tokenFor(t, "cli1", secret); s != 401 {
		t.Errorf("old secret after a rotation without grace: %d", s)
	}
	if v := cli("disable", "cli1"); v["disabled"] != true {
		t.Errorf("disable: %v", v)
	}
	if v := cli("enable", "cli1"); v["disabled"] != nil {
		t.Errorf("enable: %v", v)
	}
	if v := cli("revoke-tokens", "svc"); v["tokens_not_before"] == nil {
		t.Errorf("revoke-tokens: %v", v)
	}
	cli("delete", "cli1")
	if _, _, err := runCLI(t, append([]string{"show", "cli1"}, addr...)...); err == nil || !strings.Contains(err.Error(), "404") {
		t.Errorf("show after delete: %v", err)
	}
	if _, _, err := runCLI(t, append([]string{"delete", "svc"}, addr...)...); err == nil || !strings.Contains(err.Error(), "409") {
		t.Errorf("delete of a configured client: %v", err)
	}
	if _, _, err := runCLI(t, append([]string{"create", "--id", "bad id"}, addr...)...); err == nil {
		t.Error("create with a bad id succeeded")
	}

	// Audit: a line per change, naming who and what, never a secret; a
	// metric by operation.
	logs := in.proc.Output()
	for _, op := range []string{"create", "rotate_secret", "disable", "enable", "revoke_tokens", "delete"} {
		if !strings.Contains(logs, `"msg":"client changed","operation":"`+op+`"`) {
			t.Errorf("no audit line for %s", op)
		}
	}
	if !strings.Contains(logs, `"remote_addr":"127.0.0.1:`) {
		t.Error("audit lines do not name the remote address")
	}
	if strings.Contains(logs, secret) {
		t.Error("a secret reached the log")
	}
	_, metrics := httpDo(t, http.MethodGet, in.admin+"/metrics", "")
	for _, want := range []string{`tokengate_client_changes_total{operation="create"} 1`, `tokengate_client_changes_total{operation="rotate_secret"} 1`} {
		if !strings.Contains(string(metrics), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

package redis

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

// TestUnmarshalCaddyfileTLSAndSentinel: TLS, Sentinel and the Sentinels'
// user and password.
func TestUnmarshalCaddyfileTLSAndSentinel(t *testing.T) {
	for _, tc := range []struct {
		in, want, err string
	}{
		{"redis s1:26379 s2:26379 {\n master_name mymaster\n tls /ca.pem\n tls_client /c.pem /k.pem\n }",
			`{"addresses":["s1:26379","s2:26379"],"master_name":"mymaster","tls":true,"tls_ca":"/ca.pem","tls_cert":"/c.pem","tls_key":"/k.pem"}`, ""},
		{"redis r:6380 {\n tls_client /c.pem /k.pem\n }", `{"addresses":["r:6380"],"tls_cert":"/c.pem","tls_key":"/k.pem"}`, ""},
		{"redis {\n tls_client /c.pem\n }", "", "wrong argument count"},
		{"redis {\n tls_client /c.pem /k.pem extra\n }", "", "wrong argument count"},
		{"redis s1:26379 {\n master_name m\n sentinel_username watcher\n sentinel_password {env.SENTINEL_PASSWORD}\n }",
			`{"addresses":["s1:26379"],"master_name":"m","sentinel_username":"watcher","sentinel_password":"{env.SENTINEL_PASSWORD}"}`, ""},
		{"redis s1:26379 {\n master_name m\n password {file./run/secrets/redis}\n sentinel_password {file./run/secrets/sentinel}\n }",
			`{"addresses":["s1:26379"],"master_name":"m","password":"{file./run/secrets/redis}","sentinel_password":"{file./run/secrets/sentinel}"}`, ""},
		{"redis s1:26379 {\n master_name m\n sentinel_password\n }", "", "wrong argument count or unexpected line ending after 'sentinel_password', at Testfile:3"},
		{"redis s1:26379 {\n master_name m\n sentinel_username\n sentinel_password p\n }", "", "wrong argument count or unexpected line ending after 'sentinel_username', at Testfile:3"},
		{"redis s1:26379 {\n master_name m\n sentinel_password p q\n }", "", "wrong argument count or unexpected line ending after 'q', at Testfile:3"},
		{"redis r:6379 {\n sentinel_password p\n }", "", "redis: sentinel_username and sentinel_password need master_name (Sentinel), at Testfile:3"},
	} {
		var r Redis
		err := r.UnmarshalCaddyfile(caddyfile.NewTestDispenser(tc.in))
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q: %v, want %q", tc.in, err, tc.err)
			}
			continue
		}
		got, _ := json.Marshal(r)
		if err != nil || string(got) != tc.want {
			t.Errorf("%q: %s, %v; want %s", tc.in, got, err, tc.want)
		}
	}
	o, err := (&Redis{MasterName: "m"}).Options(nil)
	if err != nil || strings.Join(o.Addrs, ",") != DefaultSentinelAddress {
		t.Errorf("Sentinel without addresses: %v, %v; want %s", o, err, DefaultSentinelAddress)
	}
}

// TestSentinelAuthOptions: the Sentinels' user and password from JSON,
// placeholders replaced, go to go-redis's SentinelUsername and
// SentinelPassword (not the master's); an unset variable is an error that
// names the option, not an empty password.
func TestSentinelAuthOptions(t *testing.T) {
	t.Setenv("TG_TEST_SENTINEL_PASSWORD", "s3ntinel-secret")
	var r Redis
	err := json.Unmarshal([]byte(`{"addresses":["s1:26379"],"master_name":"m","password":"master-secret",
		"sentinel_username":"watcher","sentinel_password":"{env.TG_TEST_SENTINEL_PASSWORD}"}`), &r)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Validate(); err != nil {
		t.Fatal(err)
	}
	o, err := r.Options(caddy.NewReplacer())
	if err != nil || o.SentinelUsername != "watcher" || o.SentinelPassword != "s3ntinel-secret" || o.Password != "master-secret" || o.Username != "" {
		t.Fatalf("options: user %q password %q (master: %q %q), %v", o.SentinelUsername, o.SentinelPassword, o.Username, o.Password, err)
	}

	r.SentinelPassword = "{env.TG_TEST_SENTINEL_PASSWORD_UNSET}"
	if _, err := r.Options(caddy.NewReplacer()); err == nil || !strings.HasPrefix(err.Error(), "redis sentinel_password: ") {
		t.Fatalf("an unset variable: %v; want an error naming sentinel_password", err)
	}
}

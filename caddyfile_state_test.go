package tokengate

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestParseIssuerState(t *testing.T) {
	app, err := parseOption(t, `oauth_issuer {
		issuer https://auth.example.com
		state redis 10.0.0.1:6379 {
			addresses 10.0.0.2:6379 10.0.0.3:6379
			username tokengate
			password {env.REDIS_PASSWORD}
			tls /etc/redis/ca.pem
			key_prefix tg:
			dial_timeout 500ms
			timeout 2s
		}
		client a {
			secret s
		}
	}`, nil)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := json.Marshal(app.Issuers["default"].State)
	want := `{"addresses":["10.0.0.1:6379","10.0.0.2:6379","10.0.0.3:6379"],"backend":"redis","dial_timeout":500000000,"key_prefix":"tg:","password":"{env.REDIS_PASSWORD}","timeout":2000000000,"tls":true,"tls_ca":"/etc/redis/ca.pem","username":"tokengate"}`
	if string(got) != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}

	app, err = parseOption(t, "oauth_issuer {\n issuer https://a.example\n state caddy_storage\n client a {\n secret s\n }\n}", nil)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := json.Marshal(app.Issuers["default"].State); string(got) != `{"backend":"caddy_storage"}` {
		t.Errorf("caddy_storage: %s", got)
	}
}

func TestParseIssuerStateErrors(t *testing.T) {
	for _, tc := range []struct{ input, want string }{
		{"state", "wrong argument count"},
		{"state etcd", `unknown backend "etcd"`},
		{"state redis {\n timeout soon\n }", `redis timeout: "soon" is not a positive duration`},
		{"state redis {\n cluster\n master_name m\n }", "exclude each other"},
		{"state redis {\n bogus\n }", `unknown option "bogus"`},
		{"state caddy_storage {\n x\n }", "takes no options"},
		{"state caddy_storage\n state caddy_storage", "given more than once"},
	} {
		_, err := parseOption(t, "oauth_issuer {\n issuer https://a.example\n "+tc.input+"\n client a {\n secret s\n }\n}", nil)
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "Testfile:") {
			t.Errorf("%q: err = %v; want %q at a file:line", tc.input, err, tc.want)
		}
	}
}

package redis

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

func TestUnmarshalCaddyfileTLSAndSentinel(t *testing.T) {
	for _, tc := range []struct {
		in, want, err string
	}{
		{"redis s1:26379 s2:26379 {\n master_name mymaster\n tls /ca.pem\n tls_client /c.pem /k.pem\n }",
			`{"addresses":["s1:26379","s2:26379"],"master_name":"mymaster","tls":true,"tls_ca":"/ca.pem","tls_cert":"/c.pem","tls_key":"/k.pem"}`, ""},
		{"redis r:6380 {\n tls_client /c.pem /k.pem\n }", `{"addresses":["r:6380"],"tls_cert":"/c.pem","tls_key":"/k.pem"}`, ""},
		{"redis {\n tls_client /c.pem\n }", "", "wrong argument count"},
		{"redis {\n tls_client /c.pem /k.pem extra\n }", "", "wrong argument count"},
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

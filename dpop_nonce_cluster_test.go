package tokengate_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/tokengate/tokengate/internal/dpoptest"
	"github.com/tokengate/tokengate/internal/testcaddy"
)

// TestDPoPNonceAcrossInstances: two Caddy processes on one storage share
// the key of bearer_auth's DPoP nonces (tokengate/dpop/nonce_key, made
// once), so a nonce handed out by one is accepted by the other: a client
// moving between them is not asked for a new nonce at each move.
func TestDPoPNonceAcrossInstances(t *testing.T) {
	testcaddy.Binary(t)
	storage := t.TempDir()
	var ins []*instance
	for _, port := range freePorts(t, 2) {
		in := &instance{base: fmt.Sprintf("http://localhost:%d", port), cfg: fmt.Sprintf(`{
	admin off
	%s
	oauth_issuer {
		issuer http://tokengate.test
		client svc {
			secret svc-secret
			scopes read
		}
	}
}

:%d {
	oauth_token
	handle /api/* {
		bearer_auth {
			dpop_nonce
		}
		respond "nonce ok"
	}
}
`, testcaddy.Storage(storage), port)}
		in.proc = testcaddy.SpawnProcess(t, in.cfg)
		ins = append(ins, in)
	}
	for _, in := range ins {
		in.proc.WaitReady(in.base + "/.well-known/jwks.json")
	}
	a, b := ins[0], ins[1]
	key, err := dpoptest.NewKey("ES256")
	if err != nil {
		t.Fatal(err)
	}
	status, body, _ := testcaddy.Send(t, http.MethodPost, a.base+"/oauth/token", "grant_type=client_credentials",
		"Authorization", svcBasic, "DPoP", key.Proof("POST", "http://tokengate.test/oauth/token", "", time.Now()))
	var ans struct {
		AccessToken string `json:"access_token"`
		TokenType   string `json:"token_type"`
	}
	if status != 200 || json.Unmarshal(body, &ans) != nil || ans.TokenType != "DPoP" {
		t.Fatalf("DPoP token: %d %s", status, body)
	}
	call := func(in *instance, nonce string) (int, http.Header, string) {
		t.Helper()
		u := in.base + "/api/x"
		proof := key.Sign(dpoptest.Claims{HTM: "GET", HTU: u, IAT: time.Now().Unix(), ATH: dpoptest.ATH(ans.AccessToken), Nonce: nonce}, nil)
		status, body, hdr := testcaddy.Send(t, http.MethodGet, u, "", "Authorization", "DPoP "+ans.AccessToken, "DPoP", proof)
		return status, hdr, string(body)
	}
	for _, pair := range [][2]*instance{{b, a}, {a, b}} {
		status, hdr, _ := call(pair[0], "")
		nonce := hdr.Get("DPoP-Nonce")
		if status != 401 || nonce == "" {
			t.Fatalf("no nonce from %s: %d %v", pair[0].base, status, hdr)
		}
		if status, hdr, body := call(pair[1], nonce); status != 200 || body != "nonce ok" {
			t.Fatalf("a nonce of %s at %s: %d %s %v; want 200", pair[0].base, pair[1].base, status, body, hdr.Get("WWW-Authenticate"))
		}
	}
}

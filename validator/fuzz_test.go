package validator

import (
	"strings"
	"testing"
)

// FuzzBearerHeader feeds arbitrary Authorization values through the whole
// check. No input may panic, and none may be accepted: without the
// issuer's private key no token can be valid.
func FuzzBearerHeader(f *testing.F) {
	iss, _ := newIssuer(f, "ES256")
	h := newLocal(f, iss, nil)
	kid, signer := currentKey(f, iss)
	claims := mustJSON(f, claimsFor(iss, testIssuerURL))
	good := signRaw(f, signer, "ES256", `{"alg":"ES256","typ":"at+jwt","kid":"`+kid+`"}`, claims)
	p := strings.Split(good, ".")
	seeds := []string{
		"", "Bearer", "Bearer ", "Bearer  \t", "Basic dXNlcjpwYXNz", "bearer x.y.z",
		"Bearer " + b64(`{"alg":"none"}`) + "." + p[1] + ".",
		"Bearer " + b64(`{"alg":"none","kid":"`+kid+`"}`) + "." + p[1] + "." + p[2],
		"Bearer " + hs256(`{"alg":"HS256","typ":"at+jwt","kid":"`+kid+`"}`, claims, []byte("secret")),
		"Bearer " + p[0] + "." + p[1],
		"Bearer " + p[0] + "." + p[1] + ".",
		"Bearer " + good + "." + p[2],
		"Bearer " + p[0] + "." + p[1] + "." + strings.Repeat("A", 86),
		"Bearer " + b64(`{"alg":"ES256","kid":"../../etc/passwd"}`) + "." + p[1] + "." + p[2],
		"Bearer " + b64(`{"alg":"ES256","crit":["x"],"kid":"`+kid+`"}`) + "." + p[1] + "." + p[2],
		"Bearer " + b64(`{"alg":"ES256","alg":"none"}`) + "." + p[1] + "." + p[2],
		"Bearer a.b.c.d.e",
		`Bearer {"payload":"` + p[1] + `","signatures":[]}`,
		"Bearer " + strings.Repeat("A", MaxAuthorizationSize),
		"Bearer " + b64(`{"alg":"ES256","kid":"`+kid+`","jwk":{"kty":"EC"}}`) + "." + b64(`{"exp":1e999}`) + "." + p[2],
		// Right header and signature, payload changed by one byte.
		"Bearer " + p[0] + "." + p[1][:len(p[1])-1] + "A." + p[2],
	}
	for _, s := range seeds {
		f.Add(s)
	}
	h.noCache = true // every input is verified, none is served from the cache
	f.Fuzz(func(t *testing.T, auth string) {
		c, err := h.check(authRequest(t, auth))
		if err == nil {
			// Only the real token (with other spacing or scheme case) may pass.
			if tok, dpop, _ := credential([]string{auth}); tok != good || dpop {
				t.Fatalf("accepted %q (claims %+v)", auth, c)
			}
		}
	})
}

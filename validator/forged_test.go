package validator

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"

	"github.com/tokengate/tokengate/internal/accesstoken"
	"github.com/tokengate/tokengate/internal/issuer"
)

// hs256 signs header.payload with HMAC-SHA256 and secret.
func hs256(header, payload string, secret []byte) string {
	input := b64(header) + "." + b64(payload)
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(input))
	return input + "." + base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// publicPEM and publicJWK are the forms of the issuer's public key an
// attacker would try as an HMAC secret.
func publicPEM(t *testing.T, iss *issuer.Issuer) []byte {
	k, err := iss.Keys.Current()
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(k.Signer.Public())
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

func publicJWK(t *testing.T, iss *issuer.Issuer) []byte {
	k, err := iss.Keys.Current()
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(k.Public)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

type forgery struct {
	name  string
	token func(t *testing.T) string
	want  error // nil: any invalid_token refusal
}

// TestForgedTokens is the catalogue of known attacks on JWT validators.
// Every forgery must be refused with 401 invalid_token, never reach the
// upstream, and never be echoed in the answer.
func TestForgedTokens(t *testing.T) {
	for _, alg := range []string{"ES256", "RS256"} {
		t.Run(alg, func(t *testing.T) { testForgeries(t, alg) })
	}
}

func testForgeries(t *testing.T, alg string) {
	iss, _ := newIssuer(t, alg)
	h := newLocal(t, iss, nil)
	kid, signer := currentKey(t, iss)
	claims := mustJSON(t, claimsFor(iss, testIssuerURL))
	good := signRaw(t, signer, alg, `{"alg":"`+alg+`","typ":"at+jwt","kid":"`+kid+`"}`, claims)
	// The baseline must pass, or the refusals below prove nothing.
	if res := do(h, "Bearer "+good); !res.reached {
		t.Fatalf("baseline token refused: %v", res.err)
	}
	other := signRaw(t, signer, alg, `{"alg":"`+alg+`","typ":"at+jwt","kid":"`+kid+`"}`, mustJSON(t, claimsFor(iss, "x")))
	parts := strings.Split(good, ".")
	hdr := func(extra string) string {
		return `{"alg":"` + alg + `","typ":"at+jwt","kid":"` + kid + `"` + extra + `}`
	}

	attacker, attackerJWK := newECKey(t)
	attackerJWKJSON := mustJSON(t, attackerJWK)

	var urlHits atomic.Int64
	keyServer := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		urlHits.Add(1)
		_, _ = w.Write([]byte(`{"keys":[` + attackerJWKJSON + `]}`))
	}))
	defer keyServer.Close()

	forgeries := []forgery{
		{"alg none", func(t *testing.T) string {
			return b64(`{"alg":"none","typ":"at+jwt","kid":"`+kid+`"}`) + "." + b64(claims) + "." + parts[2]
		}, accesstoken.ErrUnsigned},
		{"alg None", func(t *testing.T) string {
			return b64(`{"alg":"None","typ":"at+jwt","kid":"`+kid+`"}`) + "." + b64(claims) + "." + parts[2]
		}, accesstoken.ErrUnsigned},
		{"alg NONE", func(t *testing.T) string {
			return b64(`{"alg":"NONE","typ":"at+jwt"}`) + "." + b64(claims) + "." + b64("x")
		}, accesstoken.ErrUnsigned},
		{"alg none, empty signature", func(t *testing.T) string {
			return b64(`{"alg":"none","typ":"at+jwt"}`) + "." + b64(claims) + "."
		}, accesstoken.ErrMalformed},
		{"HS256 with the public key as PEM", func(t *testing.T) string {
			return hs256(`{"alg":"HS256","typ":"at+jwt","kid":"`+kid+`"}`, claims, publicPEM(t, iss))
		}, accesstoken.ErrAlgMismatch},
		{"HS256 with the public key as JWK JSON", func(t *testing.T) string {
			return hs256(`{"alg":"HS256","typ":"at+jwt","kid":"`+kid+`"}`, claims, publicJWK(t, iss))
		}, accesstoken.ErrAlgMismatch},
		{"HS256 without kid", func(t *testing.T) string {
			return hs256(`{"alg":"HS256","typ":"at+jwt"}`, claims, publicPEM(t, iss))
		}, accesstoken.ErrUnknownKey},
		{"signature stripped, trailing dot", func(t *testing.T) string { return parts[0] + "." + parts[1] + "." }, accesstoken.ErrMalformed},
		{"signature stripped, two parts", func(t *testing.T) string { return parts[0] + "." + parts[1] }, accesstoken.ErrMalformed},
		{"four parts", func(t *testing.T) string { return good + "." + parts[2] }, accesstoken.ErrMalformed},
		{"JWE, five parts", func(t *testing.T) string {
			return b64(`{"alg":"RSA-OAEP","enc":"A256GCM"}`) + "." + b64("k") + "." + b64("iv") + "." + b64("ct") + "." + b64("tag")
		}, accesstoken.ErrEncrypted},
		{"signature swapped from another token", func(t *testing.T) string {
			return parts[0] + "." + parts[1] + "." + strings.Split(other, ".")[2]
		}, accesstoken.ErrBadSignature},
		{"payload swapped under a signature", func(t *testing.T) string {
			return parts[0] + "." + strings.Split(other, ".")[1] + "." + parts[2]
		}, accesstoken.ErrBadSignature},
		{"foreign key with the real kid", func(t *testing.T) string {
			return signRaw(t, attacker, "ES256", `{"alg":"ES256","typ":"at+jwt","kid":"`+kid+`"}`, claims)
		}, nil},
		{"embedded jwk header with the attacker's kid", func(t *testing.T) string {
			return signRaw(t, attacker, "ES256", `{"alg":"ES256","typ":"at+jwt","kid":"attacker","jwk":`+attackerJWKJSON+`}`, claims)
		}, accesstoken.ErrUnknownKey},
		{"embedded jwk header with the real kid", func(t *testing.T) string {
			return signRaw(t, attacker, "ES256", `{"alg":"ES256","typ":"at+jwt","kid":"`+kid+`","jwk":`+attackerJWKJSON+`}`, claims)
		}, nil},
		{"embedded jwk header, no kid", func(t *testing.T) string {
			return signRaw(t, attacker, "ES256", `{"alg":"ES256","typ":"at+jwt","jwk":`+attackerJWKJSON+`}`, claims)
		}, accesstoken.ErrUnknownKey},
		{"jku to an attacker's server", func(t *testing.T) string {
			return signRaw(t, attacker, "ES256", `{"alg":"ES256","typ":"at+jwt","kid":"attacker","jku":"`+keyServer.URL+`/jwks"}`, claims)
		}, accesstoken.ErrUnknownKey},
		{"x5u to an attacker's server", func(t *testing.T) string {
			return signRaw(t, attacker, "ES256", `{"alg":"ES256","typ":"at+jwt","kid":"`+kid+`","x5u":"`+keyServer.URL+`/cert.pem"}`, claims)
		}, nil},
		{"x5c embedded", func(t *testing.T) string {
			return signRaw(t, attacker, "ES256", `{"alg":"ES256","typ":"at+jwt","x5c":["MIIBfake"]}`, claims)
		}, accesstoken.ErrUnknownKey},
		{"kid path traversal", func(t *testing.T) string {
			return signRaw(t, attacker, "ES256", `{"alg":"ES256","typ":"at+jwt","kid":"../../etc/passwd"}`, claims)
		}, accesstoken.ErrUnknownKey},
		{"kid SQL-ish", func(t *testing.T) string {
			return signRaw(t, attacker, "ES256", `{"alg":"ES256","typ":"at+jwt","kid":"' OR 1=1 --"}`, claims)
		}, accesstoken.ErrUnknownKey},
		{"kid too long", func(t *testing.T) string {
			return signRaw(t, attacker, "ES256", `{"alg":"ES256","typ":"at+jwt","kid":"`+strings.Repeat("k", 300)+`"}`, claims)
		}, accesstoken.ErrMalformed},
		{"kid not a string", func(t *testing.T) string {
			return signRaw(t, signer, alg, `{"alg":"`+alg+`","typ":"at+jwt","kid":["`+kid+`"]}`, claims)
		}, accesstoken.ErrMalformed},
		{"zero signature (ECDSA r=s=0)", func(t *testing.T) string {
			return b64(`{"alg":"ES256","typ":"at+jwt","kid":"`+kid+`"}`) + "." + b64(claims) + "." + base64.RawURLEncoding.EncodeToString(make([]byte, 64))
		}, nil},
		{"zero signature of the key's alg", func(t *testing.T) string {
			return parts[0] + "." + parts[1] + "." + base64.RawURLEncoding.EncodeToString(make([]byte, len(parts[2])*3/4))
		}, accesstoken.ErrBadSignature},
		{"crit header, validly signed", func(t *testing.T) string {
			return signRaw(t, signer, alg, hdr(`,"crit":["exp"],"exp":1`), claims)
		}, accesstoken.ErrCrit},
		{"crit null, validly signed", func(t *testing.T) string {
			return signRaw(t, signer, alg, hdr(`,"crit":null`), claims)
		}, accesstoken.ErrCrit},
		{"b64 false, validly signed", func(t *testing.T) string {
			return signRaw(t, signer, alg, hdr(`,"b64":false`), claims)
		}, accesstoken.ErrMalformed},
		{"duplicate alg member, validly signed", func(t *testing.T) string {
			return signRaw(t, signer, alg, hdr(`,"alg":"none"`), claims)
		}, accesstoken.ErrMalformed},
		{"other alg of the same family", func(t *testing.T) string {
			other := map[string]string{"ES256": "ES384", "RS256": "PS256"}[alg]
			return signRaw(t, signer, alg, `{"alg":"`+other+`","typ":"at+jwt","kid":"`+kid+`"}`, claims)
		}, accesstoken.ErrAlgMismatch},
		{"no alg", func(t *testing.T) string {
			return signRaw(t, signer, alg, `{"typ":"at+jwt","kid":"`+kid+`"}`, claims)
		}, accesstoken.ErrMalformed},
		{"header not JSON", func(t *testing.T) string { return b64("alg=ES256") + "." + parts[1] + "." + parts[2] }, accesstoken.ErrMalformed},
		{"header JSON array", func(t *testing.T) string { return b64(`["alg"]`) + "." + parts[1] + "." + parts[2] }, accesstoken.ErrMalformed},
		{"header with trailing data", func(t *testing.T) string { return b64(hdr("")+"{}") + "." + parts[1] + "." + parts[2] }, accesstoken.ErrMalformed},
		{"base64 padding", func(t *testing.T) string { return parts[0] + "=." + parts[1] + "." + parts[2] }, accesstoken.ErrMalformed},
		{"standard base64 alphabet", func(t *testing.T) string { return parts[0] + "+/." + parts[1] + "." + parts[2] }, accesstoken.ErrMalformed},
		{"space inside", func(t *testing.T) string { return parts[0] + ". " + parts[1] + "." + parts[2] }, accesstoken.ErrMalformed},
		{"oversized, otherwise valid", func(t *testing.T) string {
			c := claimsFor(iss, testIssuerURL)
			c["padding"] = strings.Repeat("p", MaxAuthorizationSize)
			return signRaw(t, signer, alg, hdr(""), mustJSON(t, c))
		}, accesstoken.ErrTooLarge},
		{"JSON serialization", func(t *testing.T) string {
			k, err := iss.Keys.Current()
			if err != nil {
				t.Fatal(err)
			}
			priv, err := jwk.Import(k.Signer)
			if err != nil {
				t.Fatal(err)
			}
			b, err := jws.Sign([]byte(claims), jws.WithJSON(), jws.WithKey(k.Alg, priv))
			if err != nil {
				t.Fatal(err)
			}
			return string(b)
		}, accesstoken.ErrNotCompact},
		{"flattened JSON serialization", func(t *testing.T) string {
			return `{"protected":"` + parts[0] + `","payload":"` + parts[1] + `","signature":"` + parts[2] + `"}`
		}, accesstoken.ErrNotCompact},
	}
	for _, f := range forgeries {
		t.Run(f.name, func(t *testing.T) {
			tok := f.token(t)
			res := do(h, "Bearer "+tok)
			if res.reached {
				t.Fatal("forged token accepted")
			}
			if res.status != http.StatusUnauthorized {
				t.Errorf("status %d, want 401", res.status)
			}
			if !strings.HasPrefix(res.www, `Bearer realm="restricted", error="invalid_token", error_description="`) {
				t.Errorf("WWW-Authenticate = %q", res.www)
			}
			if len(tok) > 20 && (strings.Contains(res.www, tok[:20]) || strings.Contains(res.err.Error(), tok[:20])) {
				t.Error("the answer echoes the token")
			}
			if f.want != nil {
				if _, err := h.check(authRequest(t, "Bearer "+tok)); err != f.want {
					t.Errorf("reason %v, want %v", err, f.want)
				}
			}
		})
	}
	if n := urlHits.Load(); n != 0 {
		t.Errorf("the validator fetched a URL named in a token (%d requests)", n)
	}
}

// TestForgedHeaderMetadataNeverUsed shows jws.Verify with a key provider
// honouring the token's jwk would have been fooled, to keep the embedded
// jwk case above meaningful.
func TestForgedHeaderMetadataNeverUsed(t *testing.T) {
	attacker, pub := newECKey(t)
	tok := signRaw(t, attacker, "ES256", `{"alg":"ES256","typ":"at+jwt","jwk":`+mustJSON(t, pub)+`}`, `{"iss":"x"}`)
	if _, err := jws.Verify([]byte(tok), jws.WithKey(jwa.ES256(), attacker.Public())); err != nil {
		t.Fatalf("sanity: the attacker's token is well formed for its own key: %v", err)
	}
	iss, _ := newIssuer(t, "ES256")
	if res := do(newLocal(t, iss, nil), "Bearer "+tok); res.reached {
		t.Fatal("token signed by its embedded jwk accepted")
	}
}

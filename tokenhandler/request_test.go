package tokenhandler

import (
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

func TestParseBasicDecoding(t *testing.T) {
	cases := []struct {
		name, header, id, secret string
		ok                       bool
	}{
		{"raw, as echo -n id:secret | base64 makes it", "Basic " + b64("demo-client:demo-secret"), "demo-client", "demo-secret", true},
		{"form-encoded as x/oauth2 makes it", "Basic " + b64(url.QueryEscape("a b")+":"+url.QueryEscape("s3:cr/t=~x")), "a b", "s3:cr/t=~x", true},
		{"raw colon in secret", "Basic " + b64("id:s3:cr/t=~x"), "id", "s3:cr/t=~x", true},
		{"invalid percent taken as is", "Basic " + b64("id:100%"), "id", "100%", true},
		{"lowercase scheme", "basic " + b64("id:s"), "id", "s", true},
		{"empty id", "Basic " + b64(":s"), "", "", false},
		{"no colon", "Basic " + b64("ids"), "", "", false},
		{"not base64", "Basic !!!", "", "", false},
		{"bearer", "Bearer abc", "", "", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			id, secret, ok := parseBasic(tc.header)
			if ok != tc.ok || id != tc.id || secret != tc.secret {
				t.Errorf("parseBasic = %q %q %v, want %q %q %v", id, secret, ok, tc.id, tc.secret, tc.ok)
			}
		})
	}
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

// FuzzParseBasic: never panics, and for ids and secrets of unreserved
// characters the raw and the form-encoded forms decode alike.
func FuzzParseBasic(f *testing.F) {
	for _, s := range []string{"demo-client:demo-secret", "a:b:c", ":", "%:%zz", "+:+", "id:" + strings.Repeat("x", 300), "\x00:\xff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, creds string) {
		id, _, ok := parseBasic("Basic " + b64(creds))
		if ok && id == "" {
			t.Fatal("accepted an empty client id")
		}
		rawID, rawSecret, found := strings.Cut(creds, ":")
		if !found || rawID == "" || !unreserved(rawID) || !unreserved(rawSecret) {
			return
		}
		for _, enc := range []string{creds, url.QueryEscape(rawID) + ":" + url.QueryEscape(rawSecret)} {
			gotID, gotSecret, ok := parseBasic("Basic " + b64(enc))
			if !ok || gotID != rawID || gotSecret != rawSecret {
				t.Fatalf("%q decoded to %q %q %v", enc, gotID, gotSecret, ok)
			}
		}
	})
}

func unreserved(s string) bool {
	for _, c := range []byte(s) {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("-._~", c) >= 0) {
			return false
		}
	}
	return true
}

// FuzzParseTokenRequest: never panics; whatever it accepts has no repeated
// parameter, no credential in the URL and no conflicting grant_type.
func FuzzParseTokenRequest(f *testing.F) {
	f.Add("grant_type=client_credentials", "", "application/x-www-form-urlencoded", "Basic "+b64("a:b"))
	f.Add("grant_type=client_credential", "scope=a+b&resource=x&resource=y", "application/x-www-form-urlencoded", "")
	f.Add("", "grant_type=refresh_token&refresh_token=abc&client_id=a&client_secret=b", "application/x-www-form-urlencoded; charset=utf-8", "")
	f.Add("grant_type=a&grant_type=b", "%zz", "text/plain", "Basic !!!")
	f.Add("client_secret=x", "grant_type=x", "", "Bearer x")
	f.Fuzz(func(t *testing.T, query, body, contentType, authz string) {
		r := fuzzRequest("/oauth/token", query, body, contentType, authz)
		tr, oe := parseTokenRequest(httptest.NewRecorder(), r)
		if oe != nil {
			if tr != nil {
				t.Fatal("both a request and an error")
			}
			if oe.status < 400 || oe.Code == "" {
				t.Fatalf("malformed error %+v", oe)
			}
			return
		}
		q, err := url.ParseQuery(query)
		if err != nil {
			t.Fatalf("accepted a malformed query %q", query)
		}
		for _, name := range bodyOnly {
			if q.Has(name) {
				t.Fatalf("accepted %s in the URL", name)
			}
		}
		for name, v := range q {
			if len(v) > 1 && name != "resource" {
				t.Fatalf("accepted repeated %s", name)
			}
		}
		if tr.basic != (authz != "") {
			t.Fatalf("basic = %v with Authorization %q", tr.basic, authz)
		}
		if tr.basic && tr.clientID == "" {
			t.Fatal("Basic accepted without a client id")
		}
		if g := q.Get("grant_type"); g != "" && tr.grantType != g && !(g == "client_credential" && tr.grantType == "client_credentials") {
			t.Fatalf("grant_type %q from the query became %q", g, tr.grantType)
		}
	})
}

// FuzzParseLifecycleRequest: never panics; what it accepts has a token, no
// repeated parameter and nothing secret in the URL.
func FuzzParseLifecycleRequest(f *testing.F) {
	f.Add("", "token=abc", "application/x-www-form-urlencoded", "Basic "+b64("a:b"))
	f.Add("token=abc", "", "", "")
	f.Add("", "token=a&token=b&token_type_hint=x", "application/x-www-form-urlencoded", "")
	f.Add("", "token=a.b.c&client_id=x&client_secret=y", "application/x-www-form-urlencoded", "Basic !!")
	f.Fuzz(func(t *testing.T, query, body, contentType, authz string) {
		r := fuzzRequest("/oauth/revoke", query, body, contentType, authz)
		lr, oe := parseLifecycleRequest(httptest.NewRecorder(), r)
		if oe != nil {
			if lr != nil || oe.status < 400 {
				t.Fatalf("bad refusal %+v", oe)
			}
			return
		}
		if lr.token == "" {
			t.Fatal("accepted without a token")
		}
		q, _ := url.ParseQuery(query)
		for _, name := range append([]string{"token"}, bodyOnly...) {
			if q.Has(name) {
				t.Fatalf("accepted %s in the URL", name)
			}
		}
	})
}

// fuzzRequest builds the POST a fuzz target feeds to a parser.
func fuzzRequest(path, query, body, contentType, authz string) *http.Request {
	r := httptest.NewRequest(http.MethodPost, "http://x"+path, strings.NewReader(body))
	r.URL.RawQuery = query
	if contentType != "" {
		r.Header.Set("Content-Type", contentType)
	}
	if authz != "" {
		r.Header.Set("Authorization", authz)
	}
	return r
}

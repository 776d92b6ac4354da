package tokenhandler_test

import (
	"fmt"
	"net/http"
	"strconv"
	"testing"

	"github.com/tokengate/tokengate/internal/testcaddy"
)

func throttledIssuer(t *testing.T, trustProxy bool) {
	t.Helper()
	servers := ""
	if trustProxy {
		servers = "servers {\n\t\ttrusted_proxies static 127.0.0.1/32 ::1/128\n\t}"
	}
	testcaddy.Start(t, fmt.Sprintf(`{
	admin off
	%s
	%s
	oauth_issuer {
		issuer %s
		throttle {
			per_client 3
			per_address 5
			window 1m
		}
		client demo-client {
			secret demo-secret
		}
		client other {
			secret other-secret
		}
	}
}

:9281 {
	oauth_token
}
`, testcaddy.Storage(t.TempDir()), servers, base))
}

func tokenFrom(t *testing.T, id, secret, xff string) answer {
	t.Helper()
	hdr := []string{"Authorization", basic(id, secret)}
	if xff != "" {
		hdr = append(hdr, "X-Forwarded-For", xff)
	}
	return post(t, tokenURL+"?grant_type=client_credentials", "", hdr...)
}

func assertThrottled(t *testing.T, a answer, what string) {
	t.Helper()
	if a.status != http.StatusTooManyRequests || a.body["error"] != "temporarily_unavailable" {
		t.Fatalf("%s: %d %s, want 429", what, a.status, a.raw)
	}
	if s, err := strconv.Atoi(a.header.Get("Retry-After")); err != nil || s < 1 || s > 60 {
		t.Errorf("%s: Retry-After %q", what, a.header.Get("Retry-After"))
	}
	assertNoStore(t, a)
}

func TestThrottlePerClientAndAddress(t *testing.T) {
	throttledIssuer(t, false)
	for i := 0; i < 3; i++ {
		if a := tokenFrom(t, "demo-client", "guess", ""); a.status != 401 {
			t.Fatalf("guess %d: %d", i, a.status)
		}
	}
	// The right secret is refused too now: the decision comes before the
	// secret is checked.
	assertThrottled(t, tokenFrom(t, "demo-client", "demo-secret", ""), "guessed client")
	// Another client from the same address is not locked out...
	if a := tokenFrom(t, "other", "other-secret", ""); a.status != 200 {
		t.Fatalf("other client: %d %s", a.status, a.raw)
	}
	// ... until the address as a whole reaches its limit (3 + 2 = 5).
	for i := 0; i < 2; i++ {
		tokenFrom(t, "other", "guess", "")
	}
	assertThrottled(t, tokenFrom(t, "other", "other-secret", ""), "address")
	// Without trusted_proxies, a client-sent X-Forwarded-For changes nothing.
	assertThrottled(t, tokenFrom(t, "other", "other-secret", "198.51.100.7"), "spoofed X-Forwarded-For")
	// Introspection and revocation share the same counters.
	if a := post(t, introspectURL, "token=x", "Authorization", basic("other", "other-secret")); a.status != 429 {
		t.Errorf("introspection from a throttled address: %d", a.status)
	}
}

func TestThrottleBehindTrustedProxy(t *testing.T) {
	throttledIssuer(t, true)
	const attacker, client = "203.0.113.9", "198.51.100.20"
	for i := 0; i < 3; i++ {
		tokenFrom(t, "demo-client", "guess", attacker)
	}
	assertThrottled(t, tokenFrom(t, "demo-client", "demo-secret", attacker), "guessed client at the attacker's address")
	// The same client calling from elsewhere with the right secret works.
	if a := tokenFrom(t, "demo-client", "demo-secret", client); a.status != 200 {
		t.Fatalf("the guessed client from its own address: %d %s", a.status, a.raw)
	}
	// A success resets that address's count for the client.
	for i := 0; i < 2; i++ {
		tokenFrom(t, "demo-client", "typo", client)
	}
	if a := tokenFrom(t, "demo-client", "demo-secret", client); a.status != 200 {
		t.Fatalf("after two typos: %d", a.status)
	}
	for i := 0; i < 2; i++ {
		tokenFrom(t, "demo-client", "typo", client)
	}
	if a := tokenFrom(t, "demo-client", "demo-secret", client); a.status != 200 {
		t.Fatalf("the count was not reset by the success: %d", a.status)
	}
}

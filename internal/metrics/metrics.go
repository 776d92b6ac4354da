// Package metrics holds tokengate's Prometheus metrics. They are registered
// in Caddy's metrics registry (served on the admin endpoint's /metrics) by
// every module that records them. Labels hold no secret or token, and only
// bounded values: grant types and results are fixed sets, and client ids
// are the configured ones.
package metrics

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

const ns = "tokengate"

var (
	// TokenRequests counts token endpoint requests by grant type and result
	// ("issued", an RFC 6749 error code, "throttled" or "error").
	TokenRequests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: ns, Name: "token_requests_total",
		Help: "Token endpoint requests by grant type and result.",
	}, []string{"grant_type", "result"})

	// TokensIssued counts access tokens issued per client.
	TokensIssued = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: ns, Name: "tokens_issued_total",
		Help: "Access tokens issued, by client id.",
	}, []string{"client_id"})

	// Validations counts bearer_auth decisions: ok, missing, invalid,
	// expired, audience, scope, revoked.
	Validations = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: ns, Name: "validations_total",
		Help: "Bearer token checks by result.",
	}, []string{"result"})

	// Revocations counts revoked access tokens and refresh token families.
	Revocations = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: ns, Name: "revocations_total",
		Help: "Revocations by kind of token.",
	}, []string{"token_type"})

	// ClientChanges counts changes made to clients at run time (the admin
	// API) by operation: create, update, delete, rotate_secret, disable,
	// enable, revoke_tokens.
	ClientChanges = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: ns, Name: "client_changes_total",
		Help: "Changes to clients through the admin API, by operation.",
	}, []string{"operation"})

	// CacheLookups counts lookups of the verified-token and secret caches,
	// by hit or miss; their ratio is the cache's hit ratio.
	CacheLookups = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: ns, Name: "cache_lookups_total",
		Help: "Cache lookups by cache and result (hit, miss).",
	}, []string{"cache", "result"})

	// PasswordHashes counts client secret checks against a password hash:
	// "run", or "busy" when none of the hash slots freed in time.
	PasswordHashes = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: ns, Name: "password_hashes_total",
		Help: "Client secret checks against a password hash, by result (run, busy).",
	}, []string{"result"})

	// PasswordHashesInFlight is the number of password hashes running now;
	// it never exceeds the number of hash slots (one per CPU).
	PasswordHashesInFlight = prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: ns, Name: "password_hashes_in_flight",
		Help: "Password hashes running now (at most one per CPU).",
	})

	// Duration is the time spent in the issuer (token endpoint) and the
	// validator (bearer_auth), excluding the rest of the request.
	Duration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: ns, Name: "duration_seconds",
		Help:    "Time spent in the issuer's token endpoint and in the validator.",
		Buckets: []float64{.00001, .00005, .0001, .00025, .0005, .001, .0025, .005, .01, .05, .1, .5, 1},
	}, []string{"component"})
)

// Register adds the metrics to a registry (Caddy makes one per config
// load); registering twice is fine.
func Register(reg *prometheus.Registry) {
	if reg == nil {
		return
	}
	for _, c := range []prometheus.Collector{TokenRequests, TokensIssued, Validations, Revocations, ClientChanges, CacheLookups, PasswordHashes, PasswordHashesInFlight, Duration} {
		if err := reg.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if !errors.As(err, &are) {
				panic(err)
			}
		}
	}
}

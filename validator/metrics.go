package validator

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/tokengate/tokengate/internal/accesstoken"
	"github.com/tokengate/tokengate/internal/metrics"
)

// Counters resolved once, so the hot path does no label lookup.
var (
	validationCounters = func() map[error]prometheus.Counter {
		m := map[error]prometheus.Counter{
			errNoToken:                  nil,
			accesstoken.ErrExpired:      nil,
			accesstoken.ErrNotYetValid:  nil,
			accesstoken.ErrFutureIssued: nil,
			accesstoken.ErrAudience:     nil,
			errInsufficient:             nil,
			errClaimMismatch:            nil,
			accesstoken.ErrRevoked:      nil,
		}
		for reason := range m {
			m[reason] = metrics.Validations.WithLabelValues(resultLabel(reason))
		}
		return m
	}()
	validationOK      = metrics.Validations.WithLabelValues("ok")
	validationInvalid = metrics.Validations.WithLabelValues("invalid")
	cacheHit          = metrics.CacheLookups.WithLabelValues("verified_token", "hit")
	cacheMiss         = metrics.CacheLookups.WithLabelValues("verified_token", "miss")
	validatorDuration = metrics.Duration.WithLabelValues("validator")
)

// resultLabel names a refusal reason in tokengate_validations_total.
func resultLabel(reason error) string {
	switch reason {
	case nil:
		return "ok"
	case errNoToken:
		return "missing"
	case accesstoken.ErrExpired, accesstoken.ErrNotYetValid, accesstoken.ErrFutureIssued:
		return "expired"
	case accesstoken.ErrAudience:
		return "audience"
	case errInsufficient, errClaimMismatch:
		return "scope"
	case accesstoken.ErrRevoked:
		return "revoked"
	}
	return "invalid"
}

// countValidation records the outcome of one bearer_auth check.
func countValidation(reason error) {
	switch c, ok := validationCounters[reason]; {
	case reason == nil:
		validationOK.Inc()
	case ok:
		c.Inc()
	default:
		validationInvalid.Inc()
	}
}

package validator

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/tokengate/tokengate/internal/metrics"
)

// Counters resolved once, so the hot path does no label lookup.
var (
	validationCounters = func() map[error]prometheus.Counter {
		m := map[error]prometheus.Counter{
			errNoToken:       nil,
			errExpired:       nil,
			errNotYetValid:   nil,
			errFutureIssued:  nil,
			errAudience:      nil,
			errInsufficient:  nil,
			errClaimMismatch: nil,
			errRevoked:       nil,
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
	case errExpired, errNotYetValid, errFutureIssued:
		return "expired"
	case errAudience:
		return "audience"
	case errInsufficient, errClaimMismatch:
		return "scope"
	case errRevoked:
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

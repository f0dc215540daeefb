package caddymodule

import (
	"errors"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// fraudMetrics are the fraud guard's counters, labelled by the kind of
// population (prefix, range, country): never the population itself.
var fraudMetrics = struct {
	once    sync.Once
	blocks  *prometheus.CounterVec
	refused *prometheus.CounterVec
}{}

// initFraudMetrics registers them on Caddy's registry, once per registry
// as initMetrics does.
func initFraudMetrics(registry *prometheus.Registry) error {
	const ns, sub = "caddy", "sms_stepup"
	fraudMetrics.once.Do(func() {
		fraudMetrics.blocks = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "fraud_guard_blocks_total",
			Help: "Blocks the fraud guard set on a population of numbers with too few verified codes, by kind (prefix, range, country)."}, []string{"kind"})
		fraudMetrics.refused = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "fraud_guard_refused_total",
			Help: "Sends refused because the fraud guard blocks the number's population, by kind (prefix, range, country)."}, []string{"kind"})
	})
	for _, c := range []prometheus.Collector{fraudMetrics.blocks, fraudMetrics.refused} {
		if err := registry.Register(c); err != nil {
			var already prometheus.AlreadyRegisteredError
			if !errors.As(err, &already) {
				return err
			}
		}
	}
	return nil
}

// countFraud updates the fraud guard's metric of an audit event, if it
// has one.
func countFraud(event string, str func(string) string) {
	switch {
	case event == "fraud_guard_block":
		fraudMetrics.blocks.WithLabelValues(str("kind")).Inc()
	case event == "send_refused" && str("reason") == "fraud_guard":
		fraudMetrics.refused.WithLabelValues(str("kind")).Inc()
	}
}

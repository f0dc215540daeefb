package caddymodule

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp"
)

// metrics are the plugin's Prometheus collectors, on Caddy's registry (the
// admin endpoint's /metrics). Labels take a handful of fixed values each
// (gateway names, results, reasons): never an identity or a number. The
// daily budget's gauge is read from the store instead (metrics_budget.go).
var metrics = struct {
	once          sync.Once
	sends         *prometheus.CounterVec
	verifications *prometheus.CounterVec
	lockouts      prometheus.Counter
	refusals      *prometheus.CounterVec
	limited       *prometheus.CounterVec
	deliveries    *prometheus.CounterVec
	storeErrors   prometheus.Counter
	sourceLookups *prometheus.CounterVec
	latency       *prometheus.HistogramVec
}{}

func initMetrics(registry *prometheus.Registry) error {
	const ns, sub = "caddy", "sms_stepup"
	metrics.once.Do(func() {
		metrics.sends = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "sends_total",
			Help: "Codes handed to a gateway, by gateway and result (sent, not_sent, rejected, unknown)."}, []string{"gateway", "result"})
		metrics.verifications = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "verifications_total",
			Help: "Code verifications by result."}, []string{"result"})
		metrics.lockouts = prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "lockouts_total",
			Help: "Identities locked out after too many wrong codes."})
		metrics.refusals = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "policy_refusals_total",
			Help: "Phone numbers refused by the policy, by reason."}, []string{"reason"})
		metrics.limited = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "rate_limited_total",
			Help: "Sends refused by a limit, by limit."}, []string{"limit"})
		metrics.deliveries = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "deliveries_total",
			Help: "Delivery reports from providers, by gateway and status."}, []string{"gateway", "status"})
		metrics.storeErrors = prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "store_errors_total",
			Help: "Requests failed closed because the store could not be reached."})
		metrics.sourceLookups = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "phone_source_lookups_total",
			Help: "Phone source lookups, by the source that answered (none when no source knew the identity) and result (found, not_found, error, cached)."}, []string{"source", "result"})
		metrics.latency = prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: ns, Subsystem: sub, Name: "gateway_latency_seconds",
			Help: "Time a gateway took to accept or refuse a message.", Buckets: []float64{.05, .1, .25, .5, 1, 2.5, 5, 10}}, []string{"gateway", "channel"})
	})
	for _, c := range []prometheus.Collector{metrics.sends, metrics.verifications, metrics.lockouts, metrics.refusals,
		metrics.limited, metrics.deliveries, metrics.storeErrors, metrics.sourceLookups, metrics.latency} {
		// Several sites, and every reload, register the same collectors.
		if err := registry.Register(c); err != nil {
			var already prometheus.AlreadyRegisteredError
			if !errors.As(err, &already) {
				return err
			}
		}
	}
	return nil
}

// timedGateway measures how long the configured gateway takes. It passes on
// the capabilities of the gateway inside, its calls measured too, and has
// none of its own: measuring must neither hide what a gateway can do nor
// make it look as if it could do more.
type timedGateway struct {
	inner otp.Gateway
	name  string
	caps  otp.Capabilities
}

func newTimedGateway(name string, inner otp.Gateway) timedGateway {
	caps := otp.CapabilitiesOf(name, inner)
	if caps.Voice != nil {
		caps.Voice = timedCaller{inner: caps.Voice, name: name}
	}
	return timedGateway{inner: inner, name: name, caps: caps}
}

func (g timedGateway) Send(ctx context.Context, m otp.Message) (otp.Receipt, error) {
	start := time.Now()
	r, err := g.inner.Send(ctx, m)
	metrics.latency.WithLabelValues(gatewayLabel(r, g.name), "sms").Observe(time.Since(start).Seconds())
	return r, err
}

// Capabilities implements otp.CapabilityReporter.
func (g timedGateway) Capabilities() otp.Capabilities { return g.caps }

// timedCaller measures the voice capability of the configured gateway.
type timedCaller struct {
	inner otp.Caller
	name  string
}

func (c timedCaller) Call(ctx context.Context, m otp.Message) (otp.Receipt, error) {
	start := time.Now()
	r, err := c.inner.Call(ctx, m)
	metrics.latency.WithLabelValues(gatewayLabel(r, c.name), "voice").Observe(time.Since(start).Seconds())
	return r, err
}

// gatewayLabel names the gateway that took a message: the member of a
// failover chain, when the receipt says, else the configured one.
func gatewayLabel(r otp.Receipt, name string) string {
	if r.Gateway != "" {
		return r.Gateway
	}
	return name
}

func moduleName(m any) string {
	if mod, ok := m.(caddy.Module); ok {
		return string(mod.CaddyModule().ID.Name())
	}
	return "unknown"
}

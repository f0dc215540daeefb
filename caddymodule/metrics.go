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
		metrics.latency = prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: ns, Subsystem: sub, Name: "gateway_latency_seconds",
			Help: "Time a gateway took to accept or refuse a message.", Buckets: []float64{.05, .1, .25, .5, 1, 2.5, 5, 10}}, []string{"gateway", "channel"})
	})
	for _, c := range []prometheus.Collector{metrics.sends, metrics.verifications, metrics.lockouts, metrics.refusals,
		metrics.limited, metrics.deliveries, metrics.storeErrors, metrics.latency} {
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

// timedGateway measures how long the configured gateway takes.
type timedGateway struct {
	inner otp.Gateway
	name  string
}

func (g timedGateway) Send(ctx context.Context, m otp.Message) (otp.Receipt, error) {
	start := time.Now()
	r, err := g.inner.Send(ctx, m)
	metrics.latency.WithLabelValues(g.label(r), "sms").Observe(time.Since(start).Seconds())
	return r, err
}

// Call implements otp.VoiceGateway when the configured gateway does.
func (g timedGateway) Call(ctx context.Context, m otp.Message) (otp.Receipt, error) {
	vg, ok := g.inner.(otp.VoiceGateway)
	if !ok {
		return otp.Receipt{}, otp.ErrNoVoice
	}
	start := time.Now()
	r, err := vg.Call(ctx, m)
	metrics.latency.WithLabelValues(g.label(r), "voice").Observe(time.Since(start).Seconds())
	return r, err
}

// CanCall reports what the configured gateway can do.
func (g timedGateway) CanCall() bool {
	if c, ok := g.inner.(interface{ CanCall() bool }); ok {
		return c.CanCall()
	}
	_, ok := g.inner.(otp.VoiceGateway)
	return ok
}

func (g timedGateway) label(r otp.Receipt) string {
	if r.Gateway != "" {
		return r.Gateway
	}
	return g.name
}

func moduleName(m any) string {
	if mod, ok := m.(caddy.Module); ok {
		return string(mod.CaddyModule().ID.Name())
	}
	return "unknown"
}

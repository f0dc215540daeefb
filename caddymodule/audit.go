package caddymodule

import (
	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyevents"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// audit records one event of the step-up (send, verify, lock-out,
// refusal, delivery ...): one structured log entry, the matching metric,
// and a Caddy event "sms_stepup_<event>" that other plugins can react to.
// Callers pass the identity, the masked number, the client IP, a challenge
// id prefix and a reason or result; never a code or a full number.
func (h *Handler) audit(level zapcore.Level, msg, event string, fields ...zap.Field) {
	fields = append(fields, zap.String("event", event))
	if ce := h.logger.Check(level, msg); ce != nil {
		ce.Write(fields...)
	}
	enc := zapcore.NewMapObjectEncoder()
	for _, f := range fields {
		f.AddTo(enc)
	}
	h.count(event, enc.Fields)
	if h.events != nil && h.events.ShouldEmit("sms_stepup_"+event) {
		data := make(map[string]any, len(enc.Fields)+1)
		for k, v := range enc.Fields {
			data[k] = v
		}
		data["message"] = msg
		h.events.Emit(h.ctx, "sms_stepup_"+event, data)
	}
}

// count updates the metric of an audit event.
func (h *Handler) count(event string, f map[string]any) {
	str := func(k string) string { s, _ := f[k].(string); return s }
	switch event {
	case "send":
		metrics.sends.WithLabelValues(str("gateway"), "sent").Inc()
	case "send_failed":
		metrics.sends.WithLabelValues(str("gateway"), str("outcome")).Inc()
	case "verify":
		metrics.verifications.WithLabelValues(str("result")).Inc()
	case "lockout":
		metrics.lockouts.Inc()
	case "policy_refusal":
		metrics.refusals.WithLabelValues(str("reason")).Inc()
	case "rate_limited":
		metrics.limited.WithLabelValues(str("limit")).Inc()
	case "delivery":
		metrics.deliveries.WithLabelValues(str("gateway"), str("status")).Inc()
	case "store_unavailable":
		metrics.storeErrors.Inc()
	}
}

// loadEvents gets Caddy's events app, through which audit events go to
// other plugins.
func (h *Handler) loadEvents(ctx caddy.Context) (err error) {
	// A context made outside any config (as unit tests make one) has no
	// apps, and Context.App dereferences the config: such a handler simply
	// emits no events. Inside Caddy there is always a config.
	defer func() {
		if recover() != nil {
			h.events, err = nil, nil
		}
	}()
	app, err := ctx.App("events")
	if err != nil {
		return err
	}
	h.events = app.(*caddyevents.App)
	h.ctx = ctx
	return nil
}

package caddymodule

import (
	"fmt"
	"strings"
	"unicode/utf8"

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
	for i := range fields {
		if fields[i].Type == zapcore.StringType {
			fields[i].String = logSafe(fields[i].String)
		}
	}
	fields = append(fields, zap.String("event", event))
	if ce := h.logger.Check(level, msg); ce != nil {
		ce.Write(fields...)
	}
	h.count(event, stringField(fields))
	if h.events != nil && h.events.ShouldEmit("sms_stepup_"+event) {
		// The fields as a map only for an event someone listens to
		// (issue 17: the map was built for every audit entry).
		enc := zapcore.NewMapObjectEncoder()
		for _, f := range fields {
			f.AddTo(enc)
		}
		data := make(map[string]any, len(enc.Fields)+1)
		for k, v := range enc.Fields {
			data[k] = v
		}
		data["message"] = msg
		h.events.Emit(h.ctx, "sms_stepup_"+event, data)
	}
}

// logSafe escapes what zap's encoders pass through raw but a log viewer
// or terminal would act on: C1 controls (U+0080-U+009F, such as NEL),
// Unicode bidirectional controls (which can make a line read differently
// from what it holds) and the line and paragraph separators. Identities,
// paths and numbers in audit fields can come from the client (SECURITY.md
// rule 23: escape what came from the client); zap itself escapes C0
// controls and invalid UTF-8.
func logSafe(s string) string {
	i := 0
	for i < len(s) && s[i] < utf8.RuneSelf {
		i++
	}
	if i == len(s) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 8)
	b.WriteString(s[:i])
	for _, r := range s[i:] {
		if unsafeInLog(r) {
			fmt.Fprintf(&b, "\\u%04x", r)
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

func unsafeInLog(r rune) bool {
	switch {
	case r >= 0x80 && r <= 0x9f: // C1 controls
		return true
	case r == 0x061c, r == 0x200e, r == 0x200f, // bidi marks
		r >= 0x202a && r <= 0x202e, // bidi embeddings and overrides
		r >= 0x2066 && r <= 0x2069, // bidi isolates
		r == 0x2028, r == 0x2029:   // line and paragraph separators
		return true
	}
	return false
}

// stringField looks up the string fields of an audit entry by key, the
// last one of a key winning, as in a map of them; a key with no string
// field is "".
func stringField(fields []zap.Field) func(key string) string {
	return func(key string) string {
		for i := len(fields) - 1; i >= 0; i-- {
			if fields[i].Key == key {
				if fields[i].Type == zapcore.StringType {
					return fields[i].String
				}
				return ""
			}
		}
		return ""
	}
}

// count updates the metric of an audit event; str looks up its string
// fields.
func (h *Handler) count(event string, str func(key string) string) {
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
	case "phone_source_lookup":
		metrics.sourceLookups.WithLabelValues(str("source"), str("result")).Inc()
	default:
		countFraud(event, str)
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

package caddymodule

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp"
	"github.com/caddy-sms-stepup/caddy-sms-stepup/pages"
)

// The carrier check in the flows (see LookupConfig): at enrolment, and
// before every send, a number the metadata can't classify is judged by
// its carrier's answer, from the store when it was looked up within the
// cache's lifetime.

var lookupMetrics = struct {
	once    sync.Once
	lookups *prometheus.CounterVec
}{}

func initLookupMetrics(registry *prometheus.Registry) error {
	lookupMetrics.once.Do(func() {
		lookupMetrics.lookups = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "caddy", Subsystem: "sms_stepup",
			Name: "carrier_lookups_total",
			Help: "Carrier checks of numbers, by result (the line type, in the policy's names, or failed) and whether the answer came from the store's cache (cached) or the carrier database (lookup)."},
			[]string{"result", "from"})
	})
	if err := registry.Register(lookupMetrics.lookups); err != nil {
		var already prometheus.AlreadyRegisteredError
		if !errors.As(err, &already) {
			return err
		}
	}
	return nil
}

// carrierGate runs the carrier check on phone before a code goes to it,
// or before it is taken for enrolment. It returns nil when the flow goes
// on, else the answer. enrolling says the number is not bound yet: a
// lookup that fails then refuses it, where a bound number (or the
// operator's) gets its code on the metadata's verdict, so that no one is
// locked out of their account by a carrier database being down. changing
// says the identity has a bound number it is replacing.
func (h *Handler) carrierGate(ctx context.Context, v *visit, phone otp.Phone, enrolling, changing bool) *outcome {
	if h.carrier == nil || !h.carrier.Needs(phone) {
		return nil
	}
	verdict, err := h.carrier.Check(ctx, h.policy, phone, otp.CarrierAsker{Identity: v.identity, ClientIP: clientIP(v.r)})
	fields := []zap.Field{zap.String("identity", v.identity), zap.String("phone", phone.Masked), zap.String("client_ip", clientIP(v.r))}
	var refusal *otp.PhoneRefusal
	switch {
	case err == nil:
		countLookup(verdict.Type, verdict.Cached)
		if !verdict.Cached {
			h.audit(zapcore.InfoLevel, "carrier looked up", "carrier_lookup", append(fields, zap.String("type", verdict.Type),
				zap.String("carrier", verdict.Carrier))...)
		}
		return nil
	case errors.As(err, &refusal):
		countLookup(refusal.Type, verdict.Cached)
		if !enrolling {
			o := h.noPhone(v, err)
			return &o
		}
		o := answerPage(http.StatusUnprocessableEntity, pages.Enroll, pages.Data{Changing: changing, Message: pages.Msg(v.lang, "phone_refused"), Key: "phone_refused"})
		o.audit(zapcore.WarnLevel, "number refused at enrollment by its carrier's line type", "policy_refusal",
			append(fields, zap.String("reason", refusal.Reason), zap.String("type", refusal.Type))...)
		o.setCookie(enrollCookie, "", -1, http.SameSiteStrictMode)
		return &o
	case errors.Is(err, otp.ErrCarrierLookup):
		countLookup("failed", false)
		if !enrolling {
			h.audit(zapcore.WarnLevel, "carrier lookup failed; the code goes to the bound number on the number plan's verdict", "lookup_failed",
				append(fields, zap.Error(err))...)
			return nil
		}
		o := answerPage(http.StatusServiceUnavailable, pages.Enroll, pages.Data{Changing: changing, Message: pages.Msg(v.lang, "lookup_unavailable"), Key: "lookup_unavailable"})
		o.audit(zapcore.WarnLevel, "carrier lookup failed; a new number can't be enrolled until it works", "lookup_failed",
			append(fields, zap.Error(err))...)
		if rl := (*otp.RateLimitError)(nil); errors.As(err, &rl) {
			// Capped (each lookup costs money): the same page, and
			// when to come back.
			o.status, o.retryAfter = http.StatusTooManyRequests, strconv.Itoa(retryIn(h.clock.Now(), rl.RetryAt))
		}
		o.setCookie(enrollCookie, "", -1, http.SameSiteStrictMode)
		return &o
	}
	return &outcome{unavailable: err}
}

func countLookup(result string, cached bool) {
	from := "lookup"
	if cached {
		from = "cached"
	}
	lookupMetrics.lookups.WithLabelValues(result, from).Inc()
}

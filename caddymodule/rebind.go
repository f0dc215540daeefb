package caddymodule

import (
	"errors"
	"net/http"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp"
	"github.com/caddy-sms-stepup/caddy-sms-stepup/pages"
)

// Re-binding a number that today's policy refuses (SECURITY.md rule 32).
//
// A bound number that has since landed in deny_numbers, or left
// allow_countries or allow_types, can get no code: the user can't step up
// on it, and it can't be told of a change. Letting the user enrol another
// number anyway would skip both, so only an operator's `caddy sms-stepup
// reset-number` frees the identity to enrol again. A fresh step-up made
// before the policy changed doesn't open it either: the policy now says
// the number can't be trusted to receive codes, so it can't vouch for its
// replacement.

// refuseRebind answers an attempt to replace old, a bound number today's
// policy refuses, with rebindRefused.
func (h *Handler) refuseRebind(v *visit, old *otp.PhoneRefusal, newMasked string) error {
	return h.respond(v, h.rebindRefused(v, old, newMasked))
}

// rebindRefused is the answer to an attempt to replace old: an audit event
// (masked numbers only; newMasked is the number asked for, if known) and a
// page (or, for JSON clients, the error "number_needs_reset") that sends
// the user to an operator. Any number being enrolled is forgotten.
func (h *Handler) rebindRefused(v *visit, old *otp.PhoneRefusal, newMasked string) outcome {
	fields := []zap.Field{zap.String("identity", v.identity), zap.String("phone", old.Masked),
		zap.String("reason", "old_number_refused"), zap.String("policy_reason", old.Reason), zap.String("client_ip", clientIP(v.r))}
	if newMasked != "" {
		fields = append(fields, zap.String("new_phone", newMasked))
	}
	data := v.msg("number_needs_reset")
	data.Title = pages.Msg(v.lang, "change_number")
	o := answerPage(http.StatusForbidden, pages.Error, data)
	o.audit(zapcore.WarnLevel, "number change refused: today's policy refuses the bound number, so only an operator's reset-number can replace it",
		"number_change_refused", fields...)
	o.setCookie(enrollCookie, "", -1, http.SameSiteStrictMode)
	return o
}

// maskedInput is what a typed number looks like in a log: its mask when
// it parses (refused or not), else nothing.
func (h *Handler) maskedInput(raw string) string {
	p, err := h.policy.Check(raw)
	var refusal *otp.PhoneRefusal
	if errors.As(err, &refusal) {
		return refusal.Masked
	}
	return p.Masked
}

package caddymodule

import (
	"context"
	"encoding/base64"
	"errors"
	"net/http"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp"
	"github.com/caddy-sms-stepup/caddy-sms-stepup/pages"
)

// Enrollment: with `enroll`, an identity that has no number from the
// operator (phone placeholder or phone_file) registers one. The number is
// read back for confirmation, a code goes to it under the usual policy and
// limits, and only a verified code binds it to the identity in the store;
// later step-ups use it without asking. Replacing a bound number needs a
// step-up on the old one first (within changeFreshness), and the old number
// is told; a bound number that today's policy refuses needs an operator's
// reset instead (rebind.go).

var enrollCookie = cookie{"__Host-stepup_enroll", "stepup_enroll"}

// changeFreshness is how recent the step-up on the old number must be to
// bind a new one.
const changeFreshness = 5 * time.Minute

// pendingPhone is the number this browser is enrolling, if any: sealed to
// the identity in a cookie, and checked against the policy again.
func (h *Handler) pendingPhone(v *visit) (otp.Phone, bool) {
	raw := cookieValue(v.r, h.cookieName(v.r, enrollCookie))
	if raw == "" || !h.Enroll {
		return otp.Phone{}, false
	}
	sealed, err := base64.RawURLEncoding.DecodeString(raw)
	if err != nil {
		return otp.Phone{}, false
	}
	e164, err := h.keys.OpenPhone(v.identity, sealed)
	if err != nil {
		return otp.Phone{}, false
	}
	p, err := h.policy.Check(e164)
	return p, err == nil
}

// boundPhone is the identity's enrolled number, checked against today's
// policy (a deny list may have grown since it was bound).
func (h *Handler) boundPhone(ctx context.Context, identity string) (otp.Phone, error) {
	b, err := h.service.BoundPhone(ctx, identity)
	if errors.Is(err, otp.ErrNoBoundPhone) {
		return otp.Phone{}, errNoPhone
	}
	if err != nil {
		return otp.Phone{}, err
	}
	return h.policy.Check(b.E164)
}

// freshStepUp reports whether the browser stepped up within
// changeFreshness, on a step-up no operator has revoked since. Changing
// the number is the most sensitive thing the plugin guards, so the
// revocation is read from the store itself rather than from the hot
// path's cache, and a store that can't be read refuses (the change needs
// the store anyway).
func (h *Handler) freshStepUp(v *visit) bool {
	token := cookieValue(v.r, h.cookieName(v.r, tokenCookie))
	if token == "" {
		return false
	}
	verified, err := h.tokens.Check(token, v.identity, v.sessionHash, changeFreshness)
	if err != nil {
		return false
	}
	ctx, cancel := requestContext(v.r)
	defer cancel()
	nb, err := h.service.NotBefore(ctx, v.identity)
	return err == nil && !verified.AuthTime.Before(nb)
}

func (h *Handler) renderEnroll(v *visit, status int, data pages.Data) error {
	return h.render(v, status, pages.Enroll, data)
}

// changeNumber serves GET {prefix}/change: after a fresh step-up on the
// current number, the form for a new one.
func (h *Handler) changeNumber(v *visit) error {
	if !h.Enroll {
		return h.render(v, http.StatusNotFound, pages.Error, v.msg("not_found"))
	}
	ctx, cancel := requestContext(v.r)
	defer cancel()
	var refused *otp.PhoneRefusal
	if _, err := h.boundPhone(ctx, v.identity); errors.As(err, &refused) {
		// No step-up on it can happen: say at once who can help.
		return h.refuseRebind(v, refused, "")
	}
	if !h.freshStepUp(v) {
		http.Redirect(v.w, v.r, h.PathPrefix+"/?r="+urlQueryEscape(h.PathPrefix+"/change"), http.StatusSeeOther)
		return nil
	}
	return h.renderEnroll(v, http.StatusOK, pages.Data{Changing: true})
}

// enroll handles POST {prefix}/enroll and, for JSON clients, POST
// {prefix}/api/enroll: the same checks and cookies, answered as a page or
// a redirect, or as JSON.
func (h *Handler) enroll(v *visit) error {
	ctx, cancel := requestContext(v.r)
	defer cancel()
	return h.respond(v, h.decideEnroll(ctx, v))
}

// decideEnroll takes a number to register (or, with reset, forgets the one
// being registered). Replacing a bound number needs a fresh step-up on it
// (SECURITY.md rule 13), or an operator when today's policy refuses it
// (rule 32).
func (h *Handler) decideEnroll(ctx context.Context, v *visit) outcome {
	if !h.Enroll {
		return answerPage(http.StatusNotFound, pages.Error, v.msg("not_found"))
	}
	if v.req.Reset {
		o := outcome{redirect: h.PathPrefix + "/?r=" + urlQueryEscape(v.ret), body: map[string]any{"status": "reset"}}
		o.setCookie(enrollCookie, "", -1, http.SameSiteStrictMode)
		o.clearChallenge()
		return o
	}
	if h.operatorPhone(v.repl, v.identity) {
		// The operator supplies this identity's number (even one today's
		// policy refuses); it can't be changed here.
		return answerPage(http.StatusForbidden, pages.Error, v.msg("no_phone"))
	}
	current, err := h.boundPhone(ctx, v.identity)
	var refused *otp.PhoneRefusal
	switch {
	case errors.As(err, &refused):
		return h.rebindRefused(v, refused, h.maskedInput(v.req.Phone))
	case err == nil && !h.freshStepUp(v):
		if v.api {
			// The client steps up on the current number (api/send,
			// api/verify), then sends the new one again.
			return answerPage(http.StatusForbidden, pages.Error, v.msg("change_needs_step_up"))
		}
		return outcome{redirect: h.PathPrefix + "/?r=" + urlQueryEscape(h.PathPrefix+"/change")}
	case err != nil && !errors.Is(err, errNoPhone):
		return outcome{unavailable: err}
	}
	phone, err := h.policy.Check(v.req.Phone)
	if err != nil {
		var refusal *otp.PhoneRefusal
		errors.As(err, &refusal)
		o := answerPage(http.StatusUnprocessableEntity, pages.Enroll, pages.Data{Changing: current.E164 != "", Message: pages.Msg(v.lang, "phone_refused"), Key: "phone_refused"})
		o.audit(zapcore.WarnLevel, "number refused at enrollment", "policy_refusal", zap.String("identity", v.identity),
			zap.String("reason", refusal.Reason), zap.String("type", refusal.Type), zap.String("phone", refusal.Masked),
			zap.String("client_ip", clientIP(v.r)))
		return o
	}
	if o := h.carrierGate(ctx, v, phone, true, current.E164 != ""); o != nil {
		return *o
	}
	sealed, err := h.keys.SealPhone(v.identity, phone.E164)
	if err != nil {
		return outcome{failure: err}
	}
	o := outcome{redirect: h.PathPrefix + "/?r=" + urlQueryEscape(v.ret) + "&lang=" + v.lang}
	// The number is read back in full, as the page does, for the person
	// to check it is theirs before a code goes to it.
	o.body = map[string]any{"status": "enrolling", "masked": phone.Masked, "formatted": phone.Formatted, "message": pages.Msg(v.lang, "enroll_confirm")}
	o.setCookie(enrollCookie, base64.RawURLEncoding.EncodeToString(sealed), 10*time.Minute, http.SameSiteStrictMode)
	// A challenge to the old number is no use for the new one.
	o.clearChallenge()
	return o
}

// operatorPhone reports whether the operator's sources (placeholder, file
// or a phone source) give this identity a number.
func (h *Handler) operatorPhone(repl *caddy.Replacer, identity string) bool {
	if h.Phone != "" && repl.ReplaceAll(h.Phone, "") != "" {
		return true
	}
	_, listed, _ := h.filePhone(identity)
	return listed || h.sourceGives(identity)
}

// bindEnrolled binds the number just verified; it returns the answer when
// the number can't be bound, nil when it was. The old number is read again
// here: the policy may have come to refuse it since the enrolment began,
// and a change it can't be told of must not happen.
func (h *Handler) bindEnrolled(ctx context.Context, v *visit, phone otp.Phone) *outcome {
	old, oldErr := h.boundPhone(ctx, v.identity)
	var refused *otp.PhoneRefusal
	switch {
	case errors.As(oldErr, &refused):
		o := h.rebindRefused(v, refused, phone.Masked)
		return &o
	case oldErr != nil && !errors.Is(oldErr, errNoPhone):
		return &outcome{unavailable: oldErr}
	}
	max := h.MaxIdentitiesPerNumber
	if max == 0 {
		max = 1
	}
	err := h.service.BindPhone(ctx, v.identity, phone, max)
	logFields := []zap.Field{zap.String("identity", v.identity), zap.String("phone", phone.Masked), zap.String("client_ip", clientIP(v.r))}
	switch {
	case errors.Is(err, otp.ErrNumberTaken), errors.Is(err, otp.ErrBindConflict):
		// Said as a refusal like any other, so it does not tell whether
		// the number serves another account.
		h.audit(zapcore.WarnLevel, "number refused at enrollment: already bound to the allowed number of identities", "policy_refusal",
			append(logFields, zap.String("reason", "number_taken"))...)
		o := answerPage(http.StatusUnprocessableEntity, pages.Enroll, pages.Data{Changing: oldErr == nil, Message: pages.Msg(v.lang, "phone_refused"), Key: "phone_refused"})
		o.setCookie(enrollCookie, "", -1, http.SameSiteStrictMode)
		return &o
	case err != nil:
		return &outcome{unavailable: err}
	}
	h.setCookie(v.w, v.r, enrollCookie, "", -1, http.SameSiteStrictMode)
	if oldErr == nil && old.E164 != phone.E164 {
		h.audit(zapcore.WarnLevel, "phone number changed", "number_change", append(logFields, zap.String("old_phone", old.Masked))...)
		body := pages.Msg(v.lang, "number_changed_notice", "{service}", h.service.Config().ServiceName)
		if err := h.service.Notify(ctx, old, v.lang, body); err != nil {
			h.audit(zapcore.ErrorLevel, "the old number could not be told of the change", "send_failed",
				append(logFields, zap.String("old_phone", old.Masked), zap.Error(err))...)
		}
	} else {
		h.audit(zapcore.InfoLevel, "phone number enrolled", "enrollment", logFields...)
	}
	return nil
}

package caddymodule

import (
	"context"
	"errors"
	"net/http"
	"strconv"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp"
	"github.com/caddy-sms-stepup/caddy-sms-stepup/pages"
)

// verify handles POST {prefix}/verify.
func (h *Handler) verify(v *visit) error {
	id := cookieValue(v.r, h.cookieName(v.r, challengeCookie))
	if id == "" {
		// No store call, so no bounded context: half a flood's requests.
		return h.respond(v, answerSend(http.StatusUnprocessableEntity, v.msg("no_challenge")))
	}
	ctx, cancel := requestContext(v.r)
	defer cancel()
	return h.respond(v, h.decideVerify(ctx, v, id))
}

// decideVerify checks the code of the browser's challenge id and maps the
// result to an outcome.
func (h *Handler) decideVerify(ctx context.Context, v *visit, id string) outcome {
	res, err := h.service.Verify(ctx, otp.VerifyInput{
		Subject:     v.identity,
		SessionHash: v.sessionHash,
		ChallengeID: id,
		Code:        v.req.Code,
	})
	logFields := []zap.Field{zap.String("identity", v.identity), zap.String("challenge", shortString(id)), zap.String("client_ip", clientIP(v.r)), h.deviceField(v)}
	o := outcome{}
	if errors.Is(err, otp.ErrMalformedCode) {
		o.audit(zapcore.InfoLevel, "verify refused: not a code of the right length", "verify", append(logFields, zap.String("result", "malformed"))...)
		return h.withChallenge(v, o, http.StatusUnprocessableEntity,
			v.msg("malformed_code", "{n}", strconv.Itoa(h.service.Config().CodeLength)), v.msg("no_challenge"))
	}
	if err != nil {
		return outcome{unavailable: err}
	}
	switch res.Status {
	case otp.VerifyOK:
		// Which number the code went to comes back from the store's
		// verification step itself, which consumed the challenge.
		return h.verified(ctx, v, sentTo(res), logFields)
	case otp.VerifyLocked:
		o.audit(zapcore.WarnLevel, "verify refused: identity locked out", "verify", append(logFields, zap.String("result", "locked"))...)
		o.lockedUntil = res.LockedUntil
		return o
	case otp.VerifyNotFound:
		o.audit(zapcore.InfoLevel, "verify failed: no live challenge", "verify", append(logFields, zap.String("result", "no_challenge"))...)
		o.clearChallenge()
		o.status, o.page, o.data = http.StatusUnprocessableEntity, pages.Send, v.msg("no_challenge")
		return o
	}
	return h.wrongCode(ctx, v, res, logFields)
}

// sentTo is the challenge a verification found, as far as its answer
// names it (the number it went to); nil when it names none.
func sentTo(res otp.VerifyResult) *otp.Challenge {
	if res.PhoneHash == "" {
		return nil
	}
	return &otp.Challenge{PhoneHash: res.PhoneHash, PhoneMasked: res.PhoneMasked}
}

// verified is a code that worked: a step-up on the identity's own number,
// or the binding of the number being enrolled together with a step-up, or
// (for a code whose number is neither) nothing.
func (h *Handler) verified(ctx context.Context, v *visit, sentTo *otp.Challenge, logFields []zap.Field) outcome {
	o := outcome{}
	purpose, pending, err := h.codePurpose(ctx, v, sentTo)
	switch {
	case err != nil:
		return outcome{unavailable: err}
	case purpose == purposeNone:
		o.audit(zapcore.WarnLevel, "verify refused: the code went to a number this browser is no longer enrolling", "verify",
			append(logFields, zap.String("result", "enrolment_lost"))...)
		o.clearChallenge()
		o.status, o.page, o.data = http.StatusUnprocessableEntity, pages.Send, v.msg("no_challenge")
		return o
	case purpose == purposeEnrol:
		if refused := h.bindEnrolled(ctx, v, pending); refused != nil {
			return *refused
		}
	}
	token, err := h.tokens.Issue(v.identity, v.sessionHash, h.clock.Now())
	if err != nil {
		return outcome{failure: err}
	}
	h.rememberVerified(ctx, v)
	o.audit(zapcore.InfoLevel, "step-up verified", "verify", append(logFields, zap.String("result", "ok"))...)
	o.setCookie(tokenCookie, token, h.tokens.TTL(), http.SameSiteLaxMode)
	o.clearChallenge()
	o.noStore = true
	o.redirect = v.ret
	o.body = map[string]any{"status": "verified", "return": v.ret}
	if purpose == purposeEnrol {
		o.body["enrolled"] = true
	}
	h.resumeAfterStepUp(v, &o) // a kept form goes first (replay_resume.go)
	return o
}

// wrongCode is a code that did not match: fewer attempts left, or a
// challenge used up, or a lock-out.
func (h *Handler) wrongCode(ctx context.Context, v *visit, res otp.VerifyResult, logFields []zap.Field) outcome {
	o := outcome{}
	now := h.clock.Now()
	o.audit(zapcore.WarnLevel, "verify failed: wrong code", "verify", append(logFields, zap.String("result", res.Status.String()),
		zap.Int("remaining", res.Remaining), zap.Int("failures", res.Failures))...)
	if now.Before(res.LockedUntil) {
		o.audit(zapcore.WarnLevel, "identity locked out after wrong codes", "lockout", append(logFields, zap.Int("failures", res.Failures), zap.Time("until", res.LockedUntil))...)
		o.clearChallenge()
		o.lockedUntil = res.LockedUntil
		return o
	}
	if res.Status == otp.VerifyExhausted {
		o.clearChallenge()
		o.status, o.page, o.data = http.StatusUnprocessableEntity, pages.Send, v.msg("code_dead")
		return o
	}
	st, _ := h.service.Identity(ctx, v.identity)
	key := "wrong_code"
	if res.Remaining == 1 {
		key = "wrong_code_one"
	}
	data := v.msg(key, "{n}", strconv.Itoa(res.Remaining))
	data.Key = "wrong_code"
	data.RetryIn = retryIn(now, st.NextSendAt)
	return h.withChallenge(v, o, http.StatusUnprocessableEntity, data, v.msg("no_challenge"))
}

package caddymodule

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp"
	"github.com/caddy-sms-stepup/caddy-sms-stepup/pages"
)

// send handles POST {prefix}/send (a first code, or a new one that
// replaces the old) and POST {prefix}/call (a new code read out by phone).
func (h *Handler) send(v *visit, voice bool) error {
	ctx, cancel := requestContext(v.r)
	defer cancel()
	return h.respond(v, h.decideSend(ctx, v, voice))
}

// decideSend sends a code to the number being enrolled, else to the
// identity's own, and maps what came of it to an outcome.
func (h *Handler) decideSend(ctx context.Context, v *visit, voice bool) outcome {
	if o, ok := h.repeatRefusal(v, voice); ok {
		return o // the store refused this address's sends until a time to come (refusal_memo.go)
	}
	phone, enrolling := h.pendingPhone(v)
	if !enrolling {
		var err error
		if phone, err = h.phoneFor(ctx, v.identity, v.repl); err != nil {
			switch {
			case errors.Is(err, errNoPhone) && h.Enroll:
				return answerPage(http.StatusUnprocessableEntity, pages.Enroll, pages.Data{})
			case !errors.Is(err, errNoPhone) && !otp.IsPhoneRefusal(err):
				return outcome{unavailable: err}
			}
			return h.noPhone(v, err)
		}
	}
	v.phone = phone
	logFields := []zap.Field{zap.String("identity", v.identity), zap.String("phone", phone.Masked), zap.String("client_ip", clientIP(v.r)), h.deviceField(v)}
	rk, refused, gated := h.captchaGate(ctx, v, logFields)
	if gated {
		return refused
	}
	if h.Captcha != nil {
		logFields = append(logFields, rk.field())
	}
	req := otp.SendRequest{
		Subject:     v.identity,
		SessionHash: v.sessionHash,
		Phone:       phone,
		ResendID:    cookieValue(v.r, h.cookieName(v.r, challengeCookie)),
		Locale:      v.lang,
		Voice:       voice,
		ClientIP:    clientIP(v.r),
		Device:      v.device,
		Action:      h.actionText(v),
	}
	// After the CAPTCHA: a carrier lookup costs money, a bot's answer not;
	// and a send the service would refuse from the store's refusals it
	// holds (a pumping flood's range) costs none.
	if h.carrier != nil {
		if err := h.service.HeldSendRefusal(req); err != nil {
			return h.sendRefused(v, otp.SendResult{Repeated: true}, err, voice, append(logFields, zap.Bool("repeated", true)))
		}
	}
	if o := h.carrierGate(ctx, v, phone, enrolling, false); o != nil {
		return *o
	}
	res, err := h.service.Send(ctx, req)
	if phone.AllowListed {
		logFields = append(logFields, zap.String("policy", "allow_list"))
	}
	if res.Repeated {
		logFields = append(logFields, zap.Bool("repeated", true))
	}
	if err != nil {
		v.shown, v.shownRead = res.Shown, res.ShownRead
		return h.sendRefused(v, res, err, voice, logFields)
	}
	h.rememberSend(ctx, v)
	o := outcome{}
	o.audit(zapcore.InfoLevel, "code sent", "send", append(logFields, zap.String("challenge", shortID(res.Challenge)), zap.Bool("voice", voice),
		zap.Bool("resend", res.Resent), zap.Int("sends", res.Challenge.Sends), zap.String("gateway", res.Receipt.Gateway))...)
	o.setCookie(challengeCookie, res.Challenge.ID, time.Duration(h.service.Config().CodeTTL), http.SameSiteStrictMode)
	m := "sent"
	switch {
	case voice:
		m = "calling"
	case res.Resent:
		m = "resent"
	}
	o.redirect = h.PathPrefix + "/?r=" + urlQueryEscape(v.ret) + "&m=" + m + "&lang=" + v.lang
	if v.api {
		st, _ := h.service.Identity(ctx, v.identity)
		o.body = map[string]any{
			"status": m, "message": pages.Msg(v.lang, m), "masked": res.Challenge.PhoneMasked,
			"remaining": res.Challenge.Remaining(), "retry_in": retryIn(h.clock.Now(), st.NextSendAt),
		}
	}
	return o
}

// sendRefused maps a send that did not happen (or may not have) to an
// outcome: a limit, a lock-out, a gateway failure or the store.
func (h *Handler) sendRefused(v *visit, res otp.SendResult, err error, voice bool, logFields []zap.Field) outcome {
	// errors.AsType: no target allocated per kind tried (issue 17).
	if blocked, ok := errors.AsType[*otp.BlockedError](err); ok {
		return h.fraudRefused(v, blocked, logFields)
	}
	if limited, ok := errors.AsType[*otp.RateLimitError](err); ok {
		return h.rateLimited(v, limited, logFields)
	}
	o := outcome{}
	if locked, ok := errors.AsType[*otp.LockedError](err); ok {
		o.audit(zapcore.WarnLevel, "send refused: identity locked out", "send_refused", append(logFields, zap.String("reason", "locked"), zap.Time("until", locked.Until))...)
		o.lockedUntil = locked.Until
		return o
	}
	var cooldown *otp.CooldownError
	switch {
	case errors.As(err, &cooldown):
		o.audit(zapcore.InfoLevel, "send refused: cooldown", "rate_limited", append(logFields, zap.String("limit", "resend_cooldown"))...)
		secs := retryIn(h.clock.Now(), cooldown.RetryAt)
		data := v.msg("cooldown", "{s}", strconv.Itoa(secs))
		data.RetryIn = secs
		o.retryAfter = strconv.Itoa(secs) // as a limit's and the fraud guard's refusals say it
		return h.withChallenge(v, o, http.StatusTooManyRequests, data, data)
	case errors.Is(err, otp.ErrCallLimit), errors.Is(err, otp.ErrNoVoice):
		o.audit(zapcore.InfoLevel, "call refused", "rate_limited", append(logFields, zap.String("limit", "challenge_calls"))...)
		return h.withChallenge(v, o, http.StatusTooManyRequests, v.msg("call_limit"), v.msg("no_challenge"))
	case errors.Is(err, otp.ErrSendLimit):
		o.audit(zapcore.WarnLevel, "send refused: send limit of the challenge reached", "rate_limited", append(logFields, zap.String("limit", "challenge_sends"))...)
		o.clearChallenge()
		o.status, o.page, o.data = http.StatusTooManyRequests, pages.Error, v.msg("send_limit")
		return o
	case errors.Is(err, otp.ErrSendFailed):
		return h.sendFailed(v, res, err, voice, logFields)
	}
	return outcome{unavailable: err}
}

// sendFailed is a send the gateway did not take, or may not have.
func (h *Handler) sendFailed(v *visit, res otp.SendResult, err error, voice bool, logFields []zap.Field) outcome {
	o := outcome{}
	var ge *otp.GatewayError
	if errors.As(err, &ge) {
		logFields = append(logFields, zap.String("gateway", ge.Gateway), zap.String("outcome", ge.Kind.String()),
			zap.String("reason", ge.Reason), zap.String("provider_code", ge.Code))
	}
	o.audit(zapcore.ErrorLevel, "code could not be sent", "send_failed", append(logFields, zap.Bool("voice", voice),
		zap.String("challenge", shortID(res.Challenge)), zap.Error(err))...)
	if res.Challenge != nil {
		o.setCookie(challengeCookie, res.Challenge.ID, time.Duration(h.service.Config().CodeTTL), http.SameSiteStrictMode)
	}
	key := "send_failed"
	if ge != nil && ge.Kind == otp.Rejected && (ge.Reason == "invalid_number" || ge.Reason == "unsubscribed") {
		key = "send_rejected"
	} else if ge != nil && ge.Kind == otp.Unknown {
		// It may still arrive: say so rather than invite a second send.
		key = "send_unknown"
	}
	if res.Challenge != nil && key == "send_unknown" {
		o.status, o.page, o.challenge, o.data = http.StatusBadGateway, pages.Code, res.Challenge, v.msg(key)
		return o
	}
	o.status, o.page, o.data = http.StatusBadGateway, pages.Send, v.msg(key)
	return o
}

// rateLimited answers a send refused by a limit: 429, the minutes to
// wait, and for the daily budget an alert, since it stops every send.
func (h *Handler) rateLimited(v *visit, rl *otp.RateLimitError, logFields []zap.Field) outcome {
	o := outcome{}
	secs := retryIn(h.clock.Now(), rl.RetryAt)
	logFields = append(logFields, zap.String("limit", rl.Limit), zap.Time("retry_at", rl.RetryAt))
	if rl.Limit == otp.LimitDailyBudget {
		o.audit(zapcore.ErrorLevel, "ALERT: the daily SMS budget is spent; every send is refused until it resets", "rate_limited", logFields...)
	} else {
		o.audit(zapcore.WarnLevel, "send refused by a limit", "rate_limited", logFields...)
	}
	o.retryAfter = strconv.Itoa(secs)
	data := v.msg("rate_limited", "{m}", strconv.Itoa((secs+59)/60))
	data.RetryIn = secs
	return h.withChallenge(v, o, http.StatusTooManyRequests, data, data)
}

// withChallenge completes o with the code page when the browser still has
// a live challenge (showing onCode), else the send page (showing onSend).
func (h *Handler) withChallenge(v *visit, o outcome, status int, onCode, onSend pages.Data) outcome {
	o.status = status
	if c := h.liveChallenge(v); c != nil {
		o.page, o.challenge, o.data = pages.Code, c, onCode
		return o
	}
	o.page, o.data = pages.Send, onSend
	return o
}

package caddymodule

import (
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp"
	"github.com/caddy-sms-stepup/caddy-sms-stepup/pages"
)

// renderSend shows the send page: the number being enrolled read back in
// full, or the identity's own masked, or the enrolment form when it has
// none.
func (h *Handler) renderSend(v *visit, status int, data pages.Data) error {
	if pending, ok := h.pendingPhone(v); ok {
		// Enrolling: read the whole number back for confirmation.
		data.Enrolling, data.Formatted = true, pending.Formatted
		v.phone = pending
		return h.render(v, status, pages.Send, data)
	}
	// The bounded context only for a look-up: a flood's refusals show
	// this page by the thousand, mostly with a number at hand.
	phone, found, err := h.phoneAtHand(v.identity, v.repl)
	if !found {
		ctx, cancel := requestContext(v.r)
		defer cancel()
		phone, err = h.phoneFor(ctx, v.identity, v.repl)
	}
	switch {
	case err == nil:
	case errors.Is(err, errNoPhone) && h.Enroll:
		return h.renderEnroll(v, status, data)
	case errors.Is(err, errNoPhone) || otp.IsPhoneRefusal(err):
		return h.respond(v, h.noPhone(v, err))
	default:
		return h.unavailable(v, err)
	}
	data.Masked = phone.Masked
	v.phone = phone
	data.CanChange = h.Enroll && !h.operatorPhone(v.repl, v.identity)
	return h.render(v, status, pages.Send, data)
}

func (h *Handler) renderCode(v *visit, status int, c *otp.Challenge, data pages.Data) error {
	data.Masked = c.PhoneMasked
	data.Remaining = c.Remaining()
	data.CanCall = h.service.CanCall() && c.Calls < h.service.Config().MaxCalls
	switch c.Delivery {
	case otp.DeliveryDelivered:
		data.Delivery, data.DeliveryStatus = pages.Msg(v.lang, "delivery_delivered"), "notice"
	case otp.DeliveryFailed:
		key := "delivery_failed"
		if data.CanCall {
			key = "delivery_failed_call"
		}
		data.Delivery, data.DeliveryStatus = pages.Msg(v.lang, key), "error"
	}
	return h.render(v, status, pages.Code, data)
}

// noPhone answers when the identity has no number that can get a code. A
// number the identity enrolled that today's policy refuses can only be
// replaced after an operator's reset (SECURITY.md rule 32), so the page
// says so, as the change page does; anything else is the administrator's.
func (h *Handler) noPhone(v *visit, err error) outcome {
	key := "no_phone"
	if otp.IsPhoneRefusal(err) && h.Enroll && !h.operatorPhone(v.repl, v.identity) {
		key = "number_needs_reset"
	}
	o := answerPage(http.StatusForbidden, pages.Error, v.msg(key))
	var refusal *otp.PhoneRefusal
	if errors.As(err, &refusal) {
		fields := []zap.Field{zap.String("identity", v.identity), zap.String("reason", refusal.Reason), zap.String("type", refusal.Type), zap.String("phone", refusal.Masked)}
		if src := phoneSourceOf(err); src != "" {
			fields = append(fields, zap.String("source", src))
		}
		o.audit(zapcore.WarnLevel, "phone number refused by policy", "policy_refusal", fields...)
		return o
	}
	o.audit(zapcore.WarnLevel, "no phone number for identity", "no_phone", zap.String("identity", v.identity))
	return o
}

func (h *Handler) locked(v *visit, until time.Time) error {
	if otp.IsHardLock(until, h.clock.Now()) {
		// Waiting will not help: say who can, and give no Retry-After.
		data := v.msg("locked_hard_lead")
		data.Key = "locked_hard"
		return h.render(v, http.StatusTooManyRequests, pages.Locked, data)
	}
	minutes := int((until.Sub(h.clock.Now()) + time.Minute - 1) / time.Minute)
	if minutes < 1 {
		minutes = 1
	}
	v.w.Header().Set("Retry-After", strconv.Itoa(int(until.Sub(h.clock.Now())/time.Second)+1))
	data := v.msg("locked_lead", "{m}", strconv.Itoa(minutes))
	data.Key = "locked"
	return h.render(v, http.StatusTooManyRequests, pages.Locked, data)
}

// unavailable answers when the store or a phone source cannot be reached:
// fail closed, say so, send nothing.
func (h *Handler) unavailable(v *visit, err error) error {
	msg, event, fields := unavailableEvent(err)
	h.audit(zapcore.ErrorLevel, msg, event, append(fields, zap.String("identity", v.identity), zap.Error(err))...)
	v.w.Header().Set("Retry-After", "30")
	data := v.msg("unavailable_lead")
	data.Key = "unavailable"
	return h.render(v, http.StatusServiceUnavailable, pages.Unavailable, data)
}

// render writes a page with the security headers every page carries
// (SECURITY.md 22), a fresh CSP nonce and the browser's CSRF token. API
// clients get the same outcome as JSON.
func (h *Handler) render(v *visit, status int, page string, data pages.Data) error {
	referrer := "no-referrer"
	if page == pages.Resume {
		// The resubmitted form carries this site's Origin, as the
		// user's first post did, for an application that checks it.
		referrer = "same-origin"
	}
	setHeaders(v.w.Header(), "Cache-Control", "no-store", "Referrer-Policy", referrer,
		"X-Content-Type-Options", "nosniff", "X-Frame-Options", "DENY")
	if v.api || (wantsJSON(v.r) && page != pages.Send && page != pages.Code) {
		return writeJSON(v.w, status, h.apiBody(v, status, page, data))
	}
	nonce, err := randomToken(16)
	if err != nil {
		return caddyhttp.Error(http.StatusInternalServerError, err)
	}
	if page == pages.Send || page == pages.Code {
		data.Action = h.actionText(v)
		if data.Captcha == nil {
			data.Captcha = h.pageCaptcha(v)
		}
	}
	if h.writeFramed(v, status, page, data, nonce) {
		return nil // a refusal's page, without the template (render_frame.go)
	}
	cfg := h.service.Config()
	data.Lang = v.lang
	data.T = pages.Messages(v.lang, "{phone}", unbreakable.Replace(data.Masked), "{n}", strconv.Itoa(cfg.CodeLength))
	data.Nonce = nonce
	data.Service = h.serviceName()
	data.Brand = h.brand
	data.Prefix = h.PathPrefix
	data.Return = v.ret
	data.CSRF = h.csrfToken(v)
	data.CodeLength = cfg.CodeLength
	data.OtherLang = "ja"
	if v.lang == "ja" {
		data.OtherLang = "en"
	}
	data.OtherLabel = pages.LangName(data.OtherLang)
	data.OtherURL = h.PathPrefix + "/?r=" + urlQueryEscape(v.ret) + "&lang=" + data.OtherLang
	h.pageHeaders(v, nonce)
	v.w.WriteHeader(status)
	return h.pages.Render(v.w, page, data)
}

// pageHeaders are the headers of an HTML page whose <style> and <script>
// carry nonce.
func (h *Handler) pageHeaders(v *visit, nonce string) {
	widget := h.captchaScriptSources() // a CAPTCHA provider's origins, only when one is configured
	setHeaders(v.w.Header(),
		"Content-Security-Policy", "default-src 'none'; style-src 'nonce-"+nonce+"'"+widget+"; script-src 'nonce-"+nonce+"'"+widget+
			"; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"+h.captchaCSP(),
		"Content-Type", "text/html; charset=utf-8", "Content-Language", v.lang)
}

// unbreakable turns a masked number's hyphens and spaces into non-breaking
// ones, which keep it on one line in prose. Built once: a Replacer builds
// its tables on first use.
var unbreakable = strings.NewReplacer("-", "\u2011", " ", "\u00a0")

// renderError is render for requests that are not to the plugin's pages.
func (h *Handler) renderError(w http.ResponseWriter, r *http.Request, status int, key string) error {
	repl := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
	v := h.newVisit(w, r, repl, "")
	return h.render(v, status, pages.Error, v.msg(key))
}

// serviceName is the service's name on pages: from the config, never from
// the request (SECURITY.md rule 30).
func (h *Handler) serviceName() string {
	if h.Brand != nil && h.Brand.Name != "" {
		return h.Brand.Name
	}
	return h.serviceLabel
}

package caddymodule

import (
	"crypto/rand"
	"encoding/base64"
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

// visit is one request to the plugin's own pages, with what every page
// needs worked out once.
type visit struct {
	w           http.ResponseWriter
	r           *http.Request
	repl        *caddy.Replacer
	identity    string
	sessionHash string
	lang        string
	ret         string
	// api is a call to the JSON endpoints: answers are JSON, never pages
	// or redirects.
	api bool
}

// msg is page data carrying one message of the visitor's language.
func (v *visit) msg(key string, args ...string) pages.Data {
	return pages.Data{Message: pages.Msg(v.lang, key, args...), Key: key}
}

func (h *Handler) newVisit(w http.ResponseWriter, r *http.Request, repl *caddy.Replacer, identity string) *visit {
	return &visit{
		w:           w,
		r:           r,
		repl:        repl,
		identity:    identity,
		sessionHash: h.sessionHash(r, repl),
		lang:        pages.Lang(r.URL.Query().Get("lang"), r.Header.Get("Accept-Language")),
		ret:         "/",
	}
}

// serveOwn serves the pages and endpoints under path_prefix:
//
//	GET  {prefix}/        the send page, or the code page when a code is out
//	POST {prefix}/send    send a code (or a new one); never on GET
//	POST {prefix}/verify  check a code
func (h *Handler) serveOwn(w http.ResponseWriter, r *http.Request) error {
	sub := strings.TrimPrefix(r.URL.Path, h.PathPrefix)
	if rest, ok := strings.CutPrefix(sub, "/receipt/"); ok {
		// Providers have no identity; the sealed token in the URL and the
		// provider's own signature authenticate them.
		return h.receipt(w, r, rest)
	}
	if sub == "/jwks.json" {
		// Public keys only, for the upstream; needs no identity.
		w.Header().Set("Cache-Control", "max-age=300")
		w.Header().Set("Content-Type", "application/jwk-set+json")
		_, err := w.Write(h.tokens.JWKS())
		return err
	}
	repl := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
	identity, _, err := h.signedIn(w, r, repl)
	if identity == "" {
		return err // refused
	}
	q := r.URL.Query()
	v := h.newVisit(w, r, repl, identity)
	v.ret = returnPath(q.Get("r"))
	if api, ok := strings.CutPrefix(sub, "/api/"); ok {
		return h.serveAPI(v, api)
	}
	switch {
	case sub == "" || sub == "/":
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			return h.methodNotAllowed(v, "GET, HEAD")
		}
		return h.showPage(v, q.Get("m"), q.Get("n"))
	case sub == "/change":
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			return h.methodNotAllowed(v, "GET, HEAD")
		}
		return h.changeNumber(v)
	case sub == "/send" || sub == "/verify" || sub == "/call" || sub == "/enroll":
		if r.Method != http.MethodPost {
			if r.Method == http.MethodGet {
				// GET never sends or verifies: back to the page.
				http.Redirect(w, r, h.PathPrefix+"/?r="+urlQueryEscape(v.ret), http.StatusSeeOther)
				return nil
			}
			return h.methodNotAllowed(v, "POST")
		}
		r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
		if err := r.ParseForm(); err != nil {
			return h.render(v, http.StatusBadRequest, pages.Error, v.msg("csrf"))
		}
		v.lang = pages.Lang(r.PostForm.Get("lang"), r.Header.Get("Accept-Language"))
		v.ret = returnPath(r.PostForm.Get("r"))
		if !h.csrfOK(v) {
			h.audit(zapcore.WarnLevel, "form refused: CSRF token or origin check failed", "csrf_refused",
				zap.String("identity", v.identity), zap.String("client_ip", clientIP(r)), zap.String("path", r.URL.Path))
			return h.render(v, http.StatusForbidden, pages.Error, v.msg("csrf"))
		}
		switch sub {
		case "/enroll":
			return h.enroll(v)
		case "/send":
			return h.send(v, false)
		case "/call":
			return h.call(v)
		}
		return h.verify(v)
	}
	return h.render(v, http.StatusNotFound, pages.Error, v.msg("not_found"))
}

// showPage renders the code page when this browser has a live challenge,
// else the send page.
func (h *Handler) showPage(v *visit, sent, notice string) error {
	ctx, cancel := requestContext(v.r)
	defer cancel()
	st, err := h.service.Identity(ctx, v.identity)
	if err != nil {
		return h.unavailable(v, err)
	}
	now := h.clock.Now()
	if st.Locked(now) {
		return h.locked(v, st.LockedUntil)
	}
	if id := cookieValue(v.r, h.cookieName(v.r, challengeCookie)); id != "" {
		c, err := h.service.Challenge(ctx, v.identity, v.sessionHash, id)
		switch {
		case err == nil:
			data := pages.Data{RetryIn: retryIn(now, st.NextSendAt)}
			if sent == "sent" || sent == "resent" || sent == "calling" {
				data.Message, data.Status, data.Key = pages.Msg(v.lang, sent), "notice", sent
			}
			return h.renderCode(v, http.StatusOK, c, data)
		case !errors.Is(err, otp.ErrChallengeNotFound):
			return h.unavailable(v, err)
		}
	}
	data := pages.Data{}
	if notice == "resubmit" {
		data.Message, data.Status, data.Key = pages.Msg(v.lang, "resubmit"), "notice", "resubmit"
	}
	return h.renderSend(v, http.StatusOK, data)
}

func (h *Handler) renderSend(v *visit, status int, data pages.Data) error {
	if pending, ok := h.pendingPhone(v); ok {
		// Enrolling: read the whole number back for confirmation.
		data.Enrolling, data.Formatted = true, pending.Formatted
		return h.render(v, status, pages.Send, data)
	}
	ctx, cancel := requestContext(v.r)
	defer cancel()
	phone, err := h.phoneFor(ctx, v.identity, v.repl)
	switch {
	case err == nil:
	case errors.Is(err, errNoPhone) && h.Enroll:
		return h.renderEnroll(v, status, data)
	case errors.Is(err, errNoPhone) || otp.IsPhoneRefusal(err):
		return h.noPhone(v, err)
	default:
		return h.unavailable(v, err)
	}
	data.Masked = phone.Masked
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
func (h *Handler) noPhone(v *visit, err error) error {
	h.logPhoneProblem(v, err)
	key := "no_phone"
	if otp.IsPhoneRefusal(err) && h.Enroll && !h.operatorPhone(v.repl, v.identity) {
		key = "number_needs_reset"
	}
	return h.render(v, http.StatusForbidden, pages.Error, v.msg(key))
}

func (h *Handler) logPhoneProblem(v *visit, err error) {
	var refusal *otp.PhoneRefusal
	if errors.As(err, &refusal) {
		h.audit(zapcore.WarnLevel, "phone number refused by policy", "policy_refusal", zap.String("identity", v.identity),
			zap.String("reason", refusal.Reason), zap.String("type", refusal.Type), zap.String("phone", refusal.Masked))
		return
	}
	h.audit(zapcore.WarnLevel, "no phone number for identity", "no_phone", zap.String("identity", v.identity))
}

// send handles POST {prefix}/send (a first code, or a new one that
// replaces the old) and POST {prefix}/call (a new code read out by phone).
func (h *Handler) send(v *visit, voice bool) error {
	ctx, cancel := requestContext(v.r)
	defer cancel()
	phone, enrolling := h.pendingPhone(v)
	if !enrolling {
		var err error
		if phone, err = h.phoneFor(ctx, v.identity, v.repl); err != nil {
			if errors.Is(err, errNoPhone) && h.Enroll {
				return h.renderEnroll(v, http.StatusUnprocessableEntity, pages.Data{})
			}
			if !errors.Is(err, errNoPhone) && !otp.IsPhoneRefusal(err) {
				return h.unavailable(v, err)
			}
			return h.noPhone(v, err)
		}
	}
	res, err := h.service.Send(ctx, otp.SendRequest{
		Subject:     v.identity,
		SessionHash: v.sessionHash,
		Phone:       phone,
		ResendID:    cookieValue(v.r, h.cookieName(v.r, challengeCookie)),
		Locale:      v.lang,
		Voice:       voice,
		ClientIP:    clientIP(v.r),
	})
	logFields := []zap.Field{zap.String("identity", v.identity), zap.String("phone", phone.Masked), zap.String("client_ip", clientIP(v.r))}
	if phone.AllowListed {
		logFields = append(logFields, zap.String("policy", "allow_list"))
	}
	var cooldown *otp.CooldownError
	var locked *otp.LockedError
	var limited *otp.RateLimitError
	switch {
	case err == nil:
	case errors.As(err, &limited):
		return h.rateLimited(v, limited, logFields)
	case errors.As(err, &locked):
		h.audit(zapcore.WarnLevel, "send refused: identity locked out", "send_refused", append(logFields, zap.String("reason", "locked"), zap.Time("until", locked.Until))...)
		return h.locked(v, locked.Until)
	case errors.As(err, &cooldown):
		h.audit(zapcore.InfoLevel, "send refused: cooldown", "rate_limited", append(logFields, zap.String("limit", "resend_cooldown"))...)
		secs := strconv.Itoa(retryIn(h.clock.Now(), cooldown.RetryAt))
		data := v.msg("cooldown", "{s}", secs)
		data.RetryIn = retryIn(h.clock.Now(), cooldown.RetryAt)
		if c := h.liveChallenge(v); c != nil {
			return h.renderCode(v, http.StatusTooManyRequests, c, data)
		}
		return h.renderSend(v, http.StatusTooManyRequests, data)
	case errors.Is(err, otp.ErrCallLimit), errors.Is(err, otp.ErrNoVoice):
		h.audit(zapcore.InfoLevel, "call refused", "rate_limited", append(logFields, zap.String("limit", "challenge_calls"))...)
		if c := h.liveChallenge(v); c != nil {
			return h.renderCode(v, http.StatusTooManyRequests, c, v.msg("call_limit"))
		}
		return h.renderSend(v, http.StatusTooManyRequests, v.msg("no_challenge"))
	case errors.Is(err, otp.ErrSendLimit):
		h.audit(zapcore.WarnLevel, "send refused: send limit of the challenge reached", "rate_limited", append(logFields, zap.String("limit", "challenge_sends"))...)
		h.setCookie(v.w, v.r, challengeCookie, "", -1, http.SameSiteStrictMode)
		return h.render(v, http.StatusTooManyRequests, pages.Error, v.msg("send_limit"))
	case errors.Is(err, otp.ErrSendFailed):
		var ge *otp.GatewayError
		if errors.As(err, &ge) {
			logFields = append(logFields, zap.String("gateway", ge.Gateway), zap.String("outcome", ge.Kind.String()),
				zap.String("reason", ge.Reason), zap.String("provider_code", ge.Code))
		}
		h.audit(zapcore.ErrorLevel, "code could not be sent", "send_failed", append(logFields, zap.Bool("voice", voice),
			zap.String("challenge", shortID(res.Challenge)), zap.Error(err))...)
		if res.Challenge != nil {
			h.setCookie(v.w, v.r, challengeCookie, res.Challenge.ID, time.Duration(h.service.Config().CodeTTL), http.SameSiteStrictMode)
		}
		key := "send_failed"
		if ge != nil && ge.Kind == otp.Rejected && (ge.Reason == "invalid_number" || ge.Reason == "unsubscribed") {
			key = "send_rejected"
		} else if ge != nil && ge.Kind == otp.Unknown {
			// It may still arrive: say so rather than invite a second send.
			key = "send_unknown"
		}
		if res.Challenge != nil && key == "send_unknown" {
			return h.renderCode(v, http.StatusBadGateway, res.Challenge, v.msg(key))
		}
		return h.renderSend(v, http.StatusBadGateway, v.msg(key))
	default:
		return h.unavailable(v, err)
	}
	h.audit(zapcore.InfoLevel, "code sent", "send", append(logFields, zap.String("challenge", shortID(res.Challenge)), zap.Bool("voice", voice),
		zap.Bool("resend", res.Resent), zap.Int("sends", res.Challenge.Sends), zap.String("gateway", res.Receipt.Gateway))...)
	h.setCookie(v.w, v.r, challengeCookie, res.Challenge.ID, time.Duration(h.service.Config().CodeTTL), http.SameSiteStrictMode)
	m := "sent"
	switch {
	case voice:
		m = "calling"
	case res.Resent:
		m = "resent"
	}
	if v.api {
		st, _ := h.service.Identity(ctx, v.identity)
		return writeJSON(v.w, http.StatusOK, map[string]any{
			"status": m, "message": pages.Msg(v.lang, m), "masked": res.Challenge.PhoneMasked,
			"remaining": res.Challenge.Remaining(), "retry_in": retryIn(h.clock.Now(), st.NextSendAt),
		})
	}
	http.Redirect(v.w, v.r, h.PathPrefix+"/?r="+urlQueryEscape(v.ret)+"&m="+m+"&lang="+v.lang, http.StatusSeeOther)
	return nil
}

// receipt takes a provider's delivery report at
// {prefix}/receipt/{gateway}/{token}.
func (h *Handler) receipt(w http.ResponseWriter, r *http.Request, rest string) error {
	name, token, _ := strings.Cut(rest, "/")
	parser := h.receipts[name]
	if parser == nil || token == "" || h.service.Config().ReceiptBase == "" {
		return caddyhttp.Error(http.StatusNotFound, errors.New("no such receipt endpoint"))
	}
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	report, err := parser.ParseReceipt(r, h.service.Config().ReceiptBase+"/"+name+"/"+token)
	if err != nil {
		h.audit(zapcore.WarnLevel, "delivery report refused", "receipt_refused", zap.String("gateway", name),
			zap.String("client_ip", clientIP(r)), zap.Error(err))
		return caddyhttp.Error(http.StatusForbidden, errors.New("delivery report refused"))
	}
	ctx, cancel := requestContext(r)
	defer cancel()
	subject, challengeID, ok, err := h.service.RecordDelivery(ctx, token, report.Status)
	switch {
	case !ok:
		h.audit(zapcore.WarnLevel, "delivery report with a token we did not make", "receipt_refused", zap.String("gateway", name), zap.String("client_ip", clientIP(r)))
		return caddyhttp.Error(http.StatusNotFound, errors.New("no such receipt"))
	case err != nil:
		h.audit(zapcore.ErrorLevel, "store unavailable: delivery report not recorded", "store_unavailable", zap.Error(err))
		return caddyhttp.Error(http.StatusServiceUnavailable, err)
	}
	h.audit(zapcore.InfoLevel, "delivery report", "delivery", zap.String("gateway", name),
		zap.String("status", string(report.Status)), zap.String("identity", subject), zap.String("challenge", shortString(challengeID)),
		zap.String("provider_ref", report.ID), zap.String("provider_error", report.Error))
	w.WriteHeader(http.StatusOK)
	return nil
}

// rateLimited answers a send refused by a limit: 429, the minutes to
// wait, and for the daily budget an alert, since it stops every send.
func (h *Handler) rateLimited(v *visit, rl *otp.RateLimitError, logFields []zap.Field) error {
	now := h.clock.Now()
	secs := retryIn(now, rl.RetryAt)
	logFields = append(logFields, zap.String("limit", rl.Limit), zap.Time("retry_at", rl.RetryAt))
	if rl.Limit == otp.LimitDailyBudget {
		h.audit(zapcore.ErrorLevel, "ALERT: the daily SMS budget is spent; every send is refused until it resets", "rate_limited", logFields...)
	} else {
		h.audit(zapcore.WarnLevel, "send refused by a limit", "rate_limited", logFields...)
	}
	v.w.Header().Set("Retry-After", strconv.Itoa(secs))
	data := v.msg("rate_limited", "{m}", strconv.Itoa((secs+59)/60))
	data.RetryIn = secs
	if c := h.liveChallenge(v); c != nil {
		return h.renderCode(v, http.StatusTooManyRequests, c, data)
	}
	return h.renderSend(v, http.StatusTooManyRequests, data)
}

// liveChallenge is the browser's challenge if it is still live.
func (h *Handler) liveChallenge(v *visit) *otp.Challenge {
	id := cookieValue(v.r, h.cookieName(v.r, challengeCookie))
	if id == "" {
		return nil
	}
	ctx, cancel := requestContext(v.r)
	defer cancel()
	c, err := h.service.Challenge(ctx, v.identity, v.sessionHash, id)
	if err != nil {
		return nil
	}
	return c
}

// verify handles POST {prefix}/verify.
func (h *Handler) verify(v *visit) error {
	id := cookieValue(v.r, h.cookieName(v.r, challengeCookie))
	if id == "" {
		return h.renderSend(v, http.StatusUnprocessableEntity, v.msg("no_challenge"))
	}
	ctx, cancel := requestContext(v.r)
	defer cancel()
	// Which number the code went to is read before the code is checked,
	// since a code that works is consumed with its challenge.
	sentTo := h.liveChallenge(v)
	res, err := h.service.Verify(ctx, otp.VerifyInput{
		Subject:     v.identity,
		SessionHash: v.sessionHash,
		ChallengeID: id,
		Code:        v.r.PostForm.Get("code"),
	})
	logFields := []zap.Field{zap.String("identity", v.identity), zap.String("challenge", shortString(id)), zap.String("client_ip", clientIP(v.r))}
	if errors.Is(err, otp.ErrMalformedCode) {
		h.audit(zapcore.InfoLevel, "verify refused: not a code of the right length", "verify", append(logFields, zap.String("result", "malformed"))...)
		c := h.liveChallenge(v)
		if c == nil {
			return h.renderSend(v, http.StatusUnprocessableEntity, v.msg("no_challenge"))
		}
		return h.renderCode(v, http.StatusUnprocessableEntity, c, v.msg("malformed_code", "{n}", strconv.Itoa(h.service.Config().CodeLength)))
	}
	if err != nil {
		return h.unavailable(v, err)
	}
	now := h.clock.Now()
	switch res.Status {
	case otp.VerifyOK:
		purpose, pending, err := h.codePurpose(ctx, v, sentTo)
		switch {
		case err != nil:
			return h.unavailable(v, err)
		case purpose == purposeNone:
			h.audit(zapcore.WarnLevel, "verify refused: the code went to a number this browser is no longer enrolling", "verify",
				append(logFields, zap.String("result", "enrolment_lost"))...)
			h.setCookie(v.w, v.r, challengeCookie, "", -1, http.SameSiteStrictMode)
			return h.renderSend(v, http.StatusUnprocessableEntity, v.msg("no_challenge"))
		case purpose == purposeEnrol:
			if ok, err := h.bindEnrolled(ctx, v, pending); !ok {
				return err
			}
		}
		token, err := h.tokens.Issue(v.identity, v.sessionHash, now)
		if err != nil {
			return caddyhttp.Error(http.StatusInternalServerError, err)
		}
		h.audit(zapcore.InfoLevel, "step-up verified", "verify", append(logFields, zap.String("result", "ok"))...)
		h.setCookie(v.w, v.r, tokenCookie, token, h.tokens.TTL(), http.SameSiteLaxMode)
		h.setCookie(v.w, v.r, challengeCookie, "", -1, http.SameSiteStrictMode)
		v.w.Header().Set("Cache-Control", "no-store")
		if v.api {
			return writeJSON(v.w, http.StatusOK, map[string]any{"status": "verified", "return": v.ret})
		}
		http.Redirect(v.w, v.r, v.ret, http.StatusSeeOther)
		return nil
	case otp.VerifyLocked:
		h.audit(zapcore.WarnLevel, "verify refused: identity locked out", "verify", append(logFields, zap.String("result", "locked"))...)
		return h.locked(v, res.LockedUntil)
	case otp.VerifyNotFound:
		h.audit(zapcore.InfoLevel, "verify failed: no live challenge", "verify", append(logFields, zap.String("result", "no_challenge"))...)
		h.setCookie(v.w, v.r, challengeCookie, "", -1, http.SameSiteStrictMode)
		return h.renderSend(v, http.StatusUnprocessableEntity, v.msg("no_challenge"))
	}
	// A wrong code.
	h.audit(zapcore.WarnLevel, "verify failed: wrong code", "verify", append(logFields, zap.String("result", res.Status.String()),
		zap.Int("remaining", res.Remaining), zap.Int("failures", res.Failures))...)
	if now.Before(res.LockedUntil) {
		h.audit(zapcore.WarnLevel, "identity locked out after wrong codes", "lockout", append(logFields, zap.Int("failures", res.Failures), zap.Time("until", res.LockedUntil))...)
		h.setCookie(v.w, v.r, challengeCookie, "", -1, http.SameSiteStrictMode)
		return h.locked(v, res.LockedUntil)
	}
	if res.Status == otp.VerifyExhausted {
		h.setCookie(v.w, v.r, challengeCookie, "", -1, http.SameSiteStrictMode)
		return h.renderSend(v, http.StatusUnprocessableEntity, v.msg("code_dead"))
	}
	c := h.liveChallenge(v)
	if c == nil {
		return h.renderSend(v, http.StatusUnprocessableEntity, v.msg("no_challenge"))
	}
	st, _ := h.service.Identity(ctx, v.identity)
	key := "wrong_code"
	if res.Remaining == 1 {
		key = "wrong_code_one"
	}
	data := v.msg(key, "{n}", strconv.Itoa(res.Remaining))
	data.Key = "wrong_code"
	data.RetryIn = retryIn(now, st.NextSendAt)
	return h.renderCode(v, http.StatusUnprocessableEntity, c, data)
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

// unavailable answers when the store cannot be reached: fail closed, say
// so, send nothing.
func (h *Handler) unavailable(v *visit, err error) error {
	h.audit(zapcore.ErrorLevel, "store unavailable: failing closed", "store_unavailable", zap.String("identity", v.identity), zap.Error(err))
	v.w.Header().Set("Retry-After", "30")
	data := v.msg("unavailable_lead")
	data.Key = "unavailable"
	return h.render(v, http.StatusServiceUnavailable, pages.Unavailable, data)
}

func (h *Handler) methodNotAllowed(v *visit, allow string) error {
	v.w.Header().Set("Allow", allow)
	return h.render(v, http.StatusMethodNotAllowed, pages.Error, v.msg("method_not_allowed"))
}

// csrfOK checks a POST: the Origin (when sent) is this site, and the form's
// token is this handler's, for this browser's nonce cookie, identity and
// session, and less than an hour old.
func (h *Handler) csrfOK(v *visit) bool {
	if !originOK(v.r) {
		return false
	}
	bound := h.csrfBinding(v, cookieValue(v.r, h.cookieName(v.r, csrfCookie)))
	token, now := v.r.PostForm.Get("csrf"), h.clock.Now()
	if h.keys.CheckCSRFToken(token, bound, now) {
		return true
	}
	// A page loaded just before a key rotation still works.
	for _, k := range h.retired {
		if k.CheckCSRFToken(token, bound, now) {
			return true
		}
	}
	return false
}

// render writes a page with the security headers every page carries
// (SECURITY.md 22), a fresh CSP nonce and the browser's CSRF token. API
// clients get the same outcome as JSON.
func (h *Handler) render(v *visit, status int, page string, data pages.Data) error {
	hdr := v.w.Header()
	hdr.Set("Cache-Control", "no-store")
	hdr.Set("Referrer-Policy", "no-referrer")
	hdr.Set("X-Content-Type-Options", "nosniff")
	hdr.Set("X-Frame-Options", "DENY")
	if v.api || (wantsJSON(v.r) && page != pages.Send && page != pages.Code) {
		return writeJSON(v.w, status, h.apiBody(v, status, page, data))
	}
	nonce, err := randomToken(16)
	if err != nil {
		return caddyhttp.Error(http.StatusInternalServerError, err)
	}
	cfg := h.service.Config()
	data.Lang = v.lang
	data.T = pages.Catalog(v.lang, "{phone}", unbreakable.Replace(data.Masked), "{n}", strconv.Itoa(cfg.CodeLength))
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
	hdr.Set("Content-Security-Policy", "default-src 'none'; style-src 'nonce-"+nonce+"'; script-src 'nonce-"+nonce+"'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	hdr.Set("Content-Type", "text/html; charset=utf-8")
	hdr.Set("Content-Language", v.lang)
	v.w.WriteHeader(status)
	return h.pages.Render(v.w, page, data)
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

func clientIP(r *http.Request) string {
	ip, _ := caddyhttp.GetVar(r.Context(), caddyhttp.ClientIPVarKey).(string)
	return ip
}

// retryIn is the whole seconds from now until t, at least 0.
func retryIn(now, t time.Time) int {
	if !now.Before(t) {
		return 0
	}
	return int((t.Sub(now) + time.Second - 1) / time.Second)
}

func randomToken(n int) (string, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// shortID names a challenge in logs without handing out the whole id.
func shortID(c *otp.Challenge) string {
	if c == nil {
		return ""
	}
	return shortString(c.ID)
}

func shortString(id string) string {
	if len(id) > 8 {
		return id[:8]
	}
	return id
}

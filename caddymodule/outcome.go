package caddymodule

import (
	"net/http"
	"time"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp"
	"github.com/caddy-sms-stepup/caddy-sms-stepup/pages"
)

// outcome is what a POST to the plugin decided, before anything is
// written: the decision functions (decideSend, decideVerify, ...) make one,
// and respond writes it once, as a page or a 303 for browsers and as JSON
// for the API, so the two can't drift apart.
type outcome struct {
	audits  []auditEvent
	cookies []cookieChange
	// retryAfter is the Retry-After header, in seconds, when set.
	retryAfter string
	// noStore marks a redirect that carries a fresh step-up cookie.
	noStore bool

	// One of the answers below, in the order respond checks them.
	failure     error          // a 500
	unavailable error          // the store could not be reached: a 503
	lockedUntil time.Time      // the lock-out page
	redirect    string         // a 303 here for browsers ...
	body        map[string]any // ... and 200 with this body for the API
	status      int
	page        string // pages.Send and pages.Enroll look up what they show
	data        pages.Data
	challenge   *otp.Challenge // the challenge the code page shows
}

type auditEvent struct {
	level  zapcore.Level
	msg    string
	event  string
	fields []zap.Field
}

type cookieChange struct {
	c        cookie
	value    string
	maxAge   time.Duration
	sameSite http.SameSite
}

func (o *outcome) audit(level zapcore.Level, msg, event string, fields ...zap.Field) {
	o.audits = append(o.audits, auditEvent{level, msg, event, fields})
}

func (o *outcome) setCookie(c cookie, value string, maxAge time.Duration, sameSite http.SameSite) {
	o.cookies = append(o.cookies, cookieChange{c, value, maxAge, sameSite})
}

// clearChallenge forgets the browser's challenge.
func (o *outcome) clearChallenge() {
	o.setCookie(challengeCookie, "", -1, http.SameSiteStrictMode)
}

// answerPage, answerCode and answerSend are outcomes that show a page.
func answerPage(status int, page string, data pages.Data) outcome {
	return outcome{status: status, page: page, data: data}
}

func answerCode(status int, c *otp.Challenge, data pages.Data) outcome {
	return outcome{status: status, page: pages.Code, challenge: c, data: data}
}

func answerSend(status int, data pages.Data) outcome {
	return outcome{status: status, page: pages.Send, data: data}
}

// respond writes an outcome: its audit events, its cookies and headers,
// then the answer as HTML or, for the API (v.api), as JSON.
func (h *Handler) respond(v *visit, o outcome) error {
	for _, a := range o.audits {
		h.audit(a.level, a.msg, a.event, a.fields...)
	}
	for _, c := range o.cookies {
		h.setCookie(v.w, v.r, c.c, c.value, c.maxAge, c.sameSite)
	}
	if o.retryAfter != "" {
		v.w.Header().Set("Retry-After", o.retryAfter)
	}
	if o.noStore {
		v.w.Header().Set("Cache-Control", "no-store")
	}
	switch {
	case o.failure != nil:
		return caddyhttp.Error(http.StatusInternalServerError, o.failure)
	case o.unavailable != nil:
		return h.unavailable(v, o.unavailable)
	case !o.lockedUntil.IsZero():
		return h.locked(v, o.lockedUntil)
	case o.redirect != "" && v.api:
		return writeJSON(v.w, http.StatusOK, o.body)
	case o.redirect != "":
		http.Redirect(v.w, v.r, o.redirect, http.StatusSeeOther)
		return nil
	case o.page == pages.Code:
		return h.renderCode(v, o.status, o.challenge, o.data)
	case o.page == pages.Send:
		return h.renderSend(v, o.status, o.data)
	}
	return h.render(v, o.status, o.page, o.data)
}

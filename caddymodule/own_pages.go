package caddymodule

import (
	"errors"
	"net/http"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp"
	"github.com/caddy-sms-stepup/caddy-sms-stepup/pages"
)

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
	q := query(r)
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
		h.ensureDevice(v)
		return h.showPage(v, q.Get("m"), q.Get("n"))
	case sub == "/captcha.png":
		return h.captchaImage(v, q.Get("c"))
	case sub == "/resume":
		return h.resume(v) // replay_resume.go
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
		req, ok := readForm(w, r)
		if !ok {
			return h.render(v, http.StatusBadRequest, pages.Error, v.msg("csrf"))
		}
		v.req = req
		return h.servePost(v, strings.TrimPrefix(sub, "/"), "form refused: CSRF token or origin check failed")
	}
	return h.render(v, http.StatusNotFound, pages.Error, v.msg("not_found"))
}

// servePost serves a POST to endpoint (send, call, verify or enroll)
// whose request, from a form or a JSON body, is in v.req: once its CSRF
// token and origin pass (refusedMsg is logged when they don't).
func (h *Handler) servePost(v *visit, endpoint, refusedMsg string) error {
	v.lang = pages.Lang(v.req.Lang, v.r.Header.Get("Accept-Language"))
	v.ret = returnPath(v.req.Return)
	if !h.csrfOK(v) {
		h.audit(zapcore.WarnLevel, refusedMsg, "csrf_refused",
			zap.String("identity", v.identity), zap.String("client_ip", clientIP(v.r)), zap.String("path", v.r.URL.Path))
		return h.render(v, http.StatusForbidden, pages.Error, v.msg("csrf"))
	}
	switch endpoint {
	case "enroll":
		return h.enroll(v)
	case "send":
		return h.send(v, false)
	case "call":
		return h.call(v)
	}
	return h.verify(v)
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
	if notice == "resubmit" || notice == "kept" {
		data.Message, data.Status, data.Key = pages.Msg(v.lang, notice), "notice", notice
	}
	return h.renderSend(v, http.StatusOK, data)
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
	token, now := v.req.CSRF, h.clock.Now()
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

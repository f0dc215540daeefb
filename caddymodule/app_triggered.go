package caddymodule

import (
	"bytes"
	"io"
	"net/http"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/pages"
)

// On app_triggered requests the handler watches the upstream's answer. A
// 401 whose WWW-Authenticate holds a Bearer challenge with
// error="insufficient_user_authentication" (RFC 9470) becomes a step-up,
// as if the route were protected: a browser's GET is sent to the step-up
// page and back, a form POST is kept and sent again after it (replay.go),
// an API client gets the plugin's 401 with the step-up endpoints. The
// application's max_age, when usable, tightens the route's, never loosens
// it. Any other answer, 401s included, passes through untouched, and
// without buffering: only the status and headers are looked at.
//
// A step-up after the application asked, on the same URL, followed by the
// application asking again is a loop (the application wants what no step-up
// gives): the second ask shows an error page instead of another step-up.
// The moment of the ask travels, signed for the identity, session, scope
// and URL, in the app-ask cookie.

var appAskCookie = cookie{"__Host-stepup_ask", "stepup_ask"}

// appWriter holds back a 401 that asks for a step-up; anything else goes
// to the client as the upstream writes it.
type appWriter struct {
	*caddyhttp.ResponseWriterWrapper
	wrote bool
	ask   appAsk
}

func (a *appWriter) WriteHeader(code int) {
	if a.wrote {
		return
	}
	a.wrote = true
	if code == http.StatusUnauthorized {
		if a.ask = parseAppAsk(a.Header().Values("WWW-Authenticate")); a.ask.stepUp {
			return
		}
	}
	a.ResponseWriterWrapper.WriteHeader(code)
}

func (a *appWriter) Write(p []byte) (int, error) {
	if !a.wrote {
		a.WriteHeader(http.StatusOK)
	}
	if a.ask.stepUp {
		return len(p), nil // the application's 401 body, dropped
	}
	return a.ResponseWriterWrapper.Write(p)
}

func (a *appWriter) ReadFrom(r io.Reader) (int64, error) {
	if !a.wrote {
		a.WriteHeader(http.StatusOK)
	}
	if a.ask.stepUp {
		return io.Copy(io.Discard, r)
	}
	return a.ResponseWriterWrapper.ReadFrom(r)
}

func (a *appWriter) Flush() {
	if a.ask.stepUp {
		return
	}
	if !a.wrote {
		a.WriteHeader(http.StatusOK)
	}
	_ = http.NewResponseController(a.ResponseWriterWrapper).Flush()
}

// tellAppOfStepUp sets the step-up placeholders and upstream headers on
// an app_triggered request that needs no step-up of the handler but
// carries a valid one (of any age: the application judges its age), so
// that the application can see it.
func (h *Handler) tellAppOfStepUp(r *http.Request, repl *caddy.Replacer) {
	token := cookieValue(r, h.cookieName(r, tokenCookie))
	if token == "" || h.untrustedHeaders(r, repl) != "" {
		return
	}
	identity := h.identity(r, repl)
	if identity == "" {
		return
	}
	if v, err := h.checkStepUp(r, token, identity, h.sessionHash(r, repl), 0); err == nil {
		h.setPlaceholders(repl, &v, token)
		h.setUpstreamHeaders(r.Header, &v, token)
	}
}

// appTriggeredMatch says whether r is an app_triggered request.
func (h *Handler) appTriggeredMatch(r *http.Request) bool {
	if len(h.appTriggered) == 0 {
		return false
	}
	ok, err := h.appTriggered.AnyMatchWithError(r)
	return ok && err == nil
}

// serveAppTriggered passes r on to next, watching for the application's
// ask. maxAge is what the handler and its routes ask of r (the handler's
// max_age when nothing protects it).
func (h *Handler) serveAppTriggered(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler, maxAge time.Duration) error {
	repl := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
	body, keepable := h.bufferForm(r)
	if id, ok := resubmissionID(body); ok && keepable {
		if done, err := h.appResubmission(w, r, repl, id, body); done {
			return err
		}
	}
	saved := w.Header().Clone()
	aw := &appWriter{ResponseWriterWrapper: &caddyhttp.ResponseWriterWrapper{ResponseWriter: w}}
	if err := next.ServeHTTP(aw, r); err != nil || !aw.ask.stepUp {
		return err
	}
	// The application's headers go with its 401.
	hdr := w.Header()
	for k := range hdr {
		delete(hdr, k)
	}
	for k, v := range saved {
		hdr[k] = v
	}
	if body != nil && keepable {
		r.Body = io.NopCloser(bytes.NewReader(body))
	} else {
		// Read past replay_max_body, or not a form: not kept.
		r.Header.Del("Content-Type")
	}
	if aw.ask.hasMaxAge && aw.ask.maxAge < maxAge {
		maxAge = aw.ask.maxAge
	}
	return h.appAsked(w, r, repl, maxAge)
}

// bufferForm reads a form POST's body up to replay_max_body before it is
// proxied, so that it can be kept if the application asks for a step-up;
// r.Body is put back to read the same bytes. keepable is false past the
// limit (the rest of the body is then streamed on as it comes).
func (h *Handler) bufferForm(r *http.Request) (body []byte, keepable bool) {
	if !h.replayOn() || h.replays == nil || !isFormPost(r) {
		return nil, false
	}
	limit := h.replayLimit()
	body, err := io.ReadAll(io.LimitReader(r.Body, limit+1))
	rest := r.Body
	r.Body = struct {
		io.Reader
		io.Closer
	}{io.MultiReader(bytes.NewReader(body), rest), rest}
	return body, err == nil && int64(len(body)) <= limit
}

// appResubmission is the resume page's post of a kept form on an
// app_triggered route: with a valid step-up the kept form goes on in its
// place; without one, the step-up again.
func (h *Handler) appResubmission(w http.ResponseWriter, r *http.Request, repl *caddy.Replacer, id string, body []byte) (bool, error) {
	identity, session, err := h.signedIn(w, r, repl)
	if identity == "" {
		return true, err
	}
	sessionHash := h.keys.SessionHash(session)
	r.Body = io.NopCloser(bytes.NewReader(body))
	token := cookieValue(r, h.cookieName(r, tokenCookie))
	if _, err := h.checkStepUp(r, token, identity, sessionHash, 0); token == "" || err != nil {
		return true, h.challenge(w, r, repl, identity, h.maxAge)
	}
	return h.replayResubmission(w, r, identity, sessionHash)
}

// appAsked turns the application's ask into a step-up, or into the loop's
// error page when the user stepped up after the last ask on this URL.
func (h *Handler) appAsked(w http.ResponseWriter, r *http.Request, repl *caddy.Replacer, maxAge time.Duration) error {
	identity, session, err := h.signedIn(w, r, repl)
	if identity == "" {
		return err
	}
	sessionHash := h.keys.SessionHash(session)
	url := r.URL.RequestURI()
	b := h.replayBinding("", identity, sessionHash)
	now := h.clock.Now()
	fields := []zap.Field{zap.String("identity", identity), zap.String("path", r.URL.Path), zap.Duration("max_age", maxAge), zap.String("client_ip", clientIP(r))}
	if asked, ok := h.keys.CheckAppAsk(b, url, cookieValue(r, h.cookieName(r, appAskCookie))); ok {
		token := cookieValue(r, h.cookieName(r, tokenCookie))
		if v, err := h.checkStepUp(r, token, identity, sessionHash, 0); token != "" && err == nil && !v.AuthTime.Before(asked) {
			h.setCookie(w, r, appAskCookie, "", -1, http.SameSiteLaxMode)
			h.audit(zapcore.WarnLevel, "the application asked for a step-up again right after one: not asking the user again", "app_loop", fields...)
			if wantsJSON(r) {
				return writeJSON(w, http.StatusForbidden, map[string]any{"error": "app_loop", "message": pages.Msg("en", "app_loop")})
			}
			return h.renderError(w, r, http.StatusForbidden, "app_loop")
		}
	}
	h.setCookie(w, r, appAskCookie, h.keys.SignAppAsk(b, url, now), h.tokens.TTL(), http.SameSiteLaxMode)
	h.audit(zapcore.InfoLevel, "the application asked for a step-up", "app_triggered", fields...)
	return h.challenge(w, r, repl, identity, maxAge)
}
